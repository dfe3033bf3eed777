"""The access steps: a policy, grants, the audit, scope, revocation, break-glass, authors."""

from __future__ import annotations

import json

from medledger.access import contract as access
from medledger.access.audit import audit_log, break_glass_notices
from medledger.access.errors import EmptyScope
from medledger.access.reader import read_record
from medledger.crypto.errors import InsufficientShares
from medledger.demo.scene import (
    Scene,
    check,
    expect_refusal,
    labelled_key,
)
from medledger.ledger.contracts import identity
from medledger.records.pipeline import SealingPool
from medledger.records.recipients import sealing_context
from medledger.records.writer import plan_new


class AccessSteps(Scene):
    """Steps about who may read and write the patient's records."""

    async def _shared_read(self) -> str:
        policy = {
            "approvers": {"k_of": 2, "of": [{"patient": True}, {"person": self.doctor_a.address},
                                            {"role": "nurse"}]},
            "purposes": ["TREAT"], "max_duration_s": 24 * 3600,
        }  # fmt: skip
        await self.a.submit_payload(
            self.patient, access.SET_POLICY, {"category": "labs", "policy": policy}
        )
        terms = {"categories": ["labs"], "purpose": "TREAT", "duration_s": 3600}
        alone = await self._grant(self.doctor_b, [self.patient], **terms)
        check(self.a.store.get(access.GRANT_NS, "0x" + alone.hex()) is None,
              "the patient alone is 1 of the 2 the policy asks for")  # fmt: skip
        self.grant = await self._grant(self.doctor_b, [self.patient, self.doctor_a], **terms)
        lab = self._committed("Observation", "labs")
        plaintext = await read_record(self.doctor_b, self.grant, lab,
                                      custodians=self._custodians(), threshold=2)  # fmt: skip
        resource = json.loads(plaintext)
        check(resource["resourceType"] == "Observation", "Dr B reads the lab result")
        display = resource["code"]["coding"][0]["display"]
        return (
            f"policy “2 of patient, Dr A, a nurse”: the patient alone is not enough; with Dr A "
            f"a grant; 3 custodians each log a receipt, then release a share\n      Dr B "
            f"reads “{display}” from 2 shares"
        )

    async def _audit(self) -> str:
        await self._cosigned()
        reads = [e for e in audit_log(self.a, self.patient.address)
                 if e.grant == "0x" + self.grant.hex()]  # fmt: skip
        check(bool(reads) and all(e.reader == self.doctor_b.address for e in reads),
              "every read is Dr B's")  # fmt: skip
        check(all(e.proven for e in reads), "each receipt is proven")
        read = reads[0]
        checkpoint = read.receipts[0].checkpoint_size
        return (
            f"{len(reads)} read of {read.resource_type} {read.record_id} v{read.version}: reader "
            f"Dr B, category labs, purpose TREAT; {len(read.receipts)} custodians' receipts, "
            f"each proven into checkpoint {checkpoint}"
        )

    async def _scope(self) -> str:
        condition = self._committed("Condition", "conditions")
        named = "0x" + condition.commitment.hex()
        empty = await expect_refusal(EmptyScope, self.b.submit_payload(
            self.doctor_b, access.REQUEST, {"patient": self.patient.address, "categories": [],
            "records": [named], "purpose": "TREAT", "duration_s": 3600}))  # fmt: skip
        terms = {"categories": ["labs"], "records": [named], "purpose": "TREAT",
                 "duration_s": 3600}  # fmt: skip
        grant = await self._grant(self.doctor_b, [self.patient, self.doctor_a], **terms)
        why = await expect_refusal(
            InsufficientShares,
            read_record(self.doctor_b, grant, condition, custodians=self._custodians(),
                        threshold=2),
        )  # fmt: skip
        check(why.count("not in the grant's scope") == 3, "each custodian checks the category")
        return (
            f"no category: {empty}\n      a labs grant naming a Condition record: each "
            "custodian finds the record's signed category outside the grant and releases nothing"
        )

    async def _author(self) -> str:
        verifier = labelled_key("verifier-vera")
        staff = {"address": verifier.address, "role": "verifier"}
        await self.a.submit_payload(self.insurer, identity.REGISTER_PARTICIPANT, staff)
        writer = self._writer()
        job = plan_new("note.json", self.resources[-1], self.patient.address, self.pkey)
        pool = SealingPool(sealing_context(self.a, verifier), workers=1)
        report = await writer.write([job], pool)
        pool.close()
        check(not report.written and len(report.rejected) == 1, "the record is refused")
        check("does not write records" in report.rejected[0].problem, "for its author's role")
        return (
            "genesis lets doctors, nurses and labs write, at institutions the patient enrolled "
            f"at: {report.rejected[0].problem}"
        )

    async def _revoke(self) -> str:
        await self.b.submit_payload(self.patient, access.REVOKE, {"grant": "0x" + self.grant.hex()})
        await self.a.wait_for_size(self.b.size)
        lab = self._committed("Observation", "labs")
        why = await expect_refusal(
            InsufficientShares,
            read_record(self.doctor_b, self.grant, lab, custodians=self._custodians(), threshold=2),
        )
        check(why.count("was revoked") == 3, "each custodian refuses because of the revocation")
        return f"the patient revokes; Dr B asks again: {why.split(':')[0]}: each finds it revoked"

    async def _break_glass(self) -> str:
        officer = {"address": self.officer_b.address, "role": "officer"}
        await self.b.submit_payload(self.hospital_b, identity.REGISTER_PARTICIPANT, officer)
        terms = {"categories": ["conditions"], "purpose": "ETREAT", "duration_s": 3600,
                 "emergency": True}  # fmt: skip
        grant = await self._grant(self.doctor_b, [self.doctor_b, self.officer_b], **terms)
        condition = self._committed("Condition", "conditions")
        await read_record(self.doctor_b, grant, condition, custodians=self._custodians(),
                          threshold=2)  # fmt: skip
        flagged = [e for e in audit_log(self.a, self.patient.address)
                   if e.grant == "0x" + grant.hex()]  # fmt: skip
        check(bool(flagged) and all(e.emergency for e in flagged), "every such read is flagged")
        notices = break_glass_notices(self.a.store, self.patient.address)
        check([n["grant"] for n in notices] == ["0x" + grant.hex()], "the patient is notified")
        return (
            "Dr B and an on-call officer, conditions only, ETREAT, 1 h: granted without the "
            f"patient; {len(flagged)} reads flagged, and a notice waits in the patient's audit"
        )
