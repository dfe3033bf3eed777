import base64
import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature as CryptoInvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_der_public_key
from hypothesis import given, settings
from hypothesis import strategies as st

from medledger.crypto.keys import PrivateKey
from medledger.errors import InvalidInput, UsageError, VerificationError
from medledger.node.content_digest import content_digest, verify_content_digest
from medledger.node.errors import (
    ContentDigestMismatch,
    ContentDigestMissing,
    InvalidKeyId,
    InvalidNonce,
    MalformedHeader,
    MalformedRequest,
    RequestNotAuthenticated,
    SignatureExpired,
    SignatureLabelMissing,
    SignatureLifetimeTooLong,
    SignatureMismatch,
    SignatureMissing,
    SignatureNotYetValid,
    UnsupportedAlgorithm,
    UnsupportedDigestAlgorithm,
    WrongAuthority,
    WrongCoveredComponents,
)
from medledger.node.signature_base import HttpRequest, signature_base
from medledger.node.signatures import (
    ALGORITHM,
    COVERED_COMPONENTS,
    SignatureLimits,
    SignedRequest,
    new_nonce,
    sign_request,
    verify_request,
)
from medledger.node.structured_fields import (
    InnerList,
    Item,
    Token,
    parse_dictionary,
    serialize_inner_list,
    serialize_item,
)

VECTORS = Path(__file__).parent / "vectors"
RFC9421 = json.loads((VECTORS / "rfc9421_appendix_b.json").read_text(encoding="utf-8"))
RFC9530 = json.loads((VECTORS / "rfc9530_content_digest.json").read_text(encoding="utf-8"))

# The secret of tests/crypto/test_keys.py, checked there against eth_keys.
SECRET = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
ADDRESS = "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"
OTHER_SECRET = "11" * 32

URL = "https://node-a.example:8443/records/7f3a?since=1700000000"
BODY = b'{"record":"7f3a","grant":"read"}'
CREATED = 1_700_000_000
EXPIRES = CREATED + 300
NOW = CREATED + 5
NONCE = "AAECAwQFBgcICQoLDA0ODw"
LIMITS = SignatureLimits()


def key() -> PrivateKey:
    return PrivateKey.from_hex(SECRET)


def signed(
    *,
    method: str = "POST",
    url: str = URL,
    body: bytes = BODY,
    created: int = CREATED,
    expires: int = EXPIRES,
    nonce: str = NONCE,
    label: str = "sig1",
    signer: PrivateKey | None = None,
) -> dict[str, str]:
    return sign_request(
        signer or key(),
        method=method,
        url=url,
        body=body,
        created=created,
        expires=expires,
        nonce=nonce,
        label=label,
    )


def verify(
    headers: dict[str, str],
    *,
    method: str = "POST",
    url: str = URL,
    body: bytes = BODY,
    now_s: int = NOW,
    limits: SignatureLimits = LIMITS,
    label: str = "sig1",
) -> SignedRequest:
    return verify_request(
        method=method, url=url, headers=headers, body=body, now_s=now_s, limits=limits, label=label
    )


def signature_input(headers: dict[str, str], label: str = "sig1") -> InnerList:
    member = parse_dictionary("Signature-Input", headers["Signature-Input"])[label]
    assert isinstance(member, InnerList)
    return member


def with_input(headers: dict[str, str], inner: InnerList, label: str = "sig1") -> dict[str, str]:
    return {**headers, "Signature-Input": f"{label}={serialize_inner_list(inner)}"}


def with_params(headers: dict[str, str], **changes: Any) -> dict[str, str]:
    """Change, add (a value) or drop (None) signature parameters, keeping the rest in order."""
    inner = signature_input(headers)
    params = [(k, changes.pop(k)) if k in changes else (k, v) for k, v in inner.params]
    params += list(changes.items())
    kept = tuple((k, v) for k, v in params if v is not None)
    return with_input(headers, InnerList(inner.items, kept))


def with_components(headers: dict[str, str], *identifiers: Item) -> dict[str, str]:
    return with_input(headers, InnerList(identifiers, signature_input(headers).params))


def items(*names: str) -> tuple[Item, ...]:
    return tuple(Item(name) for name in names)


# --- RFC 9421 Appendix B ---------------------------------------------------


def rfc_request() -> HttpRequest:
    request = RFC9421["test_request"]
    return HttpRequest.parse(
        request["method"], request["url"], [(name, value) for name, value in request["fields"]]
    )


def rfc_member(header: str, text: str, label: str) -> Item | InnerList:
    return parse_dictionary(header, text)[label]


def rfc_base(case: dict[str, Any]) -> bytes:
    inner = rfc_member("Signature-Input", case["signature_input"], case["label"])
    assert isinstance(inner, InnerList)
    request = rfc_request()
    supplied = case["supplied_values"]
    covered = [(i, supplied.get(serialize_item(i)) or request.component(i)) for i in inner.items]
    return signature_base(covered, inner.params)


def rfc_verify(case: dict[str, Any], base: bytes) -> None:
    member = rfc_member("Signature", case["signature"], case["label"])
    assert isinstance(member, Item) and isinstance(member.value, bytes)
    spec = RFC9421["keys"][case["key"]]
    public = load_der_public_key(base64.b64decode(spec["spki_base64"]))
    if spec["alg"] == "ed25519":
        assert isinstance(public, Ed25519PublicKey)
        public.verify(member.value, base)
    else:
        assert spec["alg"] == "rsa-pss-sha512" and isinstance(public, RSAPublicKey)
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA512()), salt_length=64)
        public.verify(member.value, base, pss, hashes.SHA512())


CASES = pytest.mark.parametrize("case", RFC9421["cases"], ids=lambda c: c["section"])


@CASES
def test_rfc9421_signature_base_is_rebuilt_byte_for_byte(case: dict[str, Any]) -> None:
    assert rfc_base(case) == "\n".join(case["signature_base"]).encode("ascii")


@CASES
def test_rfc9421_signature_verifies_with_the_rfc_public_key(case: dict[str, Any]) -> None:
    rfc_verify(case, rfc_base(case))


@CASES
def test_rfc9421_signature_fails_over_a_base_one_byte_off(case: dict[str, Any]) -> None:
    base = rfc_base(case)
    with pytest.raises(CryptoInvalidSignature):
        rfc_verify(case, base[:-1] + bytes([base[-1] ^ 1]))


@CASES
def test_rfc9421_signature_input_serialises_back_unchanged(case: dict[str, Any]) -> None:
    inner = rfc_member("Signature-Input", case["signature_input"], case["label"])
    assert isinstance(inner, InnerList)
    assert f"{case['label']}={serialize_inner_list(inner)}" == case["signature_input"]


def test_rfc9421_b21_parameters_parse_to_their_types() -> None:
    case = RFC9421["cases"][0]
    inner = rfc_member("Signature-Input", case["signature_input"], "sig-b21")
    assert inner == InnerList(
        (),
        (
            ("created", 1618884473),
            ("keyid", "test-key-rsa-pss"),
            ("nonce", "b3k2pp5k7z-50gnwp.yemd"),
        ),
    )


def test_rfc9421_test_request_content_digest_matches_its_body() -> None:
    request = RFC9421["test_request"]
    digest = dict(request["fields"])["Content-Digest"]
    verify_content_digest(digest, request["body"].encode())
    with pytest.raises(ContentDigestMismatch):
        verify_content_digest(digest, request["body"].encode() + b"\n")


# --- RFC 9530 Content-Digest -----------------------------------------------


@pytest.mark.parametrize("case", RFC9530["cases"], ids=lambda c: c["where"])
def test_rfc9530_content_digest(case: dict[str, str]) -> None:
    assert content_digest(case["body"].encode()) == case["content_digest"]
    verify_content_digest(case["content_digest"], case["body"].encode())


@pytest.mark.parametrize("case", RFC9530["sha512_cases"], ids=lambda c: c["where"])
def test_rfc9530_sha512_digest_is_checked(case: dict[str, str]) -> None:
    verify_content_digest(case["content_digest"], case["body"].encode())
    with pytest.raises(ContentDigestMismatch, match="sha-512"):
        verify_content_digest(case["content_digest"], case["body"].encode()[:-1])


def test_content_digest_ignores_unknown_algorithms_beside_a_known_one() -> None:
    verify_content_digest(f"md5=:AAAA:, {content_digest(BODY)}", BODY)


def test_content_digest_every_known_algorithm_must_match() -> None:
    wrong_512 = "sha-512=:" + base64.b64encode(bytes(64)).decode() + ":"
    with pytest.raises(ContentDigestMismatch, match="sha-512"):
        verify_content_digest(f"{content_digest(BODY)}, {wrong_512}", BODY)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("md5=:AAAA:", UnsupportedDigestAlgorithm),
        ("sha=:AAAA:, unixsum=:AAAA:", UnsupportedDigestAlgorithm),
        ("", UnsupportedDigestAlgorithm),
        ('sha-256="not bytes"', MalformedHeader),
        ("sha-256=:not base64!:", MalformedHeader),
        ("sha-256", MalformedHeader),
    ],
)
def test_content_digest_rejects(value: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        verify_content_digest(value, BODY)


# --- derived components and fields -----------------------------------------


@pytest.mark.parametrize(
    ("url", "authority"),
    [
        ("https://Node-A.Example:443/x", "node-a.example"),
        ("http://node-a.example:80/x", "node-a.example"),
        ("http://node-a.example:443/x", "node-a.example:443"),
        ("https://node-a.example:80/x", "node-a.example:80"),
        ("https://node-a.example:8443/x", "node-a.example:8443"),
        ("https://[::1]:8443/x", "[::1]:8443"),
        ("https://[::1]/x", "[::1]"),
    ],
)
def test_authority_is_lower_cased_without_the_default_port(url: str, authority: str) -> None:
    assert HttpRequest.parse("GET", url, []).component(Item("@authority")) == authority


@pytest.mark.parametrize(
    ("url", "path", "query"),
    [
        ("https://h.example/a/b?x=1&y=%20", "/a/b", "?x=1&y=%20"),
        ("https://h.example/a", "/a", "?"),
        ("https://h.example/a?", "/a", "?"),
        ("https://h.example", "/", "?"),
        ("https://h.example?q", "/", "?q"),
    ],
)
def test_path_and_query(url: str, path: str, query: str) -> None:
    request = HttpRequest.parse("GET", url, [])
    assert request.component(Item("@path")) == path
    assert request.component(Item("@query")) == query


def test_method_scheme_and_target_uri() -> None:
    request = HttpRequest.parse("PATCH", "HTTPS://h.example/a?b", [])
    assert request.component(Item("@method")) == "PATCH"
    assert request.component(Item("@scheme")) == "https"
    assert request.component(Item("@target-uri")) == "HTTPS://h.example/a?b"


def test_fields_are_trimmed_and_repeated_ones_joined_whatever_their_case() -> None:
    request = HttpRequest.parse(
        "GET",
        "https://h.example/",
        [("Accept", "  text/plain\t"), ("X-Empty", " "), ("ACCEPT", "a/b")],
    )
    base = signature_base(
        [(i, request.component(i)) for i in items("accept", "x-empty")], (("created", 1),)
    )
    assert base.decode().splitlines() == [
        '"accept": text/plain, a/b',
        '"x-empty": ',
        '"@signature-params": ("accept" "x-empty");created=1',
    ]


@pytest.mark.parametrize(
    ("identifier", "problem"),
    [
        (Item("@status"), "unsupported derived component"),
        (Item("@query-param", (("name", "Pet"),)), "component parameters"),
        (Item("Accept"), "lower-case"),
        (Item("x-absent"), "absent"),
        (Item(Token("accept")), "strings"),
    ],
)
def test_component_refuses(identifier: Item, problem: str) -> None:
    request = HttpRequest.parse("GET", "https://h.example/", [("Accept", "*/*")])
    with pytest.raises(MalformedRequest, match=problem):
        request.component(identifier)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://h.example/x",
        "https:///x",
        "https://user@h.example/x",
        "https://h.example/x#frag",
        "https://h.example:99999/x",
        "https://h.example:port/x",
        "https://h.example/x\n",
        "https://h.example/a\tb",
        "https://h.example/é",
        "",
        "/relative",
    ],
)
def test_unusable_urls_are_refused(url: str) -> None:
    with pytest.raises(MalformedRequest):
        HttpRequest.parse("GET", url, [])


@pytest.mark.parametrize("method", ["", "GET POST", "GET\n", "GÉT"])
def test_methods_must_be_tokens(method: str) -> None:
    with pytest.raises(MalformedRequest):
        HttpRequest.parse(method, "https://h.example/", [])


def test_a_value_with_a_line_break_cannot_forge_another_line() -> None:
    forged = 'x\n"@method": GET'
    with pytest.raises(MalformedRequest, match="x-a"):
        signature_base([(Item("x-a"), forged)], ())


def test_a_component_covered_twice_is_refused() -> None:
    with pytest.raises(WrongCoveredComponents, match="twice"):
        signature_base([(Item("@method"), "GET"), (Item("@method"), "GET")], ())


def test_signature_params_cannot_be_covered() -> None:
    with pytest.raises(WrongCoveredComponents, match="cannot be a covered"):
        signature_base([(Item("@signature-params"), "()")], ())


def test_signature_params_keep_the_order_given() -> None:
    params = (
        ("tag", "t"),
        ("keyid", "k"),
        ("alg", "a"),
        ("nonce", "n"),
        ("expires", 2),
        ("created", 1),
    )
    assert signature_base([], params) == (
        b'"@signature-params": ();tag="t";keyid="k";alg="a";nonce="n";expires=2;created=1'
    )


# --- RFC 8941 subset ---------------------------------------------------------


def test_dictionary_with_every_supported_type() -> None:
    text = 'a=1, b="x\\"y\\\\z", c=tok/en:1, d=:AQID:, e=?0, f, g=(1 "s";p);q=?1;r=-5,h=*t'
    assert parse_dictionary("X", text) == {
        "a": Item(1),
        "b": Item('x"y\\z'),
        "c": Item(Token("tok/en:1")),
        "d": Item(b"\x01\x02\x03"),
        "e": Item(False),
        "f": Item(True),
        "g": InnerList((Item(1), Item("s", (("p", True),))), (("q", True), ("r", -5))),
        "h": Item(Token("*t")),
    }


def test_members_serialise_back_canonically() -> None:
    text = 'a=1, b="x\\"y\\\\z", c=tok/en:1, d=:AQID:, e=?0, f;p, g=(1 "s";p);q;r=-5'
    members = parse_dictionary("X", text)
    serialised = [
        f"{key}={serialize_item(m) if isinstance(m, Item) else serialize_inner_list(m)}"
        for key, m in members.items()
    ]
    assert ", ".join(serialised) == text.replace("f;p", "f=?1;p")


def test_token_and_string_keep_their_types_through_serialisation() -> None:
    parsed = parse_dictionary("X", 'a=("s" t);k=v;l="v"')["a"]
    assert isinstance(parsed, InnerList)
    assert serialize_inner_list(parsed) == '("s" t);k=v;l="v"'


def test_empty_dictionary_and_surrounding_spaces() -> None:
    assert parse_dictionary("X", "") == {}
    assert parse_dictionary("X", "  a=1 ,\tb=2  ") == {"a": Item(1), "b": Item(2)}
    assert parse_dictionary("X", "a=1, f") == {"a": Item(1), "f": Item(True)}
    assert parse_dictionary("X", "a=1;p") == {"a": Item(1, (("p", True),))}


def test_inner_list_tolerates_extra_spaces_and_serialises_canonically() -> None:
    parsed = parse_dictionary("X", 'a=(  "x"   "y" )')["a"]
    assert isinstance(parsed, InnerList)
    assert serialize_inner_list(parsed) == '("x" "y")'


MALFORMED_DICTIONARIES = [
    "a=1,",
    "a=1,,b=2",
    "a=1 b=2",
    "a=1;",
    "a=1;B=2",
    "A=1",
    "=1",
    "a=",
    "a=(",
    'a=("x"',
    'a=("x""y")',
    "a=(1)x",
    'a="unterminated',
    'a="bad \\x escape"',
    'a="caf\u00e9"',
    'a="tab\there"',
    "a=:AQI:",
    "a=:AQ$D:",
    "a=:AQID",
    "a=?2",
    "a=?",
    "a=-",
    "a=1.5",
    "a=1234567890123456",
    "a=1, a=2",
    "a=();x=1;x=2",
    "a=@x",
    "a=\u00e9",
]


@pytest.mark.parametrize("text", MALFORMED_DICTIONARIES)
def test_malformed_dictionaries_raise_malformed_header(text: str) -> None:
    with pytest.raises(MalformedHeader, match=r"^Signature-Input: .* at offset [0-9]+$"):
        parse_dictionary("Signature-Input", text)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from('a=1(); "\\:,?*-.AQ/é\t'), max_size=30))
def test_parser_raises_only_malformed_header(text: str) -> None:
    with contextlib.suppress(MalformedHeader):
        parse_dictionary("X", text)


@pytest.mark.parametrize("value", ["bad\nstring", "caf\u00e9", Token("1bad"), 10**15, -(10**15)])
def test_serialising_an_unrepresentable_value_is_a_usage_error(value: Any) -> None:
    with pytest.raises(UsageError):
        serialize_item(Item(value))


# --- our algorithm: round trip ---------------------------------------------


def test_round_trip_returns_the_signer_and_the_nonce() -> None:
    assert verify(signed()) == SignedRequest(
        signer=key().address, nonce=NONCE, created=CREATED, expires=EXPIRES
    )
    assert key().address == ADDRESS


def test_verifying_a_request_keeps_nothing_of_its_signature() -> None:
    from medledger.crypto.keys import _recover

    before = _recover.cache_info().currsize
    for nonce in ("A" * 22, "B" * 22, "C" * 22):
        assert verify(signed(nonce=nonce)).signer == key().address
    assert _recover.cache_info().currsize == before


def test_signed_headers_have_the_profile_layout() -> None:
    headers = signed()
    assert set(headers) == {"Content-Digest", "Signature-Input", "Signature"}
    assert headers["Content-Digest"] == content_digest(BODY)
    assert headers["Signature-Input"] == (
        'sig1=("@method" "@authority" "@path" "@query" "content-digest")'
        f';created={CREATED};expires={EXPIRES};nonce="{NONCE}"'
        f';alg="{ALGORITHM}";keyid="{ADDRESS}"'
    )
    signature = parse_dictionary("Signature", headers["Signature"])["sig1"]
    assert isinstance(signature, Item) and isinstance(signature.value, bytes)
    assert len(signature.value) == 65


def test_signature_base_of_our_profile() -> None:
    request = HttpRequest.parse("POST", URL, [("content-digest", content_digest(BODY))])
    params = signature_input(signed()).params
    base = signature_base([(i, request.component(i)) for i in items(*COVERED_COMPONENTS)], params)
    assert base.decode().splitlines()[:5] == [
        '"@method": POST',
        '"@authority": node-a.example:8443',
        '"@path": /records/7f3a',
        '"@query": ?since=1700000000',
        f'"content-digest": {content_digest(BODY)}',
    ]


@pytest.mark.parametrize("case", [str.lower, str.upper, str.title])
def test_header_names_may_have_any_case(case: Callable[[str], str]) -> None:
    headers = {case(name): value for name, value in signed().items()}
    assert verify(headers).signer == ADDRESS


def test_other_headers_and_labels_are_ignored() -> None:
    headers = signed()
    other = signed(label="other", nonce="B" * 22)
    headers = {
        "Content-Digest": headers["Content-Digest"],
        "Signature-Input": f"{other['Signature-Input']}, {headers['Signature-Input']}",
        "Signature": f"{headers['Signature']}, {other['Signature']}",
        "Content-Type": "application/json",
    }
    assert verify(headers).signer == ADDRESS
    assert verify(headers, label="other").nonce == "B" * 22


def test_equivalent_authorities_verify() -> None:
    headers = signed(url="https://Node-A.Example:443/x?")
    assert verify(headers, url="https://node-a.example/x?").signer == ADDRESS


def test_a_verifier_accepts_only_requests_addressed_to_its_own_authority() -> None:
    headers = signed(url="https://Node-A.Example:443/x?")
    url = "https://node-a.example/x?"
    request = {"method": "POST", "url": url, "headers": headers, "body": BODY, "now_s": NOW,
               "limits": LIMITS}  # fmt: skip
    assert verify_request(**request, authority="node-a.example").signer == ADDRESS
    with pytest.raises(WrongAuthority, match=r"addressed to node-a\.example, this node answers"):
        verify_request(**request, authority="node-b.example")
    # Checked before the signature: a forged one is refused for where it was sent.
    forged = {**headers, "Signature": "sig1=:" + base64.b64encode(b"x" * 65).decode() + ":"}
    with pytest.raises(WrongAuthority):
        verify_request(**{**request, "headers": forged}, authority="node-a.example:8443")


def test_an_empty_body_and_query_round_trip() -> None:
    url = "https://node-a.example/health"
    assert verify(signed(method="GET", url=url, body=b""), method="GET", url=url, body=b"")


@pytest.mark.parametrize("nonce", ["A" * 16, "z" * 128, "0123456789abcdef", "-_" * 8])
def test_nonce_bounds_accepted(nonce: str) -> None:
    assert verify(signed(nonce=nonce)).nonce == nonce


def test_time_bounds_accepted() -> None:
    assert verify(signed(), now_s=CREATED - LIMITS.clock_skew_s)
    assert verify(signed(), now_s=EXPIRES)
    limits = SignatureLimits(clock_skew_s=0, max_lifetime_s=10)
    assert verify(signed(expires=CREATED + 10), now_s=CREATED, limits=limits)


# --- our algorithm: every check fails on its own -----------------------------


def test_missing_signature_headers() -> None:
    headers = signed()
    with pytest.raises(SignatureMissing, match="Signature-Input"):
        verify({k: v for k, v in headers.items() if k != "Signature-Input"})
    with pytest.raises(SignatureMissing, match="no Signature header"):
        verify({k: v for k, v in headers.items() if k != "Signature"})


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("Signature-Input", 'sig1=("@method"'),
        ("Signature-Input", "sig1=:AAAA:"),
        ("Signature", "sig1=:AAAA"),
        ("Signature", 'sig1="not bytes"'),
        ("Signature", "sig1=(:AAAA:)"),
    ],
)
def test_malformed_signature_headers(header: str, value: str) -> None:
    with pytest.raises(MalformedHeader):
        verify({**signed(), header: value})


def test_unknown_label() -> None:
    with pytest.raises(SignatureLabelMissing, match=r"Signature-Input .*'sig1'"):
        verify(signed(label="sig2"))


def test_label_missing_from_signature_only() -> None:
    headers = signed()
    renamed = headers["Signature"].replace("sig1=", "sig2=", 1)
    with pytest.raises(SignatureLabelMissing, match=r"^Signature has"):
        verify({**headers, "Signature": renamed})


@pytest.mark.parametrize(
    "identifiers",
    [
        items("@method", "@authority", "@path", "content-digest"),
        items("@method", "@authority", "@path", "@query"),
        items("@method", "@authority", "@path", "@query", "content-digest", "@scheme"),
        items("@method", "@authority", "@path", "@query", "content-digest", "@method"),
        items("@method", "@authority", "@path", "@query", "Content-Digest"),
        (
            *items("@method", "@authority", "@path", "@query"),
            Item("content-digest", (("sf", True),)),
        ),
        (*items("@method", "@authority", "@path", "@query"), Item(Token("content-digest"))),
        (),
    ],
    ids=["no-query", "no-digest", "extra", "twice", "upper-case", "parameter", "token", "none"],
)
def test_covered_components_must_be_exactly_ours(identifiers: tuple[Item, ...]) -> None:
    plain = all(isinstance(i.value, str) and not isinstance(i.value, Token) for i in identifiers)
    expected = "expected each of" if plain and not any(i.params for i in identifiers) else "plain"
    with pytest.raises(WrongCoveredComponents, match=expected):
        verify(with_components(signed(), *identifiers))


def test_covered_components_in_another_order_still_need_a_matching_signature() -> None:
    reordered = with_components(signed(), *items(*reversed(COVERED_COMPONENTS)))
    with pytest.raises(SignatureMismatch):
        verify(reordered)


@pytest.mark.parametrize(
    "alg", [None, "ed25519", "ecdsa-p256-sha256", Token(ALGORITHM), ALGORITHM.upper()]
)
def test_missing_or_wrong_alg(alg: Any) -> None:
    with pytest.raises(UnsupportedAlgorithm):
        verify(with_params(signed(), alg=alg))


@pytest.mark.parametrize(
    "keyid",
    [None, "test-key-ed25519", ADDRESS[:-1], ADDRESS.replace("c7536E", "c7536e"), Token("x"), 7],
)
def test_keyid_must_be_an_address(keyid: Any) -> None:
    with pytest.raises(InvalidKeyId):
        verify(with_params(signed(), keyid=keyid))


def test_swapped_keyid_fails_the_signature() -> None:
    other = PrivateKey.from_hex(OTHER_SECRET).address
    with pytest.raises(SignatureMismatch, match=f"not keyid {other}"):
        verify(with_params(signed(), keyid=other))


def test_another_keys_signature_under_our_keyid() -> None:
    forged = with_params(signed(signer=PrivateKey.from_hex(OTHER_SECRET)), keyid=ADDRESS)
    with pytest.raises(SignatureMismatch, match=f"not keyid {ADDRESS}"):
        verify(forged)


@pytest.mark.parametrize(
    "nonce",
    [
        None,
        "A" * 15,
        "A" * 129,
        "A" * 15 + "=",
        "A" * 15 + ".",
        "A" * 15 + "+",
        Token("A" * 16),
        12345678901234,
    ],
    ids=["missing", "short", "long", "padding", "dot", "plus", "token", "integer"],
)
def test_bad_nonce(nonce: Any) -> None:
    with pytest.raises(InvalidNonce):
        verify(with_params(signed(), nonce=nonce))


@pytest.mark.parametrize("param", ["created", "expires"])
@pytest.mark.parametrize("value", [None, "1700000000", True])
def test_created_and_expires_must_be_integers(param: str, value: Any) -> None:
    with pytest.raises(MalformedHeader, match=f"integer {param}"):
        verify(with_params(signed(), **{param: value}))


def test_created_in_the_future() -> None:
    with pytest.raises(SignatureNotYetValid, match=f"created at {CREATED}, now {CREATED - 31}"):
        verify(signed(), now_s=CREATED - LIMITS.clock_skew_s - 1)


def test_expired() -> None:
    headers = signed(created=1_700_000_000, expires=1_700_000_300)
    with pytest.raises(SignatureExpired) as raised:
        verify(headers, now_s=1_700_000_400)
    assert str(raised.value) == "signature expired at 1700000300, now 1700000400"


def test_lifetime_too_long() -> None:
    with pytest.raises(SignatureLifetimeTooLong, match="301s"):
        verify(signed(expires=CREATED + 301))


def test_expires_before_created() -> None:
    with pytest.raises(MalformedHeader, match="before"):
        verify(with_params(signed(), expires=CREATED - 1), now_s=CREATED - 2)


def test_content_digest_missing() -> None:
    headers = {k: v for k, v in signed().items() if k != "Content-Digest"}
    with pytest.raises(ContentDigestMissing):
        verify(headers)


def test_content_digest_with_unknown_algorithms_only() -> None:
    with pytest.raises(UnsupportedDigestAlgorithm, match="md5"):
        verify({**signed(), "Content-Digest": "md5=:AAAA:"})


def test_tampered_body() -> None:
    with pytest.raises(ContentDigestMismatch, match="sha-256"):
        verify(signed(), body=BODY.replace(b"read", b"write"))


def test_tampered_body_with_a_matching_digest() -> None:
    body = BODY.replace(b"read", b"write")
    with pytest.raises(SignatureMismatch):
        verify({**signed(), "Content-Digest": content_digest(body)}, body=body)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("method", "PUT"),
        ("method", "post"),
        ("url", "https://node-b.example:8443/records/7f3a?since=1700000000"),
        ("url", "https://node-a.example:8444/records/7f3a?since=1700000000"),
        ("url", "https://node-a.example/records/7f3a?since=1700000000"),
        ("url", "https://node-a.example:8443/records/7f3b?since=1700000000"),
        ("url", "https://node-a.example:8443/records/7f3a?since=1700000001"),
        ("url", "https://node-a.example:8443/records/7f3a"),
        ("url", "https://node-a.example:8443/records/7f3a?"),
    ],
    ids=[
        "method",
        "method-case",
        "host",
        "port",
        "default-port",
        "path",
        "query",
        "no-query",
        "empty-query",
    ],
)
def test_tampered_covered_component(field: str, value: str) -> None:
    tampered: dict[str, Any] = {field: value}
    with pytest.raises(SignatureMismatch):
        verify(signed(), **tampered)


def test_scheme_is_not_covered() -> None:
    # Our profile does not cover @scheme: TLS termination may change it on the way.
    plain = URL.replace("https://", "http://")
    assert verify(signed(), url=plain).signer == ADDRESS


@pytest.mark.parametrize("signature", [b"", bytes(64), bytes(66), bytes(65), b"\xff" * 65], ids=len)
def test_unusable_signature_bytes(signature: bytes) -> None:
    headers = {**signed(), "Signature": f"sig1=:{base64.b64encode(signature).decode()}:"}
    with pytest.raises(SignatureMismatch):
        verify(headers)


def test_errors_never_echo_the_signature() -> None:
    headers = signed()
    encoded = headers["Signature"][len("sig1=:") : -1]
    attempts: list[Callable[[], object]] = [
        lambda: verify(headers, method="PUT"),
        lambda: verify({**headers, "Signature": "sig1=:" + encoded[:-4] + ":"}),
        lambda: verify({**headers, "Signature": "sig1=:" + encoded + "!:"}),
        lambda: verify({**headers, "Signature": "sig2=:" + encoded + ":"}),
    ]
    for attempt in attempts:
        with pytest.raises(RequestNotAuthenticated) as raised:
            attempt()
        assert encoded[:12] not in str(raised.value)


def test_error_hierarchy() -> None:
    assert issubclass(RequestNotAuthenticated, InvalidInput)
    for crypto_mismatch in (SignatureMismatch, ContentDigestMismatch):
        assert issubclass(crypto_mismatch, VerificationError)
        assert issubclass(crypto_mismatch, RequestNotAuthenticated)
    assert not issubclass(SignatureExpired, VerificationError)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_any_single_byte_change_to_the_body_fails(data: st.DataObject) -> None:
    body = data.draw(st.binary(min_size=1, max_size=64))
    headers = signed(body=body)
    index = data.draw(st.integers(0, len(body) - 1))
    byte = data.draw(st.integers(0, 255).filter(lambda b: b != body[index]))
    changed = body[:index] + bytes([byte]) + body[index + 1 :]
    with pytest.raises(RequestNotAuthenticated):
        verify(headers, body=changed)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_any_single_byte_change_to_the_path_fails(data: st.DataObject) -> None:
    origin, path, query = "https://node-a.example:8443", "/records/7f3a/grants", "?since=1"
    headers = signed(url=origin + path + query)
    index = data.draw(st.integers(0, len(path) - 1))
    byte = data.draw(st.integers(0, 255).filter(lambda b: b != ord(path[index])))
    changed = path[:index] + bytes([byte]).decode("latin-1") + path[index + 1 :]
    with pytest.raises(RequestNotAuthenticated):
        verify(headers, url=origin + changed + query)


def test_a_bracket_that_turns_the_path_into_a_broken_ipv6_authority_is_refused() -> None:
    origin = "https://node-a.example:8443"
    headers = signed(url=origin + "/records/7f3a/grants?since=1")
    with pytest.raises(RequestNotAuthenticated, match="authority"):
        verify(headers, url=origin + "[records/7f3a/grants?since=1")


# --- nonces, limits and signer misuse ----------------------------------------


def test_new_nonce_is_base64url_of_16_random_bytes() -> None:
    assert new_nonce(lambda n: bytes(range(n))) == NONCE
    assert new_nonce(lambda n: b"\xff" * n) == "_____________________w"
    assert len(new_nonce()) == 22
    assert new_nonce() != new_nonce()


def test_new_nonce_refuses_a_short_random_source() -> None:
    with pytest.raises(UsageError, match="15 bytes"):
        new_nonce(lambda n: bytes(n - 1))


def test_new_nonce_verifies() -> None:
    nonce = new_nonce()
    assert verify(signed(nonce=nonce)).nonce == nonce


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"label": "Sig1"}, "label"),
        ({"label": ""}, "label"),
        ({"nonce": "short"}, "nonce"),
        ({"nonce": "A" * 16 + '"'}, "nonce"),
        ({"created": EXPIRES + 1}, "before created"),
    ],
)
def test_sign_request_refuses_misuse(changes: dict[str, Any], problem: str) -> None:
    with pytest.raises(UsageError, match=problem):
        signed(**changes)


def test_sign_request_refuses_an_unusable_url() -> None:
    with pytest.raises(MalformedRequest):
        signed(url="https://node-a.example/x#fragment")


@pytest.mark.parametrize("limits", [{"clock_skew_s": -1}, {"max_lifetime_s": -1}])
def test_negative_limits_are_a_usage_error(limits: dict[str, int]) -> None:
    with pytest.raises(UsageError):
        SignatureLimits(**limits)


# -- a header signed when present (a node's delegation) --------------------------------

DELEGATED = "medledger-delegation"


def _delegated(value: str = "d1") -> dict[str, str]:
    headers = sign_request(key(), method="GET", url=URL, body=b"", created=CREATED,
                           expires=EXPIRES, nonce=NONCE,
                           fields={"Medledger-Delegation": value})  # fmt: skip
    return {**headers, "Medledger-Delegation": value}


def _verify_delegated(headers: dict[str, str]) -> SignedRequest:
    return verify_request(method="GET", url=URL, headers=headers, body=b"", now_s=NOW,
                          limits=LIMITS, covered_if_present=(DELEGATED,))  # fmt: skip


def test_a_header_signed_when_present_is_covered_and_checked() -> None:
    headers = _delegated()
    assert "medledger-delegation" in headers["Signature-Input"]
    assert _verify_delegated(headers).signer == ADDRESS


@pytest.mark.parametrize(
    ("attack", "refusal"),
    [
        ("swapped", SignatureMismatch),  # another value under the same signature
        ("dropped", WrongCoveredComponents),  # signed with it, sent without it
        ("added", WrongCoveredComponents),  # signed without it, sent with it
    ],
)
def test_a_header_signed_when_present_cannot_be_swapped_dropped_or_added(
    attack: str, refusal: type[Exception]
) -> None:
    if attack == "swapped":
        headers = {**_delegated("d1"), "Medledger-Delegation": "d2"}
    elif attack == "dropped":
        headers = {k: v for k, v in _delegated().items() if k != "Medledger-Delegation"}
    else:
        plain = sign_request(key(), method="GET", url=URL, body=b"", created=CREATED,
                             expires=EXPIRES, nonce=NONCE)  # fmt: skip
        headers = {**plain, "Medledger-Delegation": "d1"}
    with pytest.raises(refusal):
        _verify_delegated(headers)
