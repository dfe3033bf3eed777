"""Reading fields out of untrusted payloads, with errors that name the field."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from medledger.crypto.hexdata import parse_hex
from medledger.crypto.keys import Address, to_checksum_address
from medledger.errors import InvalidInput
from medledger.ledger.errors import InvalidPayload

_NAME = re.compile(r"[a-z][a-z0-9_-]{0,63}")


def field(payload: Mapping[str, Any], name: str) -> Any:
    try:
        return payload[name]
    except KeyError:
        raise InvalidPayload(f"{name}: missing") from None


def text(payload: Mapping[str, Any], name: str, *, max_length: int = 200) -> str:
    value = field(payload, name)
    if not isinstance(value, str) or not 0 < len(value) <= max_length:
        raise InvalidPayload(f"{name}: expected a string of 1 to {max_length} characters")
    return value


def identifier(payload: Mapping[str, Any], name: str) -> str:
    value = text(payload, name, max_length=64)
    if not _NAME.fullmatch(value):
        raise InvalidPayload(f"{name}: {value!r} is not a lowercase identifier")
    return value


def integer(
    payload: Mapping[str, Any], name: str, *, minimum: int = 0, maximum: int = 2**63 - 1
) -> int:
    value = field(payload, name)
    if type(value) is not int or not minimum <= value <= maximum:
        raise InvalidPayload(
            f"{name}: expected an integer in [{minimum}, {maximum}], got {value!r}"
        )
    return value


def address(payload: Mapping[str, Any], name: str) -> Address:
    value = field(payload, name)
    if not isinstance(value, str):
        raise InvalidPayload(f"{name}: expected an address")
    try:
        return to_checksum_address(value)
    except InvalidInput as exc:
        raise InvalidPayload(f"{name}: {exc}") from exc


def hex_bytes(payload: Mapping[str, Any], name: str, length: int) -> bytes:
    value = field(payload, name)
    try:
        return parse_hex(value, length)
    except ValueError:
        raise InvalidPayload(f"{name}: expected {length} bytes as 0x-prefixed hex") from None


def object_list(
    payload: Mapping[str, Any], name: str, *, max_items: int = 256
) -> list[Mapping[str, Any]]:
    value = field(payload, name)
    if not isinstance(value, list) or not 0 < len(value) <= max_items:
        raise InvalidPayload(f"{name}: expected a list of 1 to {max_items} objects")
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise InvalidPayload(f"{name}[{i}]: expected an object")
    return value


def string_list(payload: Mapping[str, Any], name: str, *, max_items: int = 64) -> list[str]:
    value = field(payload, name)
    if not isinstance(value, list) or len(value) > max_items:
        raise InvalidPayload(f"{name}: expected a list of at most {max_items} names")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not _NAME.fullmatch(item):
            raise InvalidPayload(f"{name}[{i}]: {item!r} is not a lowercase identifier")
    if len(set(value)) != len(value):
        raise InvalidPayload(f"{name}: duplicate entries")
    return value
