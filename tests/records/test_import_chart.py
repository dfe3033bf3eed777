"""Importing files into one patient's chart over a real ledger node and vault
(records/importer.py import_chart): the chart rules, the institution's patient index fed
and consulted, NDJSON read."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from medledger.crypto.keys import PrivateKey
from medledger.records import chart as rules
from medledger.records.chart import AmbiguousChart
from medledger.records.fhir_sources import read_files
from medledger.records.importer import ChartReport, import_chart
from medledger.records.patient_index import PatientIndex, identifier_digest, index_key
from medledger.records.recipients import patient_key
from tests.data import FHIR_EXAMPLES as EXAMPLES
from tests.records.test_chart import EXAMPLE_CHART, EXAMPLE_OTHERS, EXAMPLE_SHARED
from tests.records.world import World, world

MRN = ("urn:oid:1.2.36.146.595.217.0.1", "12345")  # Patient/example's, in the HL7 example


def run(tmp_path: Path, scenario: Callable[[World, PatientIndex], Awaitable[None]]) -> None:
    async def main() -> None:
        async with world(tmp_path) as w:
            with PatientIndex.open(str(tmp_path / "vault.db")) as index:
                await scenario(w, index)

    asyncio.run(main())


async def _import(
    w: World, index: PatientIndex, patient: PrivateKey, *paths: Path, source: str | None = None
) -> ChartReport:
    pool = w.pool()
    try:
        return await import_chart(
            w.writer, pool, patient.address, patient_key(w.node, patient.address),
            list(read_files(list(paths))), index=index,
            index_key=index_key(w.consortium.keys[0]), source_patient=source,
        )  # fmt: skip
    finally:
        pool.close()


def _rejected(done: ChartReport) -> list[tuple[str, str]]:
    return [(r.source, r.field) for r in done.report.rejected]


def test_the_hl7_folder_into_one_chart(tmp_path: Path) -> None:
    async def scenario(w: World, index: PatientIndex) -> None:
        alice = await w.add_patient("alice")
        with pytest.raises(AmbiguousChart):
            await _import(w, index, alice, EXAMPLES)
        assert w.store.for_patient(alice.address) == []  # refused before anything was sealed

        done = await _import(w, index, alice, EXAMPLES, source="example")
        written = [item.source for item in done.report.written]
        # diagnosticReport-example2 is this patient's, and fails validation (an STU3 type).
        assert written == [s for s in EXAMPLE_CHART if s != "diagnosticReport-example2.json"]
        assert _rejected(done) == [*EXAMPLE_OTHERS, ("diagnosticReport-example2.json",
                                                     "contained[25].resourceType")]  # fmt: skip
        assert {r.source: r.resource for r in done.shared} == EXAMPLE_SHARED
        assert [s.source for s in done.skipped] == ["README.md"]
        # The vault holds the chart and nothing else: no Practitioner, no second Patient.
        stored = w.store.for_patient(alice.address)
        assert sorted(r.fhir_id or "" for r in stored if r.sealed.header.resource_type
                      == "Patient") == ["example"]  # fmt: skip
        assert not {"Practitioner", "Organization", "Location", "Medication", "Claim"} & {
            r.sealed.header.resource_type for r in stored
        }
        assert done.indexed == 1
        digest = identifier_digest(index_key(w.consortium.keys[0]), MRN)
        assert index.owners([digest]) == {digest: alice.address}

    run(tmp_path, scenario)


def test_a_chart_keeps_its_patient_and_the_index_tells_patients_apart(tmp_path: Path) -> None:
    async def scenario(w: World, index: PatientIndex) -> None:
        alice, bob = await w.add_patient("alice"), await w.add_patient("bob")
        first = await _import(w, index, alice, EXAMPLES / "patient-example1.json")
        assert [w.version for w in first.report.written] == [1] and first.indexed == 1

        # The chart's Patient again is its next version; another Patient is refused.
        again = await _import(w, index, alice, EXAMPLES / "patient-example1.json",
                              EXAMPLES / "patient-example2.json")  # fmt: skip
        assert [(w.source, w.version) for w in again.report.written] == [
            ("patient-example1.json", 2)
        ]
        assert _rejected(again) == [("patient-example2.json", "")]
        assert again.indexed == 0

        # Alice's MRN on Bob's Patient resource: the index holds it for Alice.
        taken = await _import(w, index, bob, EXAMPLES / "patient-example1.json")
        assert taken.report.written == [] and _rejected(taken) == [
            ("patient-example1.json", "identifier[0]")
        ]
        assert taken.report.rejected[0].problem == rules.TAKEN

        # A record naming its patient by that MRN alone goes in Alice's chart, not Bob's.
        lab = tmp_path / "lab.json"
        subject = {"identifier": {"system": MRN[0], "value": MRN[1]}}
        lab.write_text(json.dumps(_observation(subject)))
        assert len((await _import(w, index, alice, lab)).report.written) == 1
        into_bob = await _import(w, index, bob, lab)
        assert [(r.field, r.problem) for r in into_bob.report.rejected] == [
            ("subject.identifier", rules.ANOTHER)
        ]

    run(tmp_path, scenario)


def test_ndjson_imports_with_lines_named(tmp_path: Path) -> None:
    async def scenario(w: World, index: PatientIndex) -> None:
        carol = await w.add_patient("carol")
        export = tmp_path / "export"
        export.mkdir()
        patient = json.loads((EXAMPLES / "patient-example1.json").read_text())
        (export / "Patient.ndjson").write_text(json.dumps(patient) + "\n")
        lines = [json.dumps(_observation({"reference": "Patient/example"}, f"o{n}"))
                 for n in range(3)]  # fmt: skip
        lines.insert(1, json.dumps(_observation({"reference": "Patient/f001"}, "other")))
        lines.insert(2, "{ not json")
        (export / "Observation.ndjson").write_text("\n".join(lines) + "\n")
        done = await _import(w, index, carol, export)
        assert [w.source for w in done.report.written] == [
            "Observation.ndjson:1", "Observation.ndjson:4", "Observation.ndjson:5",
            "Patient.ndjson:1",
        ]  # fmt: skip
        assert [(r.source, r.problem) for r in done.report.rejected] == [
            ("Observation.ndjson:3", "not valid JSON (column 3)"),
            ("Observation.ndjson:2", rules.ANOTHER),
        ]

    run(tmp_path, scenario)


def _observation(subject: dict[str, Any], fhir_id: str = "glucose") -> dict[str, Any]:
    return {"resourceType": "Observation", "id": fhir_id, "status": "final",
            "code": {"text": "glucose"}, "subject": subject}  # fmt: skip
