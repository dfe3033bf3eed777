"""SMART on FHIR scopes (v1 ``.read`` and v2 ``.rs``), as far as this server honours them.

A scope names a context (``system``, ``user``, ``patient``), a resource type or ``*``,
and what may be done. The FHIR API only reads, so a scope is honoured for reading and
searching and its other permissions are dropped from the scope granted; a request for
nothing readable is refused. What a token's scopes allow becomes the resource types of
the holder's delegation (access/delegation.py), which custodians and every node check:
scopes narrow what a grant allows, never widen it.
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
    """What a token may read: ``types`` None is every resource type."""

    scope: str
    types: frozenset[str] | None


def grant_scopes(asked: str, *, contexts: frozenset[str]) -> Granted:
    """The readable part of ``asked``, in the contexts this client may use; InvalidInput
    (``invalid_scope``) when nothing readable is left or a scope is malformed."""
    granted: list[str] = []
    types: set[str] = set()
    every = False
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
        readable = _readable(what)
        if not readable:
            continue
        granted.append(f"{context}/{kind}.{readable}")
        if kind == "*":
            every = True
        else:
            types.add(kind)
    if not any("/" in scope for scope in granted):
        raise InvalidInput("invalid_scope: no scope to read or search with")
    return Granted(" ".join(granted), None if every else frozenset(types))


def _readable(what: str) -> str:
    """The read and search part of a permission, spelt as it was asked (v1 or v2)."""
    if what in ("read", "*"):
        return "read"
    if what == "write":
        return ""
    return "".join(p for p in "rs" if p in what)
