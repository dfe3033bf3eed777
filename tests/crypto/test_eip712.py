import copy
import sys
from collections.abc import Callable
from typing import Any

import pytest
from eth_account.messages import encode_typed_data
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medledger.crypto.eip712 import (
    TypedDataEncoder,
    digest,
    domain_separator,
    hash_typed_data,
    recover_typed_data,
    sign_typed_data,
)
from medledger.crypto.errors import InvalidTypedData
from medledger.crypto.keys import PrivateKey, keccak256, to_checksum_address
from medledger.errors import InvalidInput
from tests.crypto._vectors import load

MAIL = load("eip712_mail.json")
TYPED = MAIL["typed_data"]
TYPES = TYPED["types"]
MESSAGE = TYPED["message"]


def h(value: str) -> bytes:
    return bytes.fromhex(value.removeprefix("0x"))


def eth_account_digest(typed_data: dict[str, Any]) -> bytes:
    message = encode_typed_data(full_message=typed_data)
    return keccak256(b"\x19" + message.version + message.header + message.body)


def mail_with(**changes: Any) -> dict[str, Any]:
    message: dict[str, Any] = copy.deepcopy(MESSAGE)
    message.update(changes)
    return message


# --- the specification's example ----------------------------------------------


def test_mail_encode_type_and_type_hash() -> None:
    encoder = TypedDataEncoder(TYPES)
    assert encoder.encode_type("Mail") == MAIL["encode_type_mail"]
    assert encoder.type_hash("Mail") == h(MAIL["type_hash_mail"])


def test_mail_domain_separator() -> None:
    assert domain_separator(TYPED["domain"]) == h(MAIL["domain_separator"])


def test_mail_hash_struct_with_and_without_domain_type() -> None:
    without_domain = {name: fields for name, fields in TYPES.items() if name != "EIP712Domain"}
    for types in (TYPES, without_domain):
        assert TypedDataEncoder(types).hash_struct("Mail", MESSAGE) == h(
            MAIL["hash_struct_message"]
        )


def test_mail_digest() -> None:
    expected = h(MAIL["digest"])
    assert hash_typed_data(TYPED) == expected
    assert digest(h(MAIL["domain_separator"]), h(MAIL["hash_struct_message"])) == expected
    without_domain = {**TYPED, "types": {k: v for k, v in TYPES.items() if k != "EIP712Domain"}}
    assert hash_typed_data(without_domain) == expected
    assert eth_account_digest(TYPED) == expected


def test_mail_signature() -> None:
    key = PrivateKey.from_bytes(keccak256(MAIL["signer_private_key_preimage"].encode()))
    assert key.address == MAIL["signer_address"]
    signature = sign_typed_data(key, TYPED)
    expected = MAIL["signature"]
    assert signature == h(expected["r"]) + h(expected["s"]) + bytes((expected["v"],))
    assert recover_typed_data(TYPED, signature) == MAIL["signer_address"]


def test_changed_message_recovers_another_address() -> None:
    key = PrivateKey.from_bytes(keccak256(b"cow"))
    signature = sign_typed_data(key, TYPED)
    forged = {**TYPED, "message": mail_with(contents="Hello, Eve!")}
    assert recover_typed_data(forged, signature) != key.address
    other_chain = {**TYPED, "domain": {**TYPED["domain"], "chainId": 5}}
    assert recover_typed_data(other_chain, signature) != key.address


# --- value forms wallets send ------------------------------------------------

NUMBERS = {"Numbers": [{"name": "u", "type": "uint256"}, {"name": "i", "type": "int64"}]}
BLOBS = {"Blobs": [{"name": "fixed", "type": "bytes4"}, {"name": "dynamic", "type": "bytes"}]}


def test_integers_as_decimal_or_hex_strings() -> None:
    encoder = TypedDataEncoder(NUMBERS)
    expected = encoder.hash_struct("Numbers", {"u": 255, "i": -7})
    assert encoder.hash_struct("Numbers", {"u": "255", "i": "-7"}) == expected
    assert encoder.hash_struct("Numbers", {"u": "0xff", "i": -7}) == expected
    assert encoder.hash_struct("Numbers", {"u": "0xFF", "i": "-07"}) == expected
    assert encoder.hash_struct("Numbers", {"u": 254, "i": -7}) != expected


def test_bytes_as_bytes_or_hex_strings() -> None:
    encoder = TypedDataEncoder(BLOBS)
    expected = encoder.hash_struct("Blobs", {"fixed": b"\xde\xad\xbe\xef", "dynamic": b""})
    assert encoder.hash_struct("Blobs", {"fixed": "0xdeadbeef", "dynamic": "0x"}) == expected
    assert encoder.hash_struct("Blobs", {"fixed": "0xDEADBEEF", "dynamic": bytearray()}) == expected


def test_addresses_in_any_case_hash_alike() -> None:
    lower = mail_with(to={"name": "Bob", "wallet": MESSAGE["to"]["wallet"].lower()})
    encoder = TypedDataEncoder(TYPES)
    assert encoder.hash_struct("Mail", lower) == h(MAIL["hash_struct_message"])


def test_recursive_types() -> None:
    types = {"Node": [{"name": "value", "type": "uint8"}, {"name": "children", "type": "Node[]"}]}
    tree = {"value": 1, "children": [{"value": 2, "children": []}, {"value": 3, "children": []}]}
    encoder = TypedDataEncoder(types)
    assert encoder.encode_type("Node") == "Node(uint8 value,Node[] children)"
    full = {"types": types, "primaryType": "Node", "domain": {"chainId": 1}, "message": tree}
    assert hash_typed_data(full) == eth_account_digest(full)


def test_dependencies_are_sorted_by_name_and_listed_once() -> None:
    types = {
        "Zeta": [{"name": "b", "type": "Beta[2]"}, {"name": "a", "type": "Alpha"}],
        "Beta": [{"name": "a", "type": "Alpha[]"}],
        "Alpha": [{"name": "x", "type": "bool"}],
    }
    assert TypedDataEncoder(types).encode_type("Zeta") == (
        "Zeta(Beta[2] b,Alpha a)Alpha(bool x)Beta(Alpha[] a)"
    )


# --- cross-check against eth_account over random schemas -------------------

ATOMIC = (
    ["address", "bool", "string", "bytes"]
    + [f"bytes{n}" for n in range(1, 33)]
    + [f"uint{n}" for n in range(8, 257, 8)]
    + [f"int{n}" for n in range(8, 257, 8)]
)
struct_names = st.from_regex(r"[A-Z][A-Za-z0-9]{0,5}", fullmatch=True)
field_names = st.from_regex(r"[a-z][A-Za-z0-9_]{0,5}", fullmatch=True)
suffixes = st.lists(
    st.one_of(st.just("[]"), st.integers(1, 3).map(lambda k: f"[{k}]")), max_size=2
).map("".join)


@st.composite
def schemas(draw: st.DrawFn) -> tuple[dict[str, list[dict[str, str]]], str]:
    names = draw(st.lists(struct_names, min_size=1, max_size=4, unique=True))
    fields: dict[str, list[tuple[str, str]]] = {name: [] for name in names}
    # Each struct after the first hangs off an earlier one, so the graph is a
    # DAG with names[0] as its only root (eth_account derives the primary type).
    for index, name in enumerate(names[1:], start=1):
        parent = names[draw(st.integers(0, index - 1))]
        fields[parent].append(("", name + draw(suffixes)))
    for index, name in enumerate(names):
        later = names[index + 1 :]
        bases = st.sampled_from(ATOMIC + later)
        fields[name] += draw(
            st.lists(st.tuples(st.just(""), st.builds(str.__add__, bases, suffixes)), max_size=4)
        )
    types = {}
    for name, members in fields.items():
        labels = draw(
            st.lists(field_names, min_size=len(members), max_size=len(members), unique=True)
        )
        types[name] = [
            {"name": label, "type": kind} for label, (_, kind) in zip(labels, members, strict=True)
        ]
    return types, names[0]


def value_of(
    draw: Callable[[st.SearchStrategy[Any]], Any], types: dict[str, list[dict[str, str]]], kind: str
) -> Any:
    if kind.endswith("]"):
        inner, declared = kind[: kind.rindex("[")], kind[kind.rindex("[") + 1 : -1]
        length = int(declared) if declared else draw(st.integers(0, 2))
        return [value_of(draw, types, inner) for _ in range(length)]
    if kind in types:
        return {field["name"]: value_of(draw, types, field["type"]) for field in types[kind]}
    if kind == "address":
        return to_checksum_address(draw(st.binary(min_size=20, max_size=20)))
    if kind == "bool":
        return draw(st.booleans())
    if kind == "string":
        return draw(st.text(max_size=8))
    if kind == "bytes":
        return draw(st.binary(max_size=40))
    if kind.startswith("bytes"):
        size = int(kind[5:])
        return draw(st.binary(min_size=size, max_size=size))
    bits = int(kind.lstrip("uint"))
    if kind.startswith("u"):
        return draw(st.integers(0, 2**bits - 1))
    return draw(st.integers(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1))


domains = st.fixed_dictionaries(
    {},
    optional={
        "name": st.text(max_size=8),
        "version": st.text(max_size=3),
        "chainId": st.integers(0, 2**256 - 1),
        "verifyingContract": st.binary(min_size=20, max_size=20).map(to_checksum_address),
        "salt": st.binary(min_size=32, max_size=32),
    },
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_typed_data_matches_eth_account(data: st.DataObject) -> None:
    types, primary = data.draw(schemas())
    message = value_of(data.draw, types, primary)
    domain = data.draw(domains)
    typed = {"types": types, "primaryType": primary, "domain": domain, "message": message}
    assert hash_typed_data(typed) == eth_account_digest(typed)


# --- validation --------------------------------------------------------------

BAD_VALUES = [
    ("uint8", 256, "out of range for uint8"),
    ("uint8", -1, "out of range for uint8"),
    ("uint256", 2**256, "out of range for uint256"),
    ("int8", 128, "out of range for int8"),
    ("int8", -129, "out of range for int8"),
    ("int8", "-0x1", "not an integer"),
    ("uint8", True, "not an integer"),
    ("uint8", 1.0, "not an integer"),
    ("uint8", "1.5", "not an integer"),
    ("uint8", " 1", "not an integer"),
    ("uint8", "1_0", "not an integer"),
    ("uint8", "0x", "not an integer"),
    ("uint8", None, "not an integer"),
    ("uint256", "1" * 81, "not an integer"),
    ("bool", 1, "not a bool"),
    ("bool", "true", "not a bool"),
    ("bytes4", b"\x00" * 3, "expected 4 bytes, got 3"),
    ("bytes4", "0x0000000000", "expected 4 bytes, got 5"),
    ("bytes4", "0x123", "not bytes"),
    ("bytes4", "deadbeef", "not bytes"),
    ("bytes", 5, "not bytes"),
    ("bytes", "hello", "not bytes"),
    ("string", b"text", "not a string"),
    ("string", "\ud800", "UTF-8"),
    ("address", "0x12", "not an address"),
    ("address", "0xcD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826", "checksum"),
    ("address", 0x1234, "not an address"),
    ("uint8[]", "0x01", "not an array"),
    ("uint8[]", {"0": 1}, "not an array"),
    ("uint8[2]", [1], "expected 2 elements, got 1"),
    ("uint8[2]", [1, 2, 3], "expected 2 elements, got 3"),
]


@pytest.mark.parametrize(("kind", "value", "reason"), BAD_VALUES)
def test_bad_values_name_the_field(kind: str, value: Any, reason: str) -> None:
    encoder = TypedDataEncoder({"Box": [{"name": "item", "type": kind}]})
    with pytest.raises(InvalidTypedData, match=r"^Box\.item: ") as caught:
        encoder.hash_struct("Box", {"item": value})
    assert reason in str(caught.value)


def test_error_path_goes_through_structs_and_arrays() -> None:
    types = {
        "Mail": TYPES["Mail"] + [{"name": "cc", "type": "Person[]"}],
        "Person": TYPES["Person"],
    }
    encoder = TypedDataEncoder(types)
    bad_wallet = mail_with(cc=[], **{"from": {"name": "Cow", "wallet": "cow"}})
    with pytest.raises(InvalidTypedData, match=r"^Mail\.from\.wallet: not an address"):
        encoder.hash_struct("Mail", bad_wallet)
    bad_cc = mail_with(cc=[MESSAGE["to"], {"name": 7, "wallet": MESSAGE["to"]["wallet"]}])
    with pytest.raises(InvalidTypedData, match=r"^Mail\.cc\[1\]\.name: not a string$"):
        encoder.hash_struct("Mail", bad_cc)


def test_nested_array_error_path() -> None:
    encoder = TypedDataEncoder({"Grid": [{"name": "cells", "type": "uint8[][2]"}]})
    with pytest.raises(InvalidTypedData, match=r"^Grid\.cells\[1\]\[0\]: out of range"):
        encoder.hash_struct("Grid", {"cells": [[1], [300]]})


def test_missing_field() -> None:
    message = mail_with(to={"name": "Bob"})
    with pytest.raises(InvalidTypedData, match=r"^Mail\.to\.wallet: missing$"):
        TypedDataEncoder(TYPES).hash_struct("Mail", message)


def test_unknown_field() -> None:
    with pytest.raises(InvalidTypedData, match=r"^Mail: unknown fields bcc$"):
        TypedDataEncoder(TYPES).hash_struct("Mail", mail_with(bcc="Eve"))


@pytest.mark.parametrize("value", ["Cow", ["Cow"], None])
def test_struct_value_must_be_an_object(value: Any) -> None:
    with pytest.raises(InvalidTypedData, match=r"^Mail\.from: not an object"):
        TypedDataEncoder(TYPES).hash_struct("Mail", mail_with(**{"from": value}))


def test_top_level_value_must_be_an_object() -> None:
    with pytest.raises(InvalidTypedData, match=r"^Mail: not an object"):
        TypedDataEncoder(TYPES).hash_struct("Mail", [])  # type: ignore[arg-type]


def test_deep_nesting_is_rejected_not_crashed() -> None:
    types = {"Node": [{"name": "next", "type": "Node[]"}]}
    node: dict[str, Any] = {"next": []}
    # Each level takes several frames, so this depth overflows whatever the limit is.
    for _ in range(sys.getrecursionlimit()):
        node = {"next": [node]}
    with pytest.raises(InvalidTypedData, match="nested too deeply"):
        TypedDataEncoder(types).hash_struct("Node", node)


@pytest.mark.parametrize(
    ("types", "problem"),
    [
        ({"Mail": [{"name": "from", "type": "Persn"}]}, "Mail.from: unknown type 'Persn'"),
        ({"Mail": [{"name": "n", "type": "uint"}]}, "Mail.n: unknown type 'uint'"),
        ({"Mail": [{"name": "n", "type": "uint7"}]}, "Mail.n: unknown type 'uint7'"),
        ({"Mail": [{"name": "n", "type": "bytes33"}]}, "Mail.n: unknown type 'bytes33'"),
        ({"Mail": [{"name": "n", "type": "uint8[0]"}]}, "Mail.n: unknown type 'uint8[0]'"),
        ({"Mail": [{"name": "n", "type": "uint8[x]"}]}, "Mail.n: unknown type 'uint8[x]'"),
        ({"Mail": [{"name": "n", "type": "uint8 "}]}, "Mail.n: unknown type 'uint8 '"),
        ({"Mail": [{"name": "n", "type": 8}]}, "Mail.n: type is not a string"),
        ({"Mail": [{"name": "1n", "type": "bool"}]}, "Mail: bad field name '1n'"),
        ({"Mail": [{"type": "bool"}]}, "Mail: bad field name None"),
        (
            {"Mail": [{"name": "a", "type": "bool"}, {"name": "a", "type": "bool"}]},
            "Mail: duplicate",
        ),
        ({"Mail": ["bool a"]}, "Mail: field is not an object"),
        ({"Mail": "bool a"}, "Mail: fields are not a list"),
        ({"uint256": []}, "bad struct name 'uint256'"),
        ({"Ma il": []}, "bad struct name 'Ma il'"),
        ({"Mail[]": []}, "bad struct name 'Mail[]'"),
        ([("Mail", [])], "types: not an object"),
    ],
)
def test_bad_types_are_rejected(types: Any, problem: str) -> None:
    with pytest.raises(InvalidTypedData) as caught:
        TypedDataEncoder(types)
    assert problem in str(caught.value)


def test_unknown_struct_names_are_rejected() -> None:
    encoder = TypedDataEncoder(TYPES)
    for call in (encoder.type_hash, encoder.encode_type, lambda n: encoder.hash_struct(n, {})):
        with pytest.raises(InvalidTypedData, match="unknown struct type 'Letter'"):
            call("Letter")


def test_domain_validation() -> None:
    with pytest.raises(InvalidTypedData, match="EIP712Domain: unknown fields chain"):
        domain_separator({"name": "x", "chain": 1})
    with pytest.raises(InvalidTypedData, match=r"EIP712Domain\.chainId: out of range"):
        domain_separator({"chainId": -1})
    with pytest.raises(InvalidTypedData, match=r"EIP712Domain\.salt: expected 32 bytes"):
        domain_separator({"salt": b"short"})
    with pytest.raises(InvalidTypedData, match="EIP712Domain: not an object"):
        domain_separator([])  # type: ignore[arg-type]


def test_domain_cache_tells_equal_values_of_other_types_apart() -> None:
    assert hash_typed_data(TYPED) == h(MAIL["digest"])
    for chain_id in (True, 1.0):
        typed = {**TYPED, "domain": {**TYPED["domain"], "chainId": chain_id}}
        with pytest.raises(InvalidTypedData, match=r"^EIP712Domain\.chainId: not an integer"):
            hash_typed_data(typed)


def test_unhashable_domain_values_are_still_checked() -> None:
    typed = {**TYPED, "domain": {**TYPED["domain"], "name": ["Ether Mail"]}}
    with pytest.raises(InvalidTypedData, match=r"^EIP712Domain\.name: not a string"):
        hash_typed_data(typed)
    salted = {
        **TYPED,
        "domain": {"salt": bytearray(32)},
        "types": {"Mail": TYPES["Mail"], "Person": TYPES["Person"]},
    }
    assert hash_typed_data(salted) == eth_account_digest({**salted, "domain": {"salt": bytes(32)}})


def test_domain_fields_use_canonical_order_whatever_the_mapping_order() -> None:
    reordered = dict(reversed(list(TYPED["domain"].items())))
    assert domain_separator(reordered) == h(MAIL["domain_separator"])


def test_declared_domain_type_must_match_the_domain() -> None:
    swapped = [TYPES["EIP712Domain"][1], TYPES["EIP712Domain"][0], *TYPES["EIP712Domain"][2:]]
    for declared in (swapped, TYPES["EIP712Domain"][:3]):
        typed = {**TYPED, "types": {**TYPES, "EIP712Domain": declared}}
        with pytest.raises(InvalidTypedData, match=r"^EIP712Domain: declared fields"):
            hash_typed_data(typed)


@pytest.mark.parametrize("missing", ["types", "primaryType", "domain", "message"])
def test_typed_data_needs_all_four_parts(missing: str) -> None:
    typed = {k: v for k, v in TYPED.items() if k != missing}
    with pytest.raises(InvalidTypedData, match=f"missing '{missing}'"):
        hash_typed_data(typed)


@pytest.mark.parametrize(
    ("primary", "problem"),
    [
        ("EIP712Domain", "bad primaryType"),
        (None, "bad primaryType"),
        ("Letter", "unknown struct type 'Letter'"),
    ],
)
def test_bad_primary_type(primary: Any, problem: str) -> None:
    with pytest.raises(InvalidTypedData, match=problem):
        hash_typed_data({**TYPED, "primaryType": primary})


def test_typed_data_must_be_an_object() -> None:
    with pytest.raises(InvalidTypedData, match="typed data: not an object"):
        hash_typed_data("{}")  # type: ignore[arg-type]


def test_digest_needs_32_byte_parts() -> None:
    with pytest.raises(InvalidTypedData):
        digest(b"\x00" * 31, b"\x00" * 32)
    with pytest.raises(InvalidTypedData):
        digest(b"\x00" * 32, b"\x00" * 33)


def test_invalid_typed_data_is_invalid_input() -> None:
    assert issubclass(InvalidTypedData, InvalidInput)
