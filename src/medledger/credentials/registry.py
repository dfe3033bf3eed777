"""What wallets and verifiers read from the ledger: issuers, keys, revocation, verifiers.

Everything here comes from one node's state, which every node shares; a lookup
that finds nothing raises the verification error a verifier reports.
"""

from __future__ import annotations

import json
from functools import lru_cache

from jwcrypto import jwk

from medledger.credentials.contract import (
    CREDENTIAL_ID_BYTES,
    DOCUMENT_NS,
    ISSUER_URL_NS,
    REVOKED_NS,
    STATUS_NS,
    document_id,
    hex_id,
    revoked_key,
    status_head,
    status_key,
)
from medledger.credentials.errors import (
    BadPresentationRequest,
    CredentialRevoked,
    StaleRevocationState,
    UnknownIssuer,
    UnrevocableCredential,
)
from medledger.crypto.keys import Address, to_checksum_address
from medledger.errors import InvalidInput
from medledger.ledger.contracts.base import StateView
from medledger.ledger.contracts.identity import participant_role
from medledger.ledger.contracts.membership import is_member

__all__ = ["VERIFIER_ROLE", "Registry"]

VERIFIER_ROLE = "verifier"
_ISSUER_PREFIX = "medledger:"


@lru_cache(maxsize=64)
def _public_jwk(text: str) -> jwk.JWK:
    return jwk.JWK(**json.loads(text)["jwk"])


class Registry:
    """Read-only lookups over a ledger state view."""

    def __init__(self, view: StateView) -> None:
        self.view = view

    def document(self, doc_id: str, kind: str | None = None) -> str:
        """The published document ``doc_id``; with ``kind``, only if it is one of those.

        Ids from a presentation are the prover's to choose: a verifier names the kind
        it expects, or a schema could be handed to it as a credential definition.
        """
        entry = self.view.get(DOCUMENT_NS, doc_id)
        if entry is None:
            raise UnknownIssuer(f"{doc_id} is not published on the ledger")
        if kind is not None and entry["kind"] != kind:
            raise UnknownIssuer(f"{doc_id} is not a published {kind}")
        return str(entry["document"])

    def issuer_of(self, doc_id: str) -> Address:
        entry = self.view.get(DOCUMENT_NS, doc_id)
        if entry is None:
            raise UnknownIssuer(f"{doc_id} is not published on the ledger")
        return to_checksum_address(entry["issuer"])

    def issuer_address(self, iss: str) -> Address:
        """The member behind an ``iss``: ``medledger:<address>`` or a registered https URL."""
        if iss.startswith(_ISSUER_PREFIX):
            try:
                address = to_checksum_address(iss.removeprefix(_ISSUER_PREFIX))
            except InvalidInput:
                raise UnknownIssuer(f"issuer {iss!r} is not a medledger issuer id") from None
        else:
            owner = self.view.get(ISSUER_URL_NS, iss)
            if owner is None:
                raise UnknownIssuer(f"issuer URL {iss!r} is not registered on the ledger")
            address = to_checksum_address(owner)
        if not is_member(self.view, address):
            raise UnknownIssuer(f"issuer {address} is not an active member")
        return address

    def jwk_for(self, iss: str, kid: str) -> jwk.JWK:
        """The public key ``iss`` signs with under ``kid``; the lookup SD-JWT and SHC take."""
        return _public_jwk(self.document(document_id(self.issuer_address(iss), "jwk", kid)))

    def current_status(self, rev_reg: str) -> str:
        """The registry's current AnonCreds revocation status list."""
        head = status_head(self.view, rev_reg)
        if head is None:
            raise UnknownIssuer(f"{rev_reg} has no revocation status list on the ledger")
        return str(self.view.get(STATUS_NS, status_key(rev_reg, head)))

    def check_current_status(self, rev_reg: str, timestamp: int) -> str:
        """The current list, if ``timestamp`` is its timestamp; StaleRevocationState if not."""
        head = status_head(self.view, rev_reg)
        if head is None:
            raise UnknownIssuer(f"{rev_reg} has no revocation status list on the ledger")
        if timestamp != head:
            raise StaleRevocationState(
                f"non-revocation proven against the status list of {timestamp}, "
                f"but {rev_reg}'s current list is of {head}"
            )
        return str(self.view.get(STATUS_NS, status_key(rev_reg, head)))

    def check_not_revoked(self, issuer: Address, credential_id: str) -> None:
        """CredentialRevoked if ``issuer`` revoked the credential, in whichever case its
        id is spelled; UnrevocableCredential if the id is not one it could revoke."""
        credential = hex_id(credential_id, CREDENTIAL_ID_BYTES)
        if credential is None:
            raise UnrevocableCredential(
                f"credential id {credential_id[:80]!r} is not {CREDENTIAL_ID_BYTES} bytes "
                "as 0x-prefixed hex"
            )
        if self.view.get(REVOKED_NS, revoked_key(issuer, credential)) is not None:
            raise CredentialRevoked(f"{issuer} revoked credential {credential}")

    def verifier_role(self, address: Address) -> str:
        """``member`` or the participant role of a verifier; BadPresentationRequest if none."""
        if is_member(self.view, address):
            return "member"
        role = participant_role(self.view, address)
        if role is None:
            raise BadPresentationRequest(f"verifier {address} is not registered on the ledger")
        return role
