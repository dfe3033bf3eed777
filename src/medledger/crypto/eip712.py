"""EIP-712 hashing and signing of typed structured data."""

import re
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from medledger.crypto.errors import InvalidAddress, InvalidTypedData
from medledger.crypto.hexdata import parse_hex
from medledger.crypto.keys import (
    Address,
    PrivateKey,
    keccak256,
    recover_address,
    to_checksum_address,
)

__all__ = [
    "TypedDataEncoder",
    "digest",
    "domain_separator",
    "hash_typed_data",
    "recover_typed_data",
    "sign_typed_data",
]

_Encoder = Callable[[Any], bytes]
_FrozenTypes = tuple[tuple[str, tuple[tuple[str, str], ...]], ...]

_DOMAIN = "EIP712Domain"
_DOMAIN_FIELDS = (
    ("name", "string"),
    ("version", "string"),
    ("chainId", "uint256"),
    ("verifyingContract", "address"),
    ("salt", "bytes32"),
)
_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*\Z")
_ARRAY = re.compile(r"(.+)\[([1-9][0-9]*)?\]\Z")
_DECIMAL = re.compile(r"-?[0-9]{1,80}\Z")
_HEX_INT = re.compile(r"0x[0-9a-fA-F]{1,64}\Z")
_ZERO = bytes(32)
_ONE = (1).to_bytes(32, "big")


class _Bad(Exception):
    """A value failed; the path is collected on the way out, so success pays nothing."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.segments: list[str] = []

    def at(self, root: str) -> InvalidTypedData:
        return InvalidTypedData(f"{root}{''.join(reversed(self.segments))}: {self.reason}")


def _as_int(value: Any) -> int:
    # JSON wallets send big numbers as decimal or 0x strings.
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        if _DECIMAL.match(value):
            return int(value, 10)
        if _HEX_INT.match(value):
            return int(value, 16)
    raise _Bad("not an integer")


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    try:
        return parse_hex(value)
    except ValueError:
        raise _Bad("not bytes or 0x-prefixed hex") from None


def _uint(bits: int) -> _Encoder:
    limit = 1 << bits

    def encode(value: Any) -> bytes:
        number = _as_int(value)
        if not 0 <= number < limit:
            raise _Bad(f"out of range for uint{bits}")
        return number.to_bytes(32, "big")

    return encode


def _int(bits: int) -> _Encoder:
    low, high = -(1 << (bits - 1)), 1 << (bits - 1)

    def encode(value: Any) -> bytes:
        number = _as_int(value)
        if not low <= number < high:
            raise _Bad(f"out of range for int{bits}")
        return number.to_bytes(32, "big", signed=True)

    return encode


def _fixed_bytes(size: int) -> _Encoder:
    def encode(value: Any) -> bytes:
        data = _as_bytes(value)
        if len(data) != size:
            raise _Bad(f"expected {size} bytes, got {len(data)}")
        return data.ljust(32, b"\0")

    return encode


def _bool(value: Any) -> bytes:
    if value is True:
        return _ONE
    if value is False:
        return _ZERO
    raise _Bad("not a bool")


@lru_cache(maxsize=4096)
def _address_word(value: str | bytes) -> bytes:
    # Ledgers see the same few addresses over and over; checksum checks are keccaks.
    return bytes.fromhex(to_checksum_address(value)[2:]).rjust(32, b"\0")


def _address(value: Any) -> bytes:
    if not isinstance(value, str | bytes):
        raise _Bad("not an address")
    try:
        return _address_word(value)
    except InvalidAddress as exc:
        raise _Bad(f"not an address ({exc})") from None


def _dynamic_bytes(value: Any) -> bytes:
    return keccak256(_as_bytes(value))


def _string(value: Any) -> bytes:
    if not isinstance(value, str):
        raise _Bad("not a string")
    try:
        return keccak256(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise _Bad("not encodable as UTF-8") from None


def _atomic_encoders() -> dict[str, _Encoder]:
    table: dict[str, _Encoder] = {
        "address": _address,
        "bool": _bool,
        "bytes": _dynamic_bytes,
        "string": _string,
    }
    for size in range(1, 33):
        table[f"bytes{size}"] = _fixed_bytes(size)
    for bits in range(8, 257, 8):
        table[f"uint{bits}"] = _uint(bits)
        table[f"int{bits}"] = _int(bits)
    return table


_ATOMIC = _atomic_encoders()


def _array(element: _Encoder, length: int | None) -> _Encoder:
    def encode(value: Any) -> bytes:
        if not isinstance(value, list | tuple):
            raise _Bad("not an array")
        if length is not None and len(value) != length:
            raise _Bad(f"expected {length} elements, got {len(value)}")
        parts = []
        for index, item in enumerate(value):
            try:
                parts.append(element(item))
            except _Bad as exc:
                exc.segments.append(f"[{index}]")
                raise
        return keccak256(b"".join(parts))

    return encode


def _base_type(type_name: str) -> str:
    return type_name.split("[", 1)[0]


def _freeze_types(types: Any) -> _FrozenTypes:
    """Check the shape of an EIP-712 "types" object and make it hashable."""
    if not isinstance(types, Mapping):
        raise InvalidTypedData("types: not an object")
    frozen = []
    for name, fields in types.items():
        if not isinstance(name, str) or not _IDENTIFIER.match(name) or name in _ATOMIC:
            raise InvalidTypedData(f"types: bad struct name {name!r}")
        if not isinstance(fields, Sequence) or isinstance(fields, str | bytes):
            raise InvalidTypedData(f"{name}: fields are not a list")
        members = []
        for field in fields:
            if not isinstance(field, Mapping):
                raise InvalidTypedData(f"{name}: field is not an object")
            field_name, field_type = field.get("name"), field.get("type")
            if not isinstance(field_name, str) or not _IDENTIFIER.match(field_name):
                raise InvalidTypedData(f"{name}: bad field name {field_name!r}")
            if not isinstance(field_type, str):
                raise InvalidTypedData(f"{name}.{field_name}: type is not a string")
            members.append((field_name, field_type))
        if len({member for member, _ in members}) != len(members):
            raise InvalidTypedData(f"{name}: duplicate field name")
        frozen.append((name, tuple(members)))
    return tuple(frozen)


class TypedDataEncoder:
    """Hashes structs of one fixed set of EIP-712 types.

    Type hashes and per-field encoders are built once here, so build one
    encoder per set of types and reuse it.
    """

    def __init__(self, types: Mapping[str, Sequence[Mapping[str, str]]]) -> None:
        """Check ``types`` (the EIP-712 "types" object, EIP712Domain optional)."""
        self._fields = dict(_freeze_types(types))
        self._encoders: dict[str, _Encoder] = dict(_ATOMIC)
        self._type_hashes = {
            name: keccak256(self.encode_type(name).encode("utf-8")) for name in self._fields
        }
        self._plans: dict[str, tuple[bytes, tuple[tuple[str, _Encoder], ...]]] = {}
        for name, members in self._fields.items():
            plan = tuple(
                (field, self._encoder(field_type, f"{name}.{field}"))
                for field, field_type in members
            )
            self._plans[name] = (self._type_hashes[name], plan)

    def _encoder(self, type_name: str, where: str) -> _Encoder:
        known = self._encoders.get(type_name)
        if known is not None:
            return known
        array = _ARRAY.match(type_name)
        encoder: _Encoder
        if array is not None:
            length = int(array.group(2)) if array.group(2) else None
            encoder = _array(self._encoder(array.group(1), where), length)
        elif type_name in self._fields:
            # Looked up at call time so that self-referencing types work.
            encoder = lambda value: self._struct(type_name, value)  # noqa: E731
        else:
            raise InvalidTypedData(f"{where}: unknown type {type_name!r}")
        self._encoders[type_name] = encoder
        return encoder

    def _dependencies(self, name: str, found: set[str]) -> None:
        for _, field_type in self._fields[name]:
            base = _base_type(field_type)
            if base in self._fields and base not in found:
                found.add(base)
                self._dependencies(base, found)

    def encode_type(self, name: str) -> str:
        """Return encodeType(name): the type, then the types it references sorted by name."""
        if name not in self._fields:
            raise InvalidTypedData(f"unknown struct type {name!r}")
        found: set[str] = set()
        self._dependencies(name, found)
        found.discard(name)
        return "".join(
            f"{struct}({','.join(f'{kind} {field}' for field, kind in self._fields[struct])})"
            for struct in [name, *sorted(found)]
        )

    def type_hash(self, name: str) -> bytes:
        """Return keccak256(encodeType(name))."""
        try:
            return self._type_hashes[name]
        except KeyError:
            raise InvalidTypedData(f"unknown struct type {name!r}") from None

    def _struct(self, name: str, data: Any) -> bytes:
        type_hash, plan = self._plans[name]
        if not isinstance(data, Mapping):
            raise _Bad(f"not an object for struct {name}")
        parts = [type_hash]
        for field, encoder in plan:
            if field not in data:
                missing = _Bad("missing")
                missing.segments.append(f".{field}")
                raise missing
            try:
                parts.append(encoder(data[field]))
            except _Bad as exc:
                exc.segments.append(f".{field}")
                raise
        if len(data) != len(plan):
            # Unknown fields would be signed without ever being hashed.
            extra = sorted(str(key) for key in data if key not in dict(plan))
            raise _Bad(f"unknown fields {', '.join(extra)}")
        return keccak256(b"".join(parts))

    def hash_struct(self, name: str, data: Mapping[str, Any]) -> bytes:
        """Return hashStruct(data) = keccak256(typeHash || encodeData(data))."""
        if name not in self._plans:
            raise InvalidTypedData(f"unknown struct type {name!r}")
        try:
            return self._struct(name, data)
        except _Bad as exc:
            raise exc.at(name) from None
        except RecursionError:
            raise InvalidTypedData(f"{name}: nested too deeply") from None


@lru_cache(maxsize=128)
def _cached_encoder(frozen: _FrozenTypes) -> TypedDataEncoder:
    return TypedDataEncoder(
        {name: [{"name": f, "type": t} for f, t in fields] for name, fields in frozen}
    )


def _domain_fields(domain: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(domain, Mapping):
        raise InvalidTypedData(f"{_DOMAIN}: not an object")
    unknown = set(domain) - {field for field, _ in _DOMAIN_FIELDS}
    if unknown:
        raise InvalidTypedData(f"{_DOMAIN}: unknown fields {', '.join(sorted(map(str, unknown)))}")
    return tuple(field for field in _DOMAIN_FIELDS if field[0] in domain)


def domain_separator(domain: Mapping[str, Any]) -> bytes:
    """Return hashStruct(EIP712Domain) over the fields present, in canonical order."""
    fields = _domain_fields(domain)
    return _cached_encoder(((_DOMAIN, fields),)).hash_struct(_DOMAIN, domain)


@lru_cache(maxsize=256)
def _cached_domain_separator(key: tuple[tuple[str, type, Any], ...]) -> bytes:
    return domain_separator({name: value for name, _, value in key})


def _domain_separator_of(domain: Any) -> bytes:
    if not isinstance(domain, Mapping):
        raise InvalidTypedData(f"{_DOMAIN}: not an object")
    # The type is part of the key because 1 == 1.0 == True, yet only 1 is valid.
    key = tuple((name, type(value), value) for name, value in domain.items())
    try:
        return _cached_domain_separator(key)
    except TypeError:
        return domain_separator(domain)


def digest(domain_sep: bytes, struct_hash: bytes) -> bytes:
    """Return keccak256(0x19 0x01 || domainSeparator || hashStruct(message))."""
    if len(domain_sep) != 32 or len(struct_hash) != 32:
        raise InvalidTypedData("domain separator and struct hash must be 32 bytes each")
    return keccak256(b"\x19\x01" + domain_sep + struct_hash)


def hash_typed_data(typed_data: Mapping[str, Any]) -> bytes:
    """Return the EIP-712 digest of {types, primaryType, domain, message}."""
    if not isinstance(typed_data, Mapping):
        raise InvalidTypedData("typed data: not an object")
    for key in ("types", "primaryType", "domain", "message"):
        if key not in typed_data:
            raise InvalidTypedData(f"typed data: missing {key!r}")
    frozen = _freeze_types(typed_data["types"])
    domain = typed_data["domain"]
    declared = dict(frozen).get(_DOMAIN)
    if declared is not None and declared != _domain_fields(domain):
        # Only the canonical field order is accepted, so that one domain has one hash.
        raise InvalidTypedData(
            f"{_DOMAIN}: declared fields differ from the domain's fields in canonical order"
        )
    primary = typed_data["primaryType"]
    if not isinstance(primary, str) or primary == _DOMAIN:
        raise InvalidTypedData(f"typed data: bad primaryType {primary!r}")
    struct_hash = _cached_encoder(frozen).hash_struct(primary, typed_data["message"])
    return digest(_domain_separator_of(domain), struct_hash)


def sign_typed_data(key: PrivateKey, typed_data: Mapping[str, Any]) -> bytes:
    """Sign the EIP-712 digest of ``typed_data``: 65 bytes r||s||v."""
    return key.sign_digest(hash_typed_data(typed_data))


def recover_typed_data(typed_data: Mapping[str, Any], signature: bytes) -> Address:
    """Return the address that signed the EIP-712 digest of ``typed_data``."""
    return recover_address(hash_typed_data(typed_data), signature)
