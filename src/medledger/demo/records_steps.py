"""The records' steps: writing a chart, verifying the vault, reading, catching tampering."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import create_engine, text

from medledger.crypto.canonical import canonical_json
from medledger.crypto.errors import InsufficientShares
from medledger.crypto.json_numbers import parse_json
from medledger.demo.scene import (
    INSTITUTIONS,
    NETWORK_ID,
    Scene,
    check,
    expect_error,
    labelled_x25519_private,
)
from medledger.records.pipeline import SealingPool
from medledger.records.recipients import sealing_context
from medledger.records.sealed import open_as_patient, open_with_shares, unwrap_share
from medledger.records.synthetic import generate_patients
from medledger.records.synthetic_checkup import CheckupResults, checkup_observations
from medledger.records.verify import verify_vault
from medledger.records.writer import plan_new


class RecordsSteps(Scene):
    """Steps about the patient's records in hospital A's vault."""

    async def _write_records(self) -> str:
        (synthetic,) = generate_patients(1, seed=NETWORK_ID, records_per_patient=11)
        # The chart, and this week's checkup at the checkup centre (labs among them).
        checkup_day = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
        results = CheckupResults(5.8, 24.1, 118, 76, "never")
        checkup = checkup_observations(
            str(synthetic.patient["id"]), checkup_day, results, seed=NETWORK_ID
        )
        resources = [synthetic.patient, *synthetic.resources, *checkup]
        self.synthetic_id, self.resources = str(synthetic.patient["id"]), resources
        wrong = {**synthetic.resources[-1], "status": "done"}
        jobs = [
            plan_new(f"chart-{i}.json", r, self.patient.address, self.pkey)
            for i, r in enumerate([*resources, wrong])
        ]
        writer = self._writer()
        pool = SealingPool(sealing_context(self.a, self.doctor_a), workers=1)
        report = await writer.write(jobs, pool)
        pool.close()
        check(len(report.written) == len(resources), "every valid resource is written")
        check([r.field for r in report.rejected] == ["status"], "the bad status is named")
        self.written = report.written
        types = sorted({w.resource_type for w in report.written})
        return (
            f"{len(report.written)} records ({', '.join(types)}) sealed for 3 custodians and "
            f"the patient, committed in 1 batch\n      rejected: {report.rejected[0]}"
        )

    async def _verify_vault(self) -> str:
        report = verify_vault(self._vault(), self.a)
        check(report.ok, f"the vault verifies: {report.problems}")
        return (
            f"{report.records} records: ciphertext, keys, author signature, commitment, "
            f"batch in checkpoint {report.checkpoint_size}"
        )

    async def _read_record(self) -> str:
        lab = next(w for w in self.written if w.resource_type == "Observation")
        sealed = self._vault().get(lab.record_id).sealed
        resource = parse_json(open_as_patient(sealed, labelled_x25519_private("patient-p")))
        check(resource["resourceType"] == "Observation", "the patient reads the observation")
        members = [self.hospital_a, self.hospital_b, self.checkup]
        idents = [ident for ident, _ in INSTITUTIONS]
        shares = [
            unwrap_share(sealed, key.address, labelled_x25519_private(ident))
            for key, ident in zip(members, idents, strict=True)
        ]
        alone = await expect_error(InsufficientShares, lambda: open_with_shares(sealed, shares[:1]))
        check(open_with_shares(sealed, shares[1:]) == canonical_json(resource), "2 of 3 open it")
        code = resource["code"]["coding"][0]["display"]
        return f"the patient reads “{code}”; one custodian alone: {alone}; two: the same record"

    async def _tamper(self) -> str:
        lab = self.written[1]
        engine = create_engine(f"sqlite:///{self.institutions[0].parts.vault_url}")
        with engine.begin() as conn:
            conn.execute(
                text("UPDATE vault_records SET category = 'administrative' WHERE record_id = :r"),
                {"r": lab.record_id},
            )
        engine.dispose()
        report = verify_vault(self._vault(), self.a)
        check(not report.ok and len(report.problems) == 1, "exactly the changed record fails")
        problem = report.problems[0]
        return f"verify: {problem.subject}: {problem.check}: {problem.detail}"
