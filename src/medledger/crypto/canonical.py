"""Canonical JSON (RFC 8785, JCS) and SHA-256, the inputs to content hashes.

One extension to JCS: a :class:`JsonDecimal`, a JSON number with a fraction or an
exponent, is written exactly as it was read. FHIR decimals carry their precision in
their digits (``100.0`` is not ``100``), which JCS, writing numbers as IEEE doubles,
would lose. A decimal's text is checked against the JSON number grammar when it is
made, so the output is still JSON, and still one function of the parsed value: two
values that differ in a decimal's spelling are different records. Values without
decimals (everything the ledger signs) are exactly JCS.

Canonicalisation sits on the ingest hot path, and the pure-Python ``rfc8785``
serialiser is slow. For the values real records hold, orjson (sorted keys, compact
by design, UTF-8 out) writes exactly the JCS bytes, so ``canonical_json`` first
checks, in one cheap walk, that a value stays inside that common ground and only
hands the rest to the reference writer. Where the two agree was checked rather than
assumed:

* strings: both escape only ``"``, ``\\`` and U+0000..U+001F, with the same
  short forms and lowercase ``\\u00xx``; U+007F, U+2028 and U+2029 pass through.
  Lone surrogates make orjson fail, which sends the value to ``rfc8785`` to be
  rejected as before, so strings need no scan.
* ints: both print the decimal digits; only +-(2**53 - 1) is accepted.
* floats: ``rfc8785`` takes the shortest round-trip digits, as ECMAScript does,
  and lays them out as orjson does only for non-integral values with
  1e-4 <= |x| < 1e16 (orjson switches to exponents outside it, and writes "37.0"
  where JCS writes "37"). Integral floats below 2**53, -0.0 included, are written
  by JCS as the int they equal, so they take the fast path once turned into ints.
* object keys: orjson sorts by code point, JCS by UTF-16 code unit. The orders
  differ only between a supplementary-plane character (a surrogate pair in
  UTF-16) and one in U+E000..U+FFFF, so a dict with a non-ASCII key holding a
  character >= U+10000 goes to the reference writer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import orjson
import rfc8785

from medledger.crypto.errors import NotCanonicalizable
from medledger.crypto.json_numbers import JsonDecimal, decimal_fragment

__all__ = ["canonical_json", "sha256"]

_MAX_SAFE_INT = 2**53 - 1
_MAX_SAFE_FLOAT = float(2**53)
_FIRST_SUPPLEMENTARY = "\U00010000"

# Verdicts of _scan, ordered so that the worst one seen wins.
_AS_IS = 0  # the stdlib encoder writes the JCS bytes
_INTEGRAL_FLOATS = 1  # ... once integral floats are turned into ints
_SLOW = 2  # only rfc8785 gets it right (or rejects it)


def canonical_json(value: Any) -> bytes:
    """Serialise ``value`` as RFC 8785 canonical JSON (UTF-8).

    Accepts dict (str keys), list, tuple, str, int within +-(2**53 - 1), finite
    float, :class:`JsonDecimal`, bool and None; anything else raises NotCanonicalizable.
    """
    verdict = _verdict(value)
    if verdict != _SLOW:
        try:
            fast = _integral_floats_as_ints(value) if verdict == _INTEGRAL_FLOATS else value
            return orjson.dumps(fast, default=decimal_fragment, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:
            pass  # a lone surrogate or deep nesting: the reference writer decides
        except RecursionError:
            pass  # the copy used more stack than _scan did
    return _canonical_json_slow(value)


def _fast_path_ok(value: Any) -> bool:
    """Whether ``canonical_json`` leaves ``value`` to the stdlib encoder.

    True also when integral floats must first become ints. Lone surrogates are
    not looked for: they surface when the output is encoded to UTF-8. Kept so
    tests and benchmarks can tell which path a value takes.
    """
    return _verdict(value) != _SLOW


def _verdict(value: Any) -> int:
    try:
        return _scan(value)
    except RecursionError:
        return _SLOW


def _scan(value: Any) -> int:
    kind = type(value)
    if kind is dict:
        for key in value:
            if type(key) is not str:
                return _SLOW
            if not key.isascii() and max(key) >= _FIRST_SUPPLEMENTARY:
                return _SLOW
        return _scan_items(value.values())
    if kind is list or kind is tuple:
        return _scan_items(value)
    if kind is str or kind is bool or value is None or kind is JsonDecimal:
        return _AS_IS
    if kind is int:
        return _AS_IS if -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT else _SLOW
    if kind is float:
        magnitude = abs(value)
        if value.is_integer():  # False for inf and nan
            return _INTEGRAL_FLOATS if magnitude < _MAX_SAFE_FLOAT else _SLOW
        # Floats from 2**52 up are all integral, so the upper bound only keeps inf
        # out; nan fails both comparisons.
        return _AS_IS if 1e-4 <= magnitude < 1e16 else _SLOW
    # Subclasses (IntEnum, OrderedDict, ...) and foreign types: rfc8785 decides.
    return _SLOW


def _scan_items(items: Iterable[Any]) -> int:
    verdict = _AS_IS
    for item in items:
        if type(item) is str:
            continue  # the commonest leaf in records: spare it a call
        found = _scan(item)
        if found:
            if found == _SLOW:
                return _SLOW
            verdict = found
    return verdict


def _integral_floats_as_ints(value: Any) -> Any:
    """Copy ``value`` with every integral float replaced by the int it equals.

    Only called once _scan has found every integral float below 2**53 in
    magnitude, where JCS writes exactly the digits of that int.
    """
    kind = type(value)
    if kind is dict:
        return {
            key: item if type(item) is str else _integral_floats_as_ints(item)
            for key, item in value.items()
        }
    if kind is list or kind is tuple:
        return [item if type(item) is str else _integral_floats_as_ints(item) for item in value]
    if kind is float and value.is_integer():
        return int(value)
    return value


def _canonical_json_slow(value: Any) -> bytes:
    out: list[bytes] = []
    try:
        _write_slow(value, out)
        return b"".join(out)
    except rfc8785.IntegerDomainError:
        # rfc8785 names the number, which may be a value from a health record: refusals
        # reach logs and screens, so they say what is wrong and never the value.
        raise NotCanonicalizable("not canonicalizable: an integer beyond 2^53") from None
    except rfc8785.FloatDomainError:
        raise NotCanonicalizable("not canonicalizable: a number out of range") from None
    except rfc8785.CanonicalizationError as exc:
        raise NotCanonicalizable(f"not canonicalizable: {exc}") from None
    except UnicodeEncodeError:
        # Lone surrogates have no UTF-8 (or UTF-16 sort-key) encoding.
        raise NotCanonicalizable("not canonicalizable: string with a lone surrogate") from None
    except RecursionError:
        raise NotCanonicalizable("not canonicalizable: nested too deeply") from None


def _write_slow(value: Any, out: list[bytes]) -> None:
    """The reference writer: ``rfc8785`` for every leaf, decimals as written, containers
    here (``rfc8785`` knows no decimals)."""
    if isinstance(value, JsonDecimal):
        out.append(value.text.encode())
    elif isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise NotCanonicalizable("not canonicalizable: object keys must be strings")
        out.append(b"{")
        # RFC 8785 3.2.3: keys in the order of their UTF-16 code units.
        for i, (key, item) in enumerate(sorted(value.items(), key=_utf16_key)):
            out.append(b"," if i else b"")
            out.append(rfc8785.dumps(key) + b":")
            _write_slow(item, out)
        out.append(b"}")
    elif isinstance(value, list | tuple):
        out.append(b"[")
        for i, item in enumerate(value):
            out.append(b"," if i else b"")
            _write_slow(item, out)
        out.append(b"]")
    else:
        out.append(rfc8785.dumps(value))


def _utf16_key(item: tuple[str, Any]) -> bytes:
    return item[0].encode("utf-16be")


def sha256(data: bytes) -> bytes:
    """Return the SHA-256 digest of ``data``."""
    return hashlib.sha256(data).digest()
