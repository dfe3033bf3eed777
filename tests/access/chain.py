"""An access ledger executed block by block in process, with a small cast: two
hospitals' staff, a patient, a guardian and a stranger. For contract tests and the
attack tables: each transaction is one block at a clock the test controls."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medledger.access import contract as access
from medledger.access.approval import Approval
from medledger.crypto import ecies
from medledger.crypto.keys import PrivateKey
from medledger.ledger.contracts import identity
from medledger.protocol import contract_set
from tests.ledger.consortium import NETWORK_ID, InProcessLedger, key, make_consortium

HOUR_NS = 3600 * 10**9
T0 = 1_800_000_000 * 10**9
LAB_RECORD = "0x" + "ab" * 32

PATIENT = key("patient")
DR_A, NURSE_A, PHARMACIST_A = key("dr-a"), key("nurse-a"), key("pharmacist-a")
DR_B = key("dr-b")
GUARDIAN, STRANGER = key("guardian"), key("stranger")

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
                record: str = LAB_RECORD, **kw: Any) -> str | None:  # fmt: skip
        payload = {"grant": "0x" + request_id.hex(), "record": record, "category": category}
        return self.send(self.consortium.keys[custodian], access.RECEIPT, payload, **kw)
