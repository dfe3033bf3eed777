"""The optional CEL condition of an access policy.

A condition is a CEL expression over one variable, ``request``: the access
request's metadata (purpose, duration, requester role, categories, and the time
if the policy needs it). Every node evaluates it when it executes the request,
so it must give the same answer everywhere:

* The CEL library (``common-expression-language``) has no clock function: there
  is no ``now()``, and time reaches a condition only through ``request``.
* The library iterates CEL maps in a per-process random order (Rust hash maps),
  so a comprehension over a map can be true on one node and an error on another.
  Conditions therefore may not use the comprehension macros ``all``, ``exists``,
  ``exists_one``, ``map`` and ``filter``; membership is ``x in request.list``.
  The check is textual and errs towards refusal: the same words followed by
  ``(`` inside a string literal are refused too.
* Names other than ``request`` are refused when the policy is parsed, so a typo
  fails once, for its author, instead of on every later request.

Anything other than ``true`` refuses the request: ``false``, a non-boolean
result, and a runtime error (a missing field, a type mismatch, an overflow).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import cel

from medledger.access.errors import ConditionFailed, InvalidPolicy

__all__ = ["MAX_CONDITION_CHARS", "Condition"]

MAX_CONDITION_CHARS = 1000
_VARIABLES = frozenset({"request"})
_ITERATING_MACRO = re.compile(r"\b(all|exists|exists_one|map|filter)\s*\(")
_PARSE_ERROR = re.compile(r"ERROR: <input>:(.*)")


class Condition:
    """A compiled condition; construction raises :class:`InvalidPolicy`."""

    __slots__ = ("_program", "source")

    def __init__(self, source: str) -> None:
        if not 0 < len(source) <= MAX_CONDITION_CHARS:
            raise InvalidPolicy(
                f"condition: expected 1 to {MAX_CONDITION_CHARS} characters, got {len(source)}"
            )
        macro = _ITERATING_MACRO.search(source)
        if macro is not None:
            raise InvalidPolicy(
                f"condition: {macro.group(1)}() is not allowed: map iteration order differs"
                " between nodes; use `in` for membership"
            )
        try:
            program = cel.compile(source)
        except ValueError as exc:
            # The library's message repeats the whole source; keep the position and reason.
            found = _PARSE_ERROR.search(str(exc))
            raise InvalidPolicy(
                f"condition: not valid CEL: {_clip(found.group(1) if found else str(exc))}"
            ) from exc
        unknown = sorted(set(program.variables()) - _VARIABLES)
        if unknown:
            raise InvalidPolicy(f"condition: unknown name {unknown[0]!r}; only `request` exists")
        self.source = source
        self._program = program

    def check(self, request: Mapping[str, Any]) -> None:
        """Raise :class:`ConditionFailed` unless the condition is true for ``request``."""
        try:
            result = self._program.execute({"request": dict(request)})
        # The library raises KeyError, TypeError, RuntimeError, OverflowError,
        # ZeroDivisionError or ValueError: all mean the same here.
        except Exception as exc:
            raise ConditionFailed(
                f"condition {_clip(self.source)!r} failed at runtime:"
                f" {type(exc).__name__}: {_clip(str(exc))}"
            ) from exc
        if result is not True:
            outcome = "false" if result is False else f"a {type(result).__name__}, not a bool"
            raise ConditionFailed(f"condition {_clip(self.source)!r} is {outcome} for this request")


def _clip(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
