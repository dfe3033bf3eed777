"""SMART on FHIR scopes (v1 ``.read``/``.write`` and v2 ``.cruds``), as this server
honours them.

A scope names a context (``system``, ``user``, ``patient``), a resource type or ``*``,
and what may be done: read and search (``r``, ``s``; v1 ``read``), create and update
(``c``, ``u``; v1 ``write``). Delete is not served, so ``d`` is dropped from the scope
granted; a request for nothing readable is refused. What a token may read becomes the
resource types of the holder's delegation (access/delegation.py), which custodians and
every node check: scopes narrow what a grant allows, never widen it. What it may create
and update, the FHIR writer checks for each entry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from medledger.errors import InvalidInput
from medledger.records.fhir import is_resource_type

__all__ = ["Granted", "grant_scopes"]

_SCOPE = re.compile(
    r"(?P<context>system|user|patient)/(?P<type>\*|[A-Z][A-Za-z]{1,63})"
    r"\.(?P<what>read|write|\*|c?r?u?d?s?)"
)
#: Scopes about the launch and the session, not about data: granted as asked.
_SESSION_SCOPES = frozenset({"openid", "fhirUser", "offline_access", "online_access",
                             "launch/patient", "launch/encounter"})  # fmt: skip


@dataclass(frozen=True)
class Granted:
    """What a token may do: for each of reading, creating and updating, the resource
    types (None: every type)."""

    scope: str
    types: frozenset[str] | None
    creates: frozenset[str] | None = frozenset()
    updates: frozenset[str] | None = frozenset()


def grant_scopes(asked: str, *, contexts: frozenset[str], writes: bool = True) -> Granted:
    """The readable part of ``asked``, in the contexts this client may use; InvalidInput
    (``invalid_scope``) when nothing readable is left or a scope is malformed. Without
    ``writes`` (a session whose node holds no key to author with), only reading is granted."""
    granted: list[str] = []
    reach: dict[str, set[str] | None] = {"r": set(), "c": set(), "u": set()}
    for scope in asked.split():
        if scope in _SESSION_SCOPES:
            granted.append(scope)
            continue
        match = _SCOPE.fullmatch(scope)
        if match is None or not match["what"]:
            raise InvalidInput(f"invalid_scope: {scope!r} is no SMART scope this server knows")
        context, kind, what = match["context"], match["type"], match["what"]
        if context not in contexts:
            raise InvalidInput(f"invalid_scope: this client may not use {context}/ scopes")
        if kind != "*" and not is_resource_type(kind):
            raise InvalidInput(f"invalid_scope: {kind} is no FHIR R4 resource type")
        served = _served(what) if writes else _readable(what)
        if not served:
            continue
        granted.append(f"{context}/{kind}.{served}")
        for permission in _permissions(served):
            types = reach[permission]
            if kind == "*":
                reach[permission] = None
            elif types is not None:
                types.add(kind)
    if reach["r"] == set():
        raise InvalidInput("invalid_scope: no scope to read or search with")
    frozen = {k: None if v is None else frozenset(v) for k, v in reach.items()}
    return Granted(" ".join(granted), frozen["r"], frozen["c"], frozen["u"])


def _served(what: str) -> str:
    """The part of a permission this server serves, spelt as it was asked (v1 or v2)."""
    if what in ("read", "write", "*"):
        return what
    return "".join(p for p in "crus" if p in what)


def _readable(what: str) -> str:
    """The reading part of a permission, spelt as it was asked (v1 or v2)."""
    if what in ("read", "*"):
        return "read"
    return "" if what == "write" else "".join(p for p in "rs" if p in what)


def _permissions(served: str) -> str:
    """The permissions, as ``r`` (read and search), ``c`` and ``u``, a served scope gives."""
    if served == "read":
        return "r"
    if served == "write":
        return "cu"
    if served == "*":
        return "rcu"
    return "".join(sorted({"s": "r"}.get(p, p) for p in set(served)))
