"""FHIR decimals come back as written: their digits are their precision."""

from __future__ import annotations

import asyncio
from pathlib import Path

from medledger.crypto.json_numbers import json_text, parse_json
from medledger.records.importer import import_paths
from medledger.records.recipients import patient_key
from medledger.records.sealed import open_as_patient
from tests.data import FHIR_EXAMPLES as EXAMPLES
from tests.records.world import patient_private, world

# "value": 10.0 and "value": 80.0 (ClaimResponse amounts), 105.00 and 1100.00 (Claim).
FILES = ["claimResponse-example1.json", "claim-example2.json"]


def test_a_sealed_record_opens_to_the_numbers_its_file_holds(tmp_path: Path) -> None:
    async def main() -> list[bytes]:
        async with world(tmp_path) as w:
            patient = await w.add_patient("dec")
            pool = w.pool()
            key = patient_key(w.node, patient.address)
            await import_paths(w.writer, pool, patient.address, key, [EXAMPLES / f for f in FILES])
            pool.close()
            stored = w.store.for_patient(patient.address)
            return [open_as_patient(s.sealed, patient_private("dec")) for s in stored]

    opened = asyncio.run(main())
    assert len(opened) == 2
    text = b"".join(opened)
    for number in (b":10.0", b":80.0", b":105.00", b":1100.00"):
        assert number in text, number
    for bare in (b":10,", b":80}", b":105,", b":1100,"):
        assert bare not in text, bare


def test_the_text_shown_keeps_the_numbers() -> None:
    original = (EXAMPLES / "claimResponse-example1.json").read_text()
    shown = json_text(parse_json(original), indent=True)
    assert '"value": 10.0' in shown and '"value": 80.0' in shown
    assert parse_json(shown) == parse_json(original)
