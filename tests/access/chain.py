"""An access ledger executed block by block in process, with a small cast: two
hospitals' staff, a patient, a guardian and a stranger. For contract tests and the
attack tables: each transaction is one block at a clock the test controls."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medledger.access import contract as access
from medledger.access.approval import Approval
from medledger.access.receipts import receipt_payload
from medledger.access.release import Release
from medledger.crypto import ecies
from medledger.crypto.canonical import sha256
from medledger.crypto.keys import PrivateKey
from medledger.ledger.contracts import identity
from medledger.protocol import contract_set
from medledger.records.header import NO_PREVIOUS, RecordHeader
from medledger.records.sealed import record_commitment
from tests.ledger.consortium import NETWORK_ID, InProcessLedger, key, make_consortium

HOUR_NS = 3600 * 10**9
T0 = 1_800_000_000 * 10**9


@dataclass(frozen=True)
class Written:
    """A record version as its author signed it: what a custodian's receipt carries."""

    header: RecordHeader
    signature: bytes
    salt: bytes

    @property
    def commitment(self) -> bytes:
        return record_commitment(self.salt, self.header.digest, self.signature)

    @property
    def hex(self) -> str:
        return "0x" + self.commitment.hex()


def written(
    category: str, n: int, *, patient: str | None = None, author: PrivateKey | None = None
) -> Written:
    """Record number ``n`` of the patient, in ``category``, signed by Dr A (or ``author``)."""
    digest = sha256(bytes([n]) + category.encode())
    header = RecordHeader(NETWORK_ID, bytes([n]) * 16, 1, NO_PREVIOUS, patient or PATIENT.address,
                          "Observation", category, digest, digest, digest)  # fmt: skip
    return Written(header, header.sign(author or DR_A), bytes([n]) * 32)

PATIENT = key("patient")
DR_A, NURSE_A, PHARMACIST_A = key("dr-a"), key("nurse-a"), key("pharmacist-a")
DR_B = key("dr-b")
GUARDIAN, STRANGER = key("guardian"), key("stranger")
CAST = {k.address: k for k in (PATIENT, DR_A, NURSE_A, PHARMACIST_A, DR_B, GUARDIAN, STRANGER)}
LAB = written("labs", 1)
LAB_RECORD = LAB.hex

TWO_OF_THREE = {
    "approvers": {
        "k_of": 2,
        "of": [{"patient": True}, {"person": DR_A.address}, {"role": "nurse"}],
    },
    "purposes": ["TREAT", "ETREAT"],
    "max_duration_s": 7 * 24 * 3600,
}


class Ledger(InProcessLedger):
    def __init__(self, tmp_path: Path) -> None:
        super().__init__(str(tmp_path / "state.db"), contract_set(), make_consortium(), start_ns=T0)
        hospital_a, hospital_b = self.consortium.keys[0], self.consortium.keys[1]
        staff = [(hospital_a, DR_A, "doctor"), (hospital_a, NURSE_A, "nurse"),
                 (hospital_b, DR_B, "doctor")]  # fmt: skip
        for institution, person, role in staff:
            payload = {"address": person.address, "role": role}
            self.ok(institution, identity.REGISTER_PARTICIPANT, payload)
        self.ok(self.consortium.keys[0], identity.REGISTER_PARTICIPANT,
                {"address": PHARMACIST_A.address, "role": "officer"})  # fmt: skip
        encryption_key = "0x" + ecies.public_bytes(ecies.generate_private_key()).hex()
        self.ok(PATIENT, identity.REGISTER_SUBJECT, {"encryption_key": encryption_key})

    def send(
        self, signer: PrivateKey, tx_type: str, payload: dict[str, Any], *, at: int | None = None
    ) -> str | None:
        return self.submit(signer, tx_type, payload, at=at)[0]

    def ok(self, signer: PrivateKey, tx_type: str, payload: dict[str, Any]) -> None:
        assert self.send(signer, tx_type, payload) is None

    def request(self, requester: PrivateKey = DR_B, **changes: Any) -> tuple[str | None, bytes]:
        payload = {
            "patient": PATIENT.address,
            "categories": ["labs"],
            "purpose": "TREAT",
            "duration_s": 3600,
            **changes,
        }
        return self.submit(requester, access.REQUEST, payload)

    def approval(self, request_id: bytes, signer: PrivateKey, *, requester: PrivateKey = DR_B,
                 not_after_ns: int | None = None) -> dict[str, Any]:  # fmt: skip
        not_after_ms = (not_after_ns or self.now + HOUR_NS) // 10**6
        approval = Approval(NETWORK_ID, request_id, PATIENT.address, requester.address,
                            not_after_ms)  # fmt: skip
        return approval.signed_by(signer)

    def approve(self, request_id: bytes, *approvals: dict[str, Any]) -> str | None:
        payload = {"request": "0x" + request_id.hex(), "approvals": list(approvals)}
        return self.send(DR_B, access.APPROVE, payload)

    def grant(self, request_id: bytes) -> Any:
        return self.store.get(access.GRANT_NS, "0x" + request_id.hex())

    def receipt(self, request_id: bytes, *, custodian: int = 0, category: str = "labs",
                record: Written | None = None, reader: PrivateKey | None = None,
                not_after_ns: int | None = None, sender: PrivateKey | None = None,
                **kw: Any) -> str | None:  # fmt: skip
        """A custodian's receipt for a read of ``record`` (by default a record in
        ``category``), asked for by ``reader`` (by default the grant's holder)."""
        shown = record or (LAB if category == "labs" else written(category, 9))
        grant = self.grant(request_id)
        asker = reader or CAST[grant["requester"] if grant else DR_B.address]
        at = kw.get("at") or self.now
        not_after_ms = (not_after_ns or at + 5 * 60 * 10**9) // 10**6
        release = Release.of(NETWORK_ID, request_id, [shown.commitment], bytes(32), not_after_ms)
        payload = receipt_payload(
            request_id, records=[shown], release=release, asked=release.sign(asker)
        )
        return self.send(sender or self.consortium.keys[custodian], access.RECEIPT, payload, **kw)
