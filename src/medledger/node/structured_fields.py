"""A strict subset of RFC 8941 structured fields, as RFC 9421 and RFC 9530 use them.

Dictionaries, inner lists, items with parameters; integers, strings, tokens, byte
sequences, booleans (no decimals, which RFC 9421 never uses). Unlike RFC 8941, a
repeated dictionary key or parameter is an error rather than "last one wins", so that
no two readers of a header can disagree on what it says.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import NoReturn

from medledger.errors import UsageError
from medledger.node.errors import MalformedHeader

__all__ = [
    "KEY",
    "BareItem",
    "InnerList",
    "Item",
    "Params",
    "Token",
    "parse_dictionary",
    "serialize_bare",
    "serialize_inner_list",
    "serialize_item",
]


class Token(str):
    """An RFC 8941 token, kept apart from a string because the two serialise differently."""

    __slots__ = ()


BareItem = int | bool | str | bytes
"""An RFC 8941 bare item: a Token is a str subclass; bool is tested before int."""

Params = tuple[tuple[str, BareItem], ...]
"""RFC 8941 parameters, in order; a key with the value True is written bare."""


@dataclass(frozen=True)
class Item:
    """An RFC 8941 item: a bare item with parameters."""

    value: BareItem
    params: Params = ()


@dataclass(frozen=True)
class InnerList:
    """An RFC 8941 inner list: items with parameters of the list itself."""

    items: tuple[Item, ...]
    params: Params = ()


#: A dictionary key or parameter name.
KEY = re.compile(r"[a-z*][a-z0-9_\-.*]*")
_TOKEN = re.compile(r"[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*")
_INTEGER = re.compile(r"-?[0-9]{1,15}")
_PLAIN_STRING = re.compile(r'"([ !#-\[\]-~]*)"')
_PRINTABLE = re.compile(r"[ -~]*")
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_MAX_INTEGER = 999_999_999_999_999


class _Reader:
    """A cursor over one header value; every failure names the header and offset."""

    def __init__(self, header: str, text: str) -> None:
        self.header = header
        self.text = text
        self.pos = 0

    def fail(self, problem: str) -> NoReturn:
        raise MalformedHeader(f"{self.header}: {problem} at offset {self.pos}")

    def peek(self) -> str:
        return self.text[self.pos : self.pos + 1]

    def expect(self, char: str) -> None:
        if self.peek() != char:
            self.fail(f"expected {char!r}")
        self.pos += 1

    def skip(self, chars: str) -> None:
        while self.peek() and self.peek() in chars:
            self.pos += 1

    def match(self, pattern: re.Pattern[str], what: str) -> str:
        found = pattern.match(self.text, self.pos)
        if found is None:
            self.fail(f"expected {what}")
        self.pos = found.end()
        return found.group()

    def key(self) -> str:
        return self.match(KEY, "a lower-case key")

    def params(self) -> Params:
        params: list[tuple[str, BareItem]] = []
        while self.peek() == ";":
            self.pos += 1
            self.skip(" ")
            key = self.key()
            if any(key == seen for seen, _ in params):
                self.fail(f"parameter {key!r} repeated")
            value: BareItem = True
            if self.peek() == "=":
                self.pos += 1
                value = self.bare_item()
            params.append((key, value))
        return tuple(params)

    def item(self) -> Item:
        value = self.bare_item()
        return Item(value, self.params())

    def member(self) -> Item | InnerList:
        if self.peek() != "(":
            return self.item()
        self.pos += 1
        items: list[Item] = []
        while True:
            self.skip(" ")
            if self.peek() == ")":
                self.pos += 1
                return InnerList(tuple(items), self.params())
            items.append(self.item())
            if self.peek() not in (" ", ")"):
                self.fail("expected ' ' or ')' in inner list")

    def bare_item(self) -> BareItem:
        char = self.peek()
        if char and char in "-0123456789":
            return self.integer()
        if char == '"':
            return self.string()
        if char == ":":
            return self.byte_sequence()
        if char == "?":
            return self.boolean()
        if char == "*" or (char.isascii() and char.isalpha()):
            return Token(self.match(_TOKEN, "a token"))
        self.fail("expected an item")

    def integer(self) -> int:
        digits = self.match(_INTEGER, "an integer")
        if self.peek() == ".":
            self.fail("decimals are not supported")
        if self.peek() and self.peek() in "0123456789":
            self.fail("integer longer than 15 digits")
        return int(digits)

    def string(self) -> str:
        # Most strings have no escapes: take them in one match, else go character by character.
        plain = _PLAIN_STRING.match(self.text, self.pos)
        if plain is not None:
            self.pos = plain.end()
            return plain.group(1)
        self.pos += 1
        chars: list[str] = []
        while True:
            char = self.peek()
            if not char:
                self.fail("unterminated string")
            self.pos += 1
            if char == '"':
                return "".join(chars)
            if char == "\\":
                char = self.peek()
                if char not in ('"', "\\") or not char:
                    self.fail("bad escape in string")
                self.pos += 1
            elif not " " <= char <= "~":
                self.fail("non-printable character in string")
            chars.append(char)

    def byte_sequence(self) -> bytes:
        self.pos += 1
        encoded = self.match(_BASE64, "base64")
        self.expect(":")
        try:
            return base64.b64decode(encoded, validate=True)
        except binascii.Error:
            self.fail("bad base64 padding")

    def boolean(self) -> bool:
        self.pos += 1
        digit = self.peek()
        if digit not in ("0", "1") or not digit:
            self.fail("expected ?0 or ?1")
        self.pos += 1
        return digit == "1"


def parse_dictionary(header: str, text: str) -> dict[str, Item | InnerList]:
    """Parse ``text``, the value of field ``header``, as an RFC 8941 dictionary.

    Raises MalformedHeader, naming ``header`` and the offset, on anything
    outside the subset described in the module docstring.
    """
    reader = _Reader(header, text.strip(" "))
    members: dict[str, Item | InnerList] = {}
    while reader.peek():
        key = reader.key()
        if key in members:
            reader.fail(f"key {key!r} repeated")
        if reader.peek() == "=":
            reader.pos += 1
            members[key] = reader.member()
        else:
            members[key] = Item(True, reader.params())
        reader.skip(" \t")
        if not reader.peek():
            break
        reader.expect(",")
        reader.skip(" \t")
        if not reader.peek():
            reader.fail("trailing comma")
    return members


def serialize_bare(value: BareItem) -> str:
    """Serialise an RFC 8941 bare item."""
    if isinstance(value, bool):
        return "?1" if value else "?0"
    if isinstance(value, int):
        if abs(value) > _MAX_INTEGER:
            raise UsageError(f"integer {value} has more than 15 digits")
        return str(value)
    if isinstance(value, bytes):
        return ":" + base64.b64encode(value).decode("ascii") + ":"
    if isinstance(value, Token):
        if _TOKEN.fullmatch(value) is None:
            raise UsageError(f"not an RFC 8941 token: {value[:50]!r}")
        return value
    if _PRINTABLE.fullmatch(value) is None:
        raise UsageError(f"RFC 8941 strings are printable ASCII: {value[:50]!r}")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _serialize_params(params: Params) -> str:
    return "".join(
        f";{key}" if value is True else f";{key}={serialize_bare(value)}" for key, value in params
    )


def serialize_item(item: Item) -> str:
    """Serialise an RFC 8941 item with its parameters."""
    return serialize_bare(item.value) + _serialize_params(item.params)


def serialize_inner_list(inner: InnerList) -> str:
    """Serialise an RFC 8941 inner list with its parameters."""
    items = " ".join(serialize_item(item) for item in inner.items)
    return f"({items})" + _serialize_params(inner.params)
