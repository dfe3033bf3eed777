"""SMART App Launch, standalone: the authorization code flow with PKCE, for public apps.

Nobody here has a password. A person shows who they are by signing, in the browser, the
Delegation the node will read under (access/delegation.py): to this node, for this app,
of the resource types the scopes asked for, until an expiry the node offered. Whoever
signed is the session's principal, and the node never holds their key, so such a session
reads and never writes.

``begin`` (``GET /auth/authorize``) checks the request and keeps it as :class:`Pending`;
``decide`` checks the signed delegation against it and makes a code that lives 60 s,
bound to the app, its redirect URI and the PKCE challenge; ``exchange`` (``POST
/auth/token``) turns the code into a :class:`Session`. A code is presented once: a
failed presentation spends it (a stolen code cannot be tried against verifiers), and a
second presentation revokes the token the first one got (RFC 6749 section 10.5).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, TypeVar
from urllib.parse import urlencode, urlsplit, urlunsplit

from medledger.access.delegation import Delegation, SignedDelegation
from medledger.crypto.keys import Address
from medledger.errors import InvalidInput
from medledger.ledger.contracts.base import StateView
from medledger.ledger.contracts.identity import is_subject, standing_participant
from medledger.ledger.timestamps import NS_PER_MS, NS_PER_S
from medledger.node.errors import NotFound
from medledger.node.fhir.apps import AppRegistry, PublicApp
from medledger.node.fhir.pkce import S256, check_verifier, is_challenge
from medledger.node.fhir.scopes import Granted, grant_scopes
from medledger.node.fhir.tokens import Session, TokenError, Tokens

__all__ = [
    "Authorizations",
    "AuthorizeError",
    "DecisionRefused",
    "LaunchLimits",
    "NoRedirect",
    "Pending",
]

Context = Literal["user", "patient"]
PATIENT_LAUNCH = "launch/patient"
#: Asked for by apps, not served: no ID token, no refresh token, no encounter context.
_NOT_SERVED = frozenset({"openid", "fhirUser", "offline_access", "online_access",
                         "launch/encounter"})  # fmt: skip
_MAX_STATE = 512


@dataclass(frozen=True)
class LaunchLimits:
    code_lifetime_s: int = 60
    #: How long a user has to sign on the authorization page.
    request_lifetime_s: int = 600
    #: How long the delegation the page asks for, and so the session, lives.
    session_lifetime_s: int = 3600
    #: Authorization requests, codes and spent codes each kept at most (anyone may begin).
    max_kept: int = 1000
    #: Requests and codes one client address holds at once, so that one address cannot
    #: push everyone else's out of the bounded tables.
    per_client: int = 32


class AuthorizeError(InvalidInput):
    """An authorization request refused (RFC 6749 section 4.1.2.1), told to the app at its
    registered redirect URI."""

    def __init__(self, error: str, description: str, redirect_uri: str, state: str) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.redirect_uri = redirect_uri
        self.state = state

    def redirect(self) -> str:
        answer = {"error": self.error, "error_description": self.description}
        return with_query(self.redirect_uri, answer | ({"state": self.state} if self.state else {}))


class NoRedirect(InvalidInput):
    """An authorization request naming no registered app or redirect URI: told to the user,
    never sent anywhere (RFC 6749 section 4.1.2.1)."""


class DecisionRefused(InvalidInput):
    """A signed delegation that does not answer its authorization request."""


@dataclass(frozen=True)
class Pending:
    """An authorization request waiting for its user, and the delegation it asks for."""

    request_id: str
    app: PublicApp
    redirect_uri: str
    state: str
    code_challenge: str
    granted: Granted
    context: Context
    delegation: Delegation
    expires_ns: int
    #: The address the request came from.
    client: str = ""


@dataclass(frozen=True)
class _Code:
    pending: Pending
    signed: SignedDelegation
    principal: Address
    expires_ns: int
    #: The address the decision came from.
    client: str = ""


@dataclass(frozen=True)
class _Spent:
    #: Kept while the token it gave could live.
    expires_ns: int
    token: str | None


_Kept = TypeVar("_Kept", Pending, _Code, _Spent)


def with_query(uri: str, params: Mapping[str, str]) -> str:
    """``uri`` with ``params`` added to its query, whatever query it already has."""
    parts = urlsplit(uri)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit(parts._replace(query=query))


class Authorizations:
    """The node's authorization requests and codes, in memory: a restarted node forgets
    them, and its users authorize again."""

    def __init__(
        self, apps: AppRegistry, *, member: Address, network_id: int, fhir_base: str,
        limits: LaunchLimits | None = None,
        new_id: Callable[[], str] = lambda: secrets.token_urlsafe(32),
    ) -> None:  # fmt: skip
        self._apps = apps
        self._member = member
        self._network_id = network_id
        self._fhir_base = fhir_base
        self.limits = limits or LaunchLimits()
        self._new_id = new_id
        self._pending: dict[str, Pending] = {}
        self._codes: dict[str, _Code] = {}
        self._spent: dict[str, _Spent] = {}
        self._lock = threading.Lock()

    def begin(
        self, params: Mapping[str, str], now_ns: int | None = None, *, client: str = ""
    ) -> Pending:
        """Keep a checked authorization request from the ``client`` address; NoRedirect or
        AuthorizeError otherwise."""
        now = time.time_ns() if now_ns is None else now_ns
        app = self._apps.get(params.get("client_id", ""))
        if app is None:
            raise NoRedirect("client_id names no app registered at this node")
        redirect_uri = params.get("redirect_uri", "")
        if redirect_uri not in app.redirect_uris:
            raise NoRedirect(f"redirect_uri is none of those registered for {app.client_id}")
        state = params.get("state", "")

        def refused(error: str, description: str) -> AuthorizeError:
            return AuthorizeError(error, description, redirect_uri, state)

        if params.get("response_type") != "code":
            raise refused("unsupported_response_type", "only response_type=code")
        if not state or len(state) > _MAX_STATE:
            raise refused("invalid_request", f"state: 1 to {_MAX_STATE} characters")
        if params.get("aud", "").rstrip("/") != self._fhir_base:
            raise refused("invalid_request", f"aud must be this server's base, {self._fhir_base}")
        if params.get("code_challenge_method") != S256:
            raise refused("invalid_request", "code_challenge_method must be S256")
        challenge = params.get("code_challenge", "")
        if not is_challenge(challenge):
            raise refused("invalid_request", "code_challenge: a SHA-256 digest in base64url")
        try:
            context, granted = _granted(params.get("scope", ""))
        except InvalidInput as exc:
            raise refused("invalid_scope", str(exc).removeprefix("invalid_scope: ")) from None
        not_after_ms = (now + self.limits.session_lifetime_s * NS_PER_S) // NS_PER_MS
        delegation = Delegation.of_types(
            self._network_id, self._member, app.client_id,
            None if granted.types is None else set(granted.types), not_after_ms,
        )  # fmt: skip
        pending = Pending(self._new_id(), app, redirect_uri, state, challenge, granted, context,
                          delegation, now + self.limits.request_lifetime_s * NS_PER_S,
                          client)  # fmt: skip
        with self._lock:
            if self._held_by(client, now) >= self.limits.per_client:
                raise refused("temporarily_unavailable",
                              "too many authorizations under way from this address")  # fmt: skip
            self._pending = _kept(self._pending, now, self.limits.max_kept)
            self._pending[pending.request_id] = pending
        return pending

    def pending(self, request_id: str, now_ns: int | None = None) -> Pending:
        now = time.time_ns() if now_ns is None else now_ns
        pending = self._pending.get(request_id)
        if pending is None or pending.expires_ns <= now:
            raise NotFound("no such authorization request, or it expired: start again")
        return pending

    def decide(
        self, request_id: str, signed: SignedDelegation, view: StateView,
        now_ns: int | None = None, *, client: str = "",
    ) -> str:  # fmt: skip
        """The redirect URI with a fresh code, for a delegation that answers the request
        from the ``client`` address; NotFound or DecisionRefused (the request stays, for
        another try) otherwise."""
        now = time.time_ns() if now_ns is None else now_ns
        pending = self.pending(request_id, now)
        _check_answers(pending, signed.delegation, now)
        try:
            principal = signed.principal()
        except InvalidInput as exc:
            raise DecisionRefused(str(exc)) from None
        if pending.context == "patient" and not is_subject(view, principal):
            raise DecisionRefused(f"{principal} is no patient: patient/ scopes are a patient's")
        if pending.context == "user" and standing_participant(view, principal) is None:
            raise DecisionRefused(f"{principal} has no role at a member: user/ scopes are staff's")
        code = self._new_id()
        with self._lock:
            if pending.client != client and self._held_by(client, now) >= self.limits.per_client:
                raise DecisionRefused("too many authorizations under way from this address")
            if self._pending.pop(request_id, None) is None:
                raise NotFound("the authorization request was answered already")
            self._codes = _kept(self._codes, now, self.limits.max_kept)
            expires = now + self.limits.code_lifetime_s * NS_PER_S
            self._codes[code] = _Code(pending, signed, principal, expires, client)
        return with_query(pending.redirect_uri, {"code": code, "state": pending.state})

    def deny(self, request_id: str, now_ns: int | None = None) -> str:
        """The redirect URI telling the app its user said no."""
        pending = self.pending(request_id, now_ns)
        with self._lock:
            self._pending.pop(request_id, None)
        return AuthorizeError("access_denied", "the user denied the request",
                              pending.redirect_uri, pending.state).redirect()  # fmt: skip

    def exchange(
        self, form: Mapping[str, str], tokens: Tokens, now_ns: int | None = None
    ) -> tuple[str, Session, Address | None]:
        """A token, its session and the patient in context (a patient's own launch), for a
        code presented by its app with its verifier; TokenError otherwise."""
        now = time.time_ns() if now_ns is None else now_ns
        client_id = form.get("client_id", "")
        if self._apps.get(client_id) is None:
            raise TokenError("invalid_client", "client_id names no app registered here")
        presented = form.get("code", "")
        with self._lock:
            spent = self._spent.get(presented)
            if spent is not None:
                if spent.token is not None:
                    tokens.revoke(spent.token)
                raise TokenError("invalid_grant", "the code was used before: its token is revoked")
            code = self._codes.pop(presented, None)
            if code is None:
                raise TokenError("invalid_grant", "no such code")
            until = code.signed.delegation.not_after_ms * NS_PER_MS
            self._spent = _kept(self._spent, now, self.limits.max_kept)
            self._spent[presented] = _Spent(until, None)
            _check_presented(code, form, client_id, now)
            session = Session(code.principal, client_id, code.pending.granted.scope, code.signed,
                              until)  # fmt: skip
            token = tokens.issue(session, now)
            self._spent[presented] = _Spent(until, token)
        patient = code.principal if code.pending.context == "patient" else None
        return token, session, patient


    def _held_by(self, client: str, now: int) -> int:
        """Live requests and codes from one address (the caller holds the lock)."""
        kept: list[Pending | _Code] = [*self._pending.values(), *self._codes.values()]
        return sum(1 for k in kept if k.client == client and k.expires_ns > now)


def _granted(asked: str) -> tuple[Context, Granted]:
    """The scopes granted, read-only, in the one context (user or patient) they name."""
    scopes = [s for s in asked.split() if s not in _NOT_SERVED]
    contexts = {s.partition("/")[0] for s in scopes if s != PATIENT_LAUNCH and "/" in s}
    if "system" in contexts:
        raise InvalidInput("system/ scopes are for backend services, not launched apps")
    if contexts == {"user", "patient"}:
        raise InvalidInput("ask for user/ scopes or patient/ scopes, not both")
    context: Context = "patient" if "patient" in contexts else "user"
    if context == "user":
        # A clinician's standalone launch has no patient picker here.
        scopes = [s for s in scopes if s != PATIENT_LAUNCH]
    return context, grant_scopes(" ".join(scopes), contexts=frozenset({context}), writes=False)


def _check_answers(pending: Pending, given: Delegation, now: int) -> None:
    offered = pending.delegation
    if given.delegate != offered.delegate:
        raise DecisionRefused(f"the delegation is to {given.delegate}, not this node")
    if given.app != offered.app:
        raise DecisionRefused(f"the delegation is for app {given.app}, not {offered.app}")
    if given.resource_types != offered.resource_types:
        raise DecisionRefused(
            f"the delegation reaches {given.resource_types}, the scopes {offered.resource_types}"
        )
    if not now < given.not_after_ms * NS_PER_MS <= offered.not_after_ms * NS_PER_MS:
        raise DecisionRefused(
            f"the delegation ends at {given.not_after_ms}: after now, by {offered.not_after_ms}"
        )


def _check_presented(code: _Code, form: Mapping[str, str], client_id: str, now: int) -> None:
    if code.expires_ns <= now:
        raise TokenError("invalid_grant", "the code expired")
    if code.pending.app.client_id != client_id:
        raise TokenError("invalid_grant", "the code was issued to another client")
    if form.get("redirect_uri") != code.pending.redirect_uri:
        raise TokenError("invalid_grant", "redirect_uri is not the authorization request's")
    try:
        check_verifier(form.get("code_verifier", ""), code.pending.code_challenge)
    except InvalidInput as exc:
        raise TokenError("invalid_grant", str(exc)) from None


def _kept(kept: dict[str, _Kept], now: int, most: int) -> dict[str, _Kept]:
    """``kept`` without what expired, and room for one more: the oldest goes first."""
    live = {k: v for k, v in kept.items() if v.expires_ns > now}
    while len(live) >= most:
        del live[next(iter(live))]
    return live
