"""The patient's wallet: their credentials, and the answers they gave to verifiers.

The wallet file is encrypted under a key derived from the patient's keystore.
It keeps the AnonCreds link secret (which ties the patient's credentials together
without ever leaving the wallet), each credential with what is needed to present
it, and the id of every request answered: the ledger's verification entries are
keyed by those ids, which is how the patient sees who checked what, and when.

A wallet proves exactly what a request asks, from a credential of an issuer the
request accepts, and refuses a false predicate or a revoked credential before
anything is sent.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anoncreds
from jwcrypto import jwk

from medledger.credentials import sdjwt, zk
from medledger.credentials.claims import CLAIMS
from medledger.credentials.contract import issuer_id, verification
from medledger.credentials.errors import CredentialRevoked, UnknownIssuer
from medledger.credentials.registry import Registry
from medledger.credentials.request import SignedRequest
from medledger.credentials.sealed_file import file_key, load_sealed, save_sealed
from medledger.crypto.keys import Address, PrivateKey, to_checksum_address
from medledger.errors import UsageError

__all__ = ["Wallet", "WalletCredential"]

WALLET_LABEL = b"health wallet"


@dataclass(frozen=True)
class WalletCredential:
    """One credential the wallet holds."""

    credential_id: str
    format: str
    issuer: Address
    data: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"credential_id": self.credential_id, "format": self.format,
                "issuer": self.issuer, "data": self.data}  # fmt: skip

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> WalletCredential:
        return cls(str(obj["credential_id"]), str(obj["format"]),
                   to_checksum_address(obj["issuer"]), dict(obj["data"]))  # fmt: skip

    def held(self) -> zk.HolderCredential:
        return zk.HolderCredential(**self.data["anoncreds"])


class Wallet:
    """A patient's wallet file; every change is saved before the call returns."""

    def __init__(self, path: Path, owner: PrivateKey) -> None:
        self.path, self.owner = path, owner
        self._key = file_key(owner, WALLET_LABEL)
        if path.exists():
            document = load_sealed(path, self._key)
        else:
            document = {"link_secret": anoncreds.create_link_secret(), "credentials": [],
                        "history": [], "pending": {}}  # fmt: skip
        self.link_secret: str = document["link_secret"]
        self.credentials = [WalletCredential.from_json(c) for c in document["credentials"]]
        self.history: list[dict[str, Any]] = list(document["history"])
        self._pending: dict[str, str] = dict(document["pending"])
        if not path.exists():
            self._save()

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        save_sealed(self.path, self._key, {
            "link_secret": self.link_secret,
            "credentials": [c.to_json() for c in self.credentials],
            "history": self.history,
            "pending": self._pending,
        })  # fmt: skip

    def _add(self, credential: WalletCredential) -> WalletCredential:
        self.credentials.append(credential)
        self._save()
        return credential

    # -- receiving -------------------------------------------------------------

    def request_anoncreds(self, offer: str, registry: Registry) -> str:
        """Answer an issuer's offer with a blinded request for a credential."""
        cred_def_id = str(json.loads(offer)["cred_def_id"])
        request, metadata = zk.request_credential(
            offer, registry.document(cred_def_id), self.link_secret, os.urandom(16).hex()
        )
        self._pending[cred_def_id] = metadata
        self._save()
        return request

    def store_anoncreds(
        self, issued: str, credential_id: str, registry: Registry
    ) -> WalletCredential:
        """Check an issued AnonCreds credential against the ledger and keep it."""
        cred_def_id = str(json.loads(issued)["cred_def_id"])
        metadata = self._pending.pop(cred_def_id, None)
        if metadata is None:
            raise UsageError(f"this wallet asked for no credential of {cred_def_id}")
        rev_reg_id = str(json.loads(issued)["rev_reg_id"])
        held = zk.store_credential(
            issued, metadata, self.link_secret, registry.document(cred_def_id),
            registry.document(rev_reg_id),
        )  # fmt: skip
        data = {"anoncreds": vars(held)}
        return self._add(WalletCredential(credential_id, "anoncreds",
                                          registry.issuer_of(cred_def_id), data))  # fmt: skip

    @staticmethod
    def new_holder_key() -> jwk.JWK:
        """A fresh P-256 key for one SD-JWT VC: credentials share no holder key."""
        return jwk.JWK.generate(kty="EC", crv="P-256")

    def store_sd_jwt(self, issuance: str, holder_key: jwk.JWK, credential_id: str,
                     registry: Registry, *, now_s: int) -> WalletCredential:  # fmt: skip
        """Check an issued SD-JWT VC by presenting it to ourselves, then keep it."""
        probe = sdjwt.present_sd_jwt(issuance, holder_key, (), audience="wallet", nonce="check",
                                     now=now_s)  # fmt: skip
        checked = sdjwt.verify_sd_jwt(probe, registry.jwk_for, audience="wallet", nonce="check",
                                      now=now_s)  # fmt: skip
        issuer = registry.issuer_address(checked.issuer)
        data = {"issuance": issuance, "holder_key": json.loads(holder_key.export_private())}
        return self._add(WalletCredential(credential_id, "sd-jwt", issuer, data))

    def store_health_card(self, jws: str, credential_id: str, issuer: Address) -> WalletCredential:
        return self._add(WalletCredential(credential_id, "health-card", issuer, {"jws": jws}))

    # -- presenting ------------------------------------------------------------

    def _candidates(self, signed: SignedRequest) -> list[WalletCredential]:
        request = signed.request
        return [
            c for c in reversed(self.credentials)
            if c.format == request.format and (not request.issuers or c.issuer in request.issuers)
        ]  # fmt: skip

    def describe(self, signed: SignedRequest, registry: Registry) -> list[str]:
        """What the wallet shows before the patient agrees: who asks, why, and for what."""
        request = signed.request
        role = registry.verifier_role(request.verifier)
        asks = [f"prove {p} ({CLAIMS[p.claim]})" for p in request.predicates]
        asks += [f"disclose {claim} ({CLAIMS[claim]})" for claim in request.disclose]
        issuers = ", ".join(request.issuers) or "any issuer on the ledger"
        return [
            f"verifier {request.verifier} ({role}), purpose {request.purpose}",
            *asks,
            f"from {request.format} credential of {issuers}",
            f"open until {_utc(request.not_after_ms)}; request {request.id}",
        ]

    def present(self, signed: SignedRequest, registry: Registry, *, now_ms: int,
                tails_dir: Path) -> dict[str, Any]:  # fmt: skip
        """Prove what ``signed`` asks, from the newest suitable unrevoked credential."""
        request = signed.request
        request.check_fresh(now_ms)
        registry.verifier_role(request.verifier)
        candidates = self._candidates(signed)
        if not candidates:
            raise UnknownIssuer(
                f"no {request.format} credential from an issuer this request accepts"
            )
        revoked: CredentialRevoked | None = None
        for credential in candidates:
            try:
                presentation = self._prove(credential, signed, registry, now_ms, tails_dir)
            except CredentialRevoked as exc:
                revoked = exc
                continue
            self.history.append({"request": request.id, "verifier": request.verifier,
                                 "purpose": request.purpose, "format": request.format,
                                 "credential_id": credential.credential_id,
                                 "answered_ms": now_ms})  # fmt: skip
            self._save()
            return {"format": request.format, "request": signed.to_json(),
                    "presentation": presentation}  # fmt: skip
        assert revoked is not None
        raise revoked

    def _prove(self, credential: WalletCredential, signed: SignedRequest, registry: Registry,
               now_ms: int, tails_dir: Path) -> str:  # fmt: skip
        request = signed.request
        if credential.format == "sd-jwt":
            registry.check_not_revoked(credential.issuer, credential.credential_id)
            holder_key = jwk.JWK(**credential.data["holder_key"])
            return sdjwt.present_sd_jwt(
                credential.data["issuance"], holder_key, request.disclose,
                audience=request.verifier, nonce=request.id, now=now_ms // 1000,
            )  # fmt: skip
        held = credential.held()
        status_list = registry.current_status(held.rev_reg_id)
        if json.loads(status_list)["revocationList"][held.index]:
            raise CredentialRevoked(
                f"{credential.issuer} revoked credential {credential.credential_id}"
            )
        rev_reg = registry.document(held.rev_reg_id)
        cred_def = registry.document(held.cred_def_id)
        schema_id = str(json.loads(cred_def)["schemaId"])
        documents = {held.rev_reg_id: rev_reg, held.cred_def_id: cred_def,
                     schema_id: registry.document(schema_id)}  # fmt: skip
        tails = tails_dir / str(json.loads(rev_reg)["value"]["tailsHash"])
        if not tails.exists():
            raise UsageError(f"the tails file of {held.rev_reg_id} is not in {tails_dir}")
        pres_request = zk.presentation_request(request, [issuer_id(a) for a in request.issuers])
        return zk.prove(request, pres_request, held, self.link_secret, documents,
                        status_list=status_list, tails_path=str(tails))  # fmt: skip

    def verifications(self, registry: Registry) -> list[dict[str, Any]]:
        """Every request this wallet answered, with the outcome the verifier put on the ledger."""
        return [{**entry, "ledger": verification(registry.view, entry["request"])}
                for entry in self.history]  # fmt: skip


def _utc(ms: int) -> str:
    try:
        return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")
    except (ValueError, OverflowError, OSError):
        # A request may name any time below 2**64 ms; past year 9999 no date holds it.
        return f"{ms} ms"
