"""A patient's chart pushed to a real node and the institution's patient index over HTTP:
staff push a chart (the chart rules on the author's side, the Patient's identifiers
indexed as keyed hashes), find the patient by MRN; nobody else may ask, and no identifier
is stored in clear, on the ledger, or in the logs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from medledger.crypto.keys import PrivateKey
from medledger.ledger.contracts import identity
from medledger.node.client import NodeClient, NodeRefused
from medledger.node.uploads import upload_chart
from medledger.records import chart as rules
from medledger.records.chart import AmbiguousChart
from medledger.records.fhir_sources import Entry, Loaded
from medledger.records.patient_index import identifier_digest
from tests.ledger.consortium import key
from tests.node.network import Network, patient_public, running_network

DR_A, NURSE_A, DR_B = key("px:dr-a"), key("px:nurse-a"), key("px:dr-b")
PATIENT, OTHER, UNENROLLED, STRANGER = (key(f"px:{n}") for n in ("p", "o", "u", "s"))
MRN = ("urn:oid:2.16.840.1.113883.19.5.99", "MRN-55501-DISTINCT")


def chart_patient() -> dict[str, Any]:
    return {"resourceType": "Patient", "id": "pa", "birthDate": "1970-01-01",
            "identifier": [{"system": MRN[0], "value": MRN[1]}]}  # fmt: skip


def observation(subject: str, fhir_id: str) -> dict[str, Any]:
    return {"resourceType": "Observation", "id": fhir_id, "status": "final",
            "code": {"text": "glucose"}, "subject": {"reference": subject}}  # fmt: skip


def files(*resources: dict[str, Any]) -> list[Loaded]:
    return [Loaded(f"{n}.json", (Entry(f"{n}.json", r),)) for n, r in enumerate(resources)]


async def _set_up(net: Network) -> None:
    await net.register_staff("hospital-a", DR_A, "doctor")
    await net.register_staff("hospital-a", NURSE_A, "nurse")
    await net.register_staff("hospital-b", DR_B, "doctor")
    for patient in (PATIENT, OTHER):
        await net.register_patient(patient)
    payload = {"encryption_key": patient_public(UNENROLLED)}
    await net.submit("hospital-a", UNENROLLED, identity.REGISTER_SUBJECT, payload)


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with running_network(tmp_path_factory.mktemp("nodes"), ["hospital-a", "hospital-b"]) as network:
        asyncio.run(_set_up(network))
        yield network


def test_staff_push_a_chart_and_find_the_patient_by_mrn(
    net: Network, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    digests: list[bytes] = []

    async def scenario() -> None:
        practitioner = {"resourceType": "Practitioner", "id": "dr"}
        items = files(chart_patient(), observation("Patient/pa", "o1"),
                      observation("Patient/someone-else", "o2"), practitioner)  # fmt: skip
        async with net.client("hospital-a", DR_A) as dr_a:
            another = files({"resourceType": "Patient", "id": "x"})
            with pytest.raises(AmbiguousChart):
                await upload_chart(dr_a, PATIENT.address, [*items, *another])
            done = await upload_chart(dr_a, PATIENT.address, items)
            assert len(done.written) == 2 and done.indexed == 1
            assert [(r.source, r.field, r.problem) for r in done.rejected] == [
                ("2.json", "subject.reference", rules.ANOTHER)
            ]
            assert [(s.source, s.resource) for s in done.shared] == [("3.json", "Practitioner/dr")]
            listed = await dr_a.records(PATIENT.address)
            assert sorted(r.resource_type for r in listed) == ["Observation", "Patient"]

            secret = await dr_a.patient_index_key()
            digest = identifier_digest(secret, MRN)
            digests.append(digest)
            found = await dr_a.find_patients([digest, identifier_digest(secret, (MRN[0], "0"))])
            assert list(found) == [digest]
            assert (found[digest].patient, found[digest].enrolled) == (PATIENT.address, True)

            # A second push: the chart's Patient is known at the node, and the index ties
            # the MRN to it: a Patient of another chart's holder is refused.
            again = await upload_chart(dr_a, OTHER.address, files(chart_patient()))
            assert [(r.field, r.problem) for r in again.rejected] == [
                ("identifier[0]", rules.TAKEN)
            ]
            assert again.written == []
        # The institution itself (its member key) asks as its staff do.
        async with net.client("hospital-a", net.nodes["hospital-a"].member) as hospital:
            assert list(await hospital.find_patients([digest])) == [digest]

    asyncio.run(scenario())
    # Neither the identifier nor its hash reaches a log line.
    logged = caplog.text
    assert logged and MRN[1] not in logged and MRN[0] not in logged
    assert digests and digests[0].hex() not in logged
    # Stored as keyed hashes only, in the institution's database: not in clear anywhere in
    # the node's files, the ledger's among them, nor in the shared ordering log.
    stored = b""
    for path in [*(net.root / "hospital-a").rglob("*"), *net.root.glob("ordering.db*")]:
        if path.is_file():
            assert MRN[1].encode() not in path.read_bytes(), path.name
            stored += path.read_bytes() if path.name.startswith("vault.db") else b""
    assert digests[0] in stored  # where the index keeps it: the files looked at are the right ones


@pytest.mark.parametrize(
    "who", [DR_B, PATIENT, STRANGER, NURSE_A], ids=["other-hospital", "patient", "stranger",
                                                    "former-staff"]
)  # fmt: skip
def test_only_the_institution_s_staff_may_use_its_index(net: Network, who: PrivateKey) -> None:
    async def scenario() -> None:
        if who is NURSE_A:
            member = net.nodes["hospital-a"].member
            payload = {"address": NURSE_A.address}
            await net.submit("hospital-a", member, identity.REVOKE_PARTICIPANT, payload)
        digest = "0x" + "11" * 32
        async with net.client("hospital-a", who) as client:
            for method, path, body in [
                ("GET", "/v1/patients/index-key", None),
                ("POST", "/v1/patients/find", {"digests": [digest]}),
                ("POST", "/v1/patients/identifiers",
                 {"patient": PATIENT.address, "digests": [digest]}),
            ]:  # fmt: skip
                with pytest.raises(NodeRefused) as caught:
                    await client.request(method, path, body=body)
                assert caught.value.status == 403, path
                assert "not staff of this institution" in str(caught.value)

    asyncio.run(scenario())


def test_each_institution_keeps_its_own_index_under_its_own_key(net: Network) -> None:
    async def scenario() -> None:
        async with net.client("hospital-a", DR_A) as dr_a, net.client("hospital-b", DR_B) as dr_b:
            key_a, key_b = await dr_a.patient_index_key(), await dr_b.patient_index_key()
            assert key_a != key_b
            digest_a = identifier_digest(key_a, MRN)
            await dr_a.add_patient_identifiers(PATIENT.address, [digest_a])
            # Hospital B holds nothing of hospital A's, under either key.
            assert await dr_b.find_patients([digest_a, identifier_digest(key_b, MRN)]) == {}

    asyncio.run(scenario())


def test_the_index_takes_patients_enrolled_here_and_an_identifier_once(net: Network) -> None:
    async def scenario() -> None:
        async with net.client("hospital-a", DR_A) as dr_a:
            secret = await dr_a.patient_index_key()
            mine = identifier_digest(secret, (MRN[0], "MRN-2"))
            with pytest.raises(NodeRefused) as caught:
                await dr_a.add_patient_identifiers(UNENROLLED.address, [mine])
            assert caught.value.status == 403 and "not enrolled here" in str(caught.value)
            assert await dr_a.add_patient_identifiers(OTHER.address, [mine]) == 1
            assert await dr_a.add_patient_identifiers(OTHER.address, [mine]) == 0
            fresh = identifier_digest(secret, (MRN[0], "MRN-3"))
            with pytest.raises(NodeRefused) as caught:
                await dr_a.add_patient_identifiers(PATIENT.address, [fresh, mine])
            assert (caught.value.status, caught.value.error) == (422, "IdentifierTaken")
            assert await dr_a.find_patients([fresh]) == {}  # all or none
            for body in ({"digests": []}, {"digests": ["0x12"]}):
                with pytest.raises(NodeRefused) as caught:
                    await dr_a.post("/v1/patients/find", body)
                assert caught.value.status == 422

    asyncio.run(scenario())


def test_a_patient_pushing_their_own_account_meets_the_chart_rules(net: Network) -> None:
    async def scenario() -> None:
        async with NodeClient(net.nodes["hospital-a"].url, OTHER) as me:
            items = files(observation("Patient/mine", "home-1"), observation("Patient/yours", "h2"))
            with pytest.raises(AmbiguousChart):
                await upload_chart(me, OTHER.address, items)
            done = await upload_chart(me, OTHER.address, items, source_patient="mine")
            assert len(done.written) == 1 and done.indexed == 0
            assert [r.source for r in done.rejected] == ["1.json"]

    asyncio.run(scenario())


def test_the_logs_of_a_refused_index_call_name_no_digest(
    net: Network, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)
    digest = "0x" + "ab" * 32

    async def scenario() -> None:
        async with net.client("hospital-a", DR_B) as dr_b:
            with pytest.raises(NodeRefused):
                await dr_b.post("/v1/patients/find", {"digests": [digest]})

    asyncio.run(scenario())
    assert "refused POST /v1/patients/find" in caplog.text
    assert digest[2:] not in caplog.text
