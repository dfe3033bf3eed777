"""The issuing service of a member institution: one set of claims, three formats.

An issuer (a checkup centre, a hospital) derives :class:`HealthClaims` from a
patient's records and signs them as an AnonCreds credential (predicates proven
in zero knowledge), an SD-JWT VC (claims disclosed one by one) or a SMART Health
Card (a signed FHIR Bundle, all or nothing). Its public material goes on the
ledger at set-up; its private keys stay in an encrypted state file.

Every credential gets a 16-byte id, the handle of its revocation: AnonCreds
credentials are revoked in the registry's status list, the others by id.
Bookkeeping is saved before a credential leaves, so a crash never reuses a
revocation index nor forgets what was issued.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from jwcrypto import jwk

from medledger.credentials import health_card, sdjwt, zk
from medledger.credentials.claims import HealthClaims
from medledger.credentials.contract import (
    CREDENTIAL_ID_BYTES,
    PUBLISH,
    REVOKE,
    STATUS,
    document_id,
    hex_id,
    issuer_id,
)
from medledger.credentials.sealed_file import file_key, load_sealed, save_sealed
from medledger.crypto import ecies
from medledger.crypto.keys import Address, PrivateKey
from medledger.errors import UsageError
from medledger.ledger.node import LedgerNode

__all__ = ["CREDENTIAL_LIFETIME_S", "Issuer", "signing_jwk"]

SIGNING_LABEL = b"credential signing"
STATE_LABEL = b"credential issuer state"
STATE_FILE = "issuer.sealed"
NAME = "health-summary-1"
CREDENTIAL_LIFETIME_S = 365 * 24 * 3600
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def signing_jwk(key: PrivateKey) -> jwk.JWK:
    """The institution's P-256 credential signing key, derived from its ledger key."""
    secret = int.from_bytes(ecies.derive_secret(key.to_bytes(), SIGNING_LABEL), "big")
    private = ec.derive_private_key(secret % (_P256_ORDER - 1) + 1, ec.SECP256R1())
    return jwk.JWK.from_pyca(private)


def _new_credential_id() -> str:
    return "0x" + os.urandom(16).hex()


@dataclass
class _State:
    secrets: zk.IssuerSecrets
    status_list: str
    next_index: int
    max_credentials: int
    issued: dict[str, dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        return {
            "secrets": self.secrets.to_json(),
            "status_list": self.status_list,
            "next_index": self.next_index,
            "max_credentials": self.max_credentials,
            "issued": self.issued,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> _State:
        return cls(
            zk.IssuerSecrets.from_json(obj["secrets"]),
            str(obj["status_list"]),
            int(obj["next_index"]),
            int(obj["max_credentials"]),
            dict(obj["issued"]),
        )


class Issuer:
    """One institution issuing health credentials; ``directory`` holds its state."""

    def __init__(
        self,
        node: LedgerNode,
        key: PrivateKey,
        directory: Path,
        *,
        tails_dir: Path,
        url: str | None = None,
    ) -> None:
        self.node, self.key, self.directory = node, key, directory
        self.tails_dir, self.url = tails_dir, url
        self.jwk = signing_jwk(key)
        self._file_key = file_key(key, STATE_LABEL)
        self._state: _State | None = None

    @property
    def address(self) -> Address:
        return self.key.address

    @property
    def iss(self) -> str:
        return issuer_id(self.address)

    @property
    def state(self) -> _State:
        if self._state is None:
            path = self.directory / STATE_FILE
            if not path.exists():
                raise UsageError(f"issuer {self.address} is not set up: run its set-up first")
            self._state = _State.from_json(load_sealed(path, self._file_key))
        return self._state

    def _save(self) -> None:
        save_sealed(self.directory / STATE_FILE, self._file_key, self.state.to_json())

    async def _publish(self, kind: str, name: str, document: str) -> None:
        payload = {"kind": kind, "name": name, "document": document}
        await self.node.submit_payload(self.key, PUBLISH, payload)

    async def setup(self, *, now_s: int, max_credentials: int = 1000) -> None:
        """Create the AnonCreds issuer and publish it and the signing JWK on the ledger."""
        if (self.directory / STATE_FILE).exists():
            raise UsageError(f"issuer {self.address} is already set up")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.tails_dir.mkdir(parents=True, exist_ok=True)
        ids = tuple(document_id(self.address, kind, NAME)
                    for kind in ("schema", "cred_def", "rev_reg"))  # fmt: skip
        secrets, status_list = zk.create_issuer(
            self.iss, (ids[0], ids[1], ids[2]), tails_dir=str(self.tails_dir),
            max_credentials=max_credentials, timestamp=now_s,
        )  # fmt: skip
        # The private keys are on disk before anything refers to them publicly.
        self._state = _State(secrets, status_list, 1, max_credentials, {})
        self._save()
        await self._publish("schema", NAME, secrets.schema)
        await self._publish("cred_def", NAME, secrets.cred_def)
        await self._publish("rev_reg", NAME, secrets.rev_reg)
        await self.node.submit_payload(
            self.key, STATUS, {"rev_reg": secrets.rev_reg_id, "list": status_list}
        )
        public: dict[str, Any] = {"jwk": json.loads(self.jwk.export_public())}
        if self.url:
            public["url"] = self.url
        await self._publish("jwk", self.jwk.thumbprint(), json.dumps(public))

    def _record(self, fmt: str, index: int | None = None) -> str:
        credential_id = _new_credential_id()
        self.state.issued[credential_id] = {"format": fmt, "index": index}
        self._save()
        return credential_id

    def offer(self) -> str:
        """An AnonCreds credential offer; the wallet answers it with a blinded request."""
        secrets = self.state.secrets
        return zk.offer(secrets)

    def issue_anoncreds(self, claims: HealthClaims, offer: str, request: str) -> tuple[str, str]:
        """The credential for ``request`` and its id."""
        state = self.state
        if state.next_index > state.max_credentials:
            raise UsageError(f"revocation registry full ({state.max_credentials} credentials)")
        index = state.next_index
        state.next_index += 1
        credential_id = self._record("anoncreds", index)
        issued = zk.issue(state.secrets, offer, request, claims.as_strings(),
                          status_list=state.status_list, index=index)  # fmt: skip
        return issued, credential_id

    def issue_sd_jwt(
        self, claims: HealthClaims, holder: jwk.JWK, *, now_s: int,
        lifetime_s: int = CREDENTIAL_LIFETIME_S,
    ) -> tuple[str, str]:  # fmt: skip
        """An SD-JWT VC bound to the holder's key, every claim selectively disclosable."""
        credential_id = self._record("sd-jwt")
        issuance = sdjwt.issue_sd_jwt(
            self.jwk, issuer=self.iss, vct=sdjwt.VCT_HEALTH_SUMMARY, claims=claims.values,
            holder_key=holder, credential_id=credential_id, issued_at=now_s,
            lifetime_s=lifetime_s,
        )  # fmt: skip
        return issuance, credential_id

    def issue_health_card(
        self, patient: Mapping[str, Any], entries: Sequence[Mapping[str, Any]], *, now_s: int,
        types: Sequence[str] = (),
    ) -> tuple[str, str]:  # fmt: skip
        """A SMART Health Card of ``entries``; its ``rid`` is the credential id."""
        if self.url is None:
            raise UsageError("a SMART Health Card issuer needs its https URL (iss)")
        credential_id = self._record("health-card")
        rid = base64.urlsafe_b64encode(bytes.fromhex(credential_id[2:])).rstrip(b"=").decode()
        bundle = health_card.card_bundle(patient, entries)
        jws = health_card.issue_health_card(
            self.jwk, issuer=self.url, bundle=bundle,
            types=[health_card.HEALTH_CARD_TYPE, *types], issued_at=now_s, revocation_id=rid,
        )  # fmt: skip
        return jws, credential_id

    async def revoke(self, credential_id: str, *, now_s: int) -> None:
        """Revoke on the ledger: a new status list for AnonCreds, by id otherwise."""
        key = hex_id(credential_id, CREDENTIAL_ID_BYTES)
        entry = None if key is None else self.state.issued.get(key)
        if key is None or entry is None:
            raise UsageError(f"issuer {self.address} did not issue {credential_id}")
        if entry["format"] != "anoncreds":
            await self.node.submit_payload(self.key, REVOKE, {"credential": key})
            return
        state = self.state
        previous = int(json.loads(state.status_list)["timestamp"])
        updated = zk.revoke(state.secrets, state.status_list, int(entry["index"]),
                            max(now_s, previous + 1))  # fmt: skip
        await self.node.submit_payload(
            self.key, STATUS, {"rev_reg": state.secrets.rev_reg_id, "list": updated}
        )
        state.status_list = updated
        self._save()
