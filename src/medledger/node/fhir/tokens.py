"""Access tokens for the FHIR API, and the sessions they stand for.

A token is 32 random bytes the node hands out and keeps in memory for five minutes;
behind it is a :class:`Session`: who reads (a grant's holder), for which app, and the
delegation the holder signed to this node for that app and those resource types (the
token's scopes). A restarted node forgets its tokens and clients ask for new ones,
as SMART clients do when a token expires.

Backend Services (``client_credentials``): the client proves itself with a JWT signed
by one of its registered keys (RS384 or ES384, as SMART requires), addressed to this
token endpoint, living at most five minutes, its ``jti`` never seen before while it
lives; the node then signs the session's delegation with the participant key the
institution registered the client with.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from jwcrypto import jwk, jwt
from jwcrypto.common import JWException

from medledger.access.delegation import Delegation, SignedDelegation
from medledger.crypto.keys import Address, PrivateKey
from medledger.errors import InvalidInput
from medledger.ledger.timestamps import NS_PER_MS, NS_PER_S
from medledger.node.fhir.clients import BackendClient, ClientRegistry
from medledger.node.fhir.scopes import grant_scopes

__all__ = ["Session", "TokenError", "Tokens"]

TOKEN_LIFETIME_S = 300
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ALGORITHMS = ["RS384", "ES384"]
MAX_ASSERTION_LIFETIME_S = 300
#: What jwcrypto allows past an assertion's exp (its default leeway).
CLOCK_LEEWAY_S = 60
_MAX_SESSIONS = 10_000


class TokenError(InvalidInput):
    """An OAuth 2.0 error (RFC 6749 section 5.2): ``error`` is its code."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


@dataclass(frozen=True)
class Session:
    """What a token reads as: ``principal``'s grants, through this node, for ``app``."""

    principal: Address
    app: str
    scope: str
    delegation: SignedDelegation
    expires_ns: int
    #: The principal's key, for a system the node writes for (Backend Services).
    author: PrivateKey | None = field(default=None, repr=False)
    #: The resource types the token may create and update (None: every type).
    creates: frozenset[str] | None = frozenset()
    updates: frozenset[str] | None = frozenset()
    #: Set when its token is revoked, so that work still running for it (an export) stops.
    revoked: threading.Event = field(default_factory=threading.Event, compare=False, repr=False)

    def may_write(self, method: str, resource_type: str) -> bool:
        allowed = self.creates if method == "POST" else self.updates
        return allowed is None or resource_type in allowed


class Tokens:
    def __init__(self, registry: ClientRegistry, member: Address, network_id: int) -> None:
        self._registry = registry
        self._member = member
        self._network_id = network_id
        self._sessions: dict[str, Session] = {}
        self._seen_jti: dict[tuple[str, str], int] = {}
        # Decrypting a keystore is scrypt (a second, hundreds of MiB): once per client key.
        self._principals: dict[tuple[str, str], PrivateKey] = {}
        self._opening: dict[tuple[str, str], threading.Lock] = {}
        # Token requests run on worker threads (see routes/smart.py).
        self._lock = threading.Lock()

    def client_credentials(
        self, form: Mapping[str, str], *, token_url: str, passphrase: str,
        now_ns: int | None = None,
    ) -> tuple[str, Session]:  # fmt: skip
        """A token for a backend client that proved itself; TokenError otherwise."""
        now = time.time_ns() if now_ns is None else now_ns
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise TokenError("invalid_client", f"client_assertion_type must be {ASSERTION_TYPE}")
        assertion = form.get("client_assertion")
        if not assertion:
            raise TokenError("invalid_client", "client_assertion is required")
        client_id = _unverified_issuer(assertion)
        client = self._registry.get(client_id)
        if client is None:
            raise TokenError("invalid_client", "unknown client")
        claims = _verified_claims(assertion, client.verifying_keys(), client_id, token_url, now)
        with self._lock:
            self._spend_jti(client_id, claims, now)
        try:
            granted = grant_scopes(form.get("scope", ""), contexts=frozenset({"system"}))
        except InvalidInput as exc:
            raise TokenError("invalid_scope", str(exc)) from None
        principal = self._principal(client, passphrase)
        expires_ns = now + TOKEN_LIFETIME_S * NS_PER_S
        delegation = Delegation.of_types(
            self._network_id, self._member, client_id,
            None if granted.types is None else set(granted.types), expires_ns // NS_PER_MS,
        )  # fmt: skip
        session = Session(principal.address, client_id, granted.scope,
                          SignedDelegation.sign(delegation, principal), expires_ns,
                          author=principal, creates=granted.creates,
                          updates=granted.updates)  # fmt: skip
        with self._lock:
            return self._issue(session, now), session

    def _principal(self, client: BackendClient, passphrase: str) -> PrivateKey:
        """The client's participant key, decrypted once per registered keystore (a client
        registered again with another keystore is decrypted afresh)."""
        key = (client.client_id, json.dumps(client.principal_keystore, sort_keys=True))
        with self._lock:
            opening = self._opening.setdefault(key, threading.Lock())
        # One decryption per keystore, however many token requests arrive at once.
        with opening:
            principal = self._principals.get(key)
            if principal is None:
                principal = self._principals[key] = client.principal_key(passphrase)
        return principal

    def session(self, token: str, now_ns: int | None = None) -> Session | None:
        """The live session behind a bearer token, or None."""
        session = self._sessions.get(token)
        now = time.time_ns() if now_ns is None else now_ns
        if session is None or session.expires_ns <= now:
            return None
        return session

    def issue(self, session: Session, now_ns: int | None = None) -> str:
        """A token for a session whose principal the caller has authenticated itself."""
        now = time.time_ns() if now_ns is None else now_ns
        with self._lock:
            return self._issue(session, now)

    def revoke(self, token: str) -> None:
        with self._lock:
            session = self._sessions.pop(token, None)
        if session is not None:
            session.revoked.set()

    def _issue(self, session: Session, now: int) -> str:
        if len(self._sessions) >= _MAX_SESSIONS:
            self._sessions = {t: s for t, s in self._sessions.items() if s.expires_ns > now}
        if len(self._sessions) >= _MAX_SESSIONS:
            # No client crowds out the others: the one holding the most live tokens gives
            # up its oldest. A public app proves no identity, so a client is an app and
            # the principal who signed for it: one user of a launched app cannot push out
            # its other users' tokens.
            held = Counter((s.app, s.principal) for s in self._sessions.values())
            greediest = held.most_common(1)[0][0]
            oldest = next(t for t, s in self._sessions.items()
                          if (s.app, s.principal) == greediest)  # fmt: skip
            del self._sessions[oldest]
        token = secrets.token_urlsafe(32)
        self._sessions[token] = session
        return token

    def _spend_jti(self, client_id: str, claims: Mapping[str, object], now: int) -> None:
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti:
            raise TokenError("invalid_client", "the assertion has no jti")
        self._seen_jti = {k: exp for k, exp in self._seen_jti.items() if exp > now}
        if (client_id, jti) in self._seen_jti:
            raise TokenError("invalid_client", "the assertion was used before")
        exp = claims["exp"]
        assert isinstance(exp, int)
        # Kept as long as the assertion could still verify, clock leeway included.
        self._seen_jti[(client_id, jti)] = (exp + CLOCK_LEEWAY_S) * NS_PER_S


def _unverified_issuer(assertion: str) -> str:
    """The client an assertion claims to come from, to find its keys by; checked after."""
    try:
        payload = assertion.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, binascii.Error):
        raise TokenError("invalid_client", "the client assertion is no JWT") from None
    iss = claims.get("iss") if isinstance(claims, dict) else None
    if not isinstance(iss, str) or claims.get("sub") != iss:
        raise TokenError("invalid_client", "the assertion's iss and sub must name the client")
    return iss


def _verified_claims(
    assertion: str, keys: jwk.JWKSet, client_id: str, token_url: str, now: int
) -> dict[str, object]:
    try:
        token = jwt.JWT(
            jwt=assertion, key=keys, algs=ALGORITHMS, expected_type="JWS",
            check_claims={"iss": client_id, "sub": client_id, "aud": token_url, "exp": None},
        )  # fmt: skip
    except (JWException, ValueError, TypeError) as exc:
        raise TokenError("invalid_client", f"the client assertion does not verify: {exc}") from None
    claims = dict(json.loads(token.claims))
    exp = claims.get("exp")
    if not isinstance(exp, int) or exp > now // NS_PER_S + MAX_ASSERTION_LIFETIME_S:
        raise TokenError("invalid_client", "the assertion must expire within five minutes")
    return claims
