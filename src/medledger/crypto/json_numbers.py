"""JSON whose numbers stay as written.

FHIR decimals carry their precision in their digits: ``100.0`` is not ``100``, and
``7.20`` says more than ``7.2``. Python's parser turns both into floats and loses it,
so records are parsed with :func:`parse_json`, which keeps every number that has a
fraction or an exponent as a :class:`JsonDecimal`, and written back, canonically
(``canonical.py``) or for people (:func:`json_text`), from its text.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import orjson

from medledger.crypto.errors import NotCanonicalizable

__all__ = ["MAX_DEPTH", "JsonDecimal", "decimal_fragment", "json_text", "parse_json"]

#: How deep parse_json lets JSON nest: orjson's own limit.
MAX_DEPTH = 1024

_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


class JsonDecimal(Decimal):
    """A JSON number kept as written: its value is the decimal, its ``text`` the digits.

    Arithmetic gives plain Decimals; only the parsed value keeps its spelling.
    """

    __slots__ = ("text",)
    text: str

    def __new__(cls, text: str) -> JsonDecimal:
        if not (type(text) is str and _JSON_NUMBER.fullmatch(text)):
            raise NotCanonicalizable("not canonicalizable: a decimal that is no JSON number")
        number = super().__new__(cls, text)
        number.text = text
        return number

    def __repr__(self) -> str:  # exact: the validation memo keys elements by repr
        return f"JsonDecimal({self.text!r})"

    def __str__(self) -> str:
        return self.text

    def __reduce__(self) -> tuple[type[JsonDecimal], tuple[str]]:  # workers get them pickled
        return JsonDecimal, (self.text,)


def parse_json(data: bytes | str) -> Any:
    """Parse JSON keeping every number as written: numbers with a fraction or exponent
    become :class:`JsonDecimal`, so ``canonical_json`` writes them back unchanged.
    NaN and Infinity, which Python's parser takes, are refused (ValueError), and so is
    JSON nested deeper than :data:`MAX_DEPTH` levels."""
    raw = data.encode() if isinstance(data, str) else data
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH:
        # The stdlib parser recurses in C as deep as the input goes, stopped only by the
        # interpreter's recursion limit, which a program may have raised: on a thread's
        # smaller stack that is a crash, not an error. orjson counts depth itself.
        try:
            orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            if "depth" in str(exc):
                raise ValueError(f"nested deeper than {MAX_DEPTH} levels") from None
    return json.loads(data, parse_float=JsonDecimal, parse_constant=_refuse_constant)


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def decimal_fragment(value: object) -> orjson.Fragment:
    """orjson's ``default`` for values holding decimals: each is written as its text."""
    if type(value) is JsonDecimal:
        return orjson.Fragment(value.text)
    raise TypeError  # orjson names the type


def json_text(value: Any, *, indent: bool = False) -> str:
    """JSON for screens and files, decimals as written (keys in the value's order)."""
    option = orjson.OPT_INDENT_2 if indent else 0
    return orjson.dumps(value, default=decimal_fragment, option=option).decode()
