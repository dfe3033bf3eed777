"""Records sealed by the author's own client: every check before they join the vault,
and a refused batch leaves nothing behind."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from medledger.crypto.canonical import canonical_json
from medledger.crypto.keys import PrivateKey
from medledger.ledger.contracts import identity
from medledger.records.errors import RecordTampered, RejectedRecord
from medledger.records.pipeline import Incoming, Job, SealingContext, seal_for_upload
from medledger.records.recipients import custodians_of, patient_key, sealing_context
from medledger.records.sealed import Custodians, Draft, KeyWrapper, seal_record
from medledger.records.writer import plan_new
from tests.ledger.consortium import key
from tests.records.world import World, lab_result, world

BODY = lab_result()


def run(tmp_path: Path, scenario: Callable[[World, PrivateKey], Awaitable[None]]) -> None:
    async def main() -> None:
        async with world(tmp_path) as w:
            patient = await w.add_patient("incoming")
            await scenario(w, patient)

    asyncio.run(main())


def seal(w: World, job: Job, context: SealingContext | None = None) -> Incoming:
    (result,) = seal_for_upload(context or sealing_context(w.node, w.author), [job])
    assert isinstance(result, Incoming)
    return result


def first(w: World, patient: PrivateKey) -> Job:
    return plan_new("lab.json", BODY, patient.address, patient_key(w.node, patient.address))


def amendment(w: World, patient: PrivateKey, of: Incoming, *, version: int = 2) -> Job:
    header = of.sealed.header
    return Job("lab-v2.json", BODY, header.record_id, version, header.digest, patient.address,
               patient_key(w.node, patient.address), header.resource_type)  # fmt: skip


def test_a_sealed_record_and_its_amendment_are_committed(tmp_path: Path) -> None:
    async def scenario(w: World, patient: PrivateKey) -> None:
        v1 = seal(w, first(w, patient))
        assert await w.writer.write_sealed([v1]) == 0
        v2 = seal(w, amendment(w, patient, v1))
        assert await w.writer.write_sealed([v2]) == 1
        stored = w.store.versions(v1.sealed.header.record_id)
        assert [r.sealed.header.version for r in stored] == [1, 2]
        assert stored[0].fhir_id == v1.fhir_id and stored[0].author == w.author.address
        assert all(b.status == "committed" for b in w.store.batches())

    run(tmp_path, scenario)


async def _refused(w: World, batch: list[Incoming], check: str) -> None:
    before = w.store.batches()
    with pytest.raises(RejectedRecord) as refused:
        await w.writer.write_sealed(batch)
    assert refused.value.check == check
    assert w.store.batches() == before


def test_a_record_for_another_network_is_refused(tmp_path: Path) -> None:
    async def scenario(w: World, patient: PrivateKey) -> None:
        context = dataclasses.replace(sealing_context(w.node, w.author), network_id=9)
        await _refused(w, [seal(w, first(w, patient), context)], "network")

    run(tmp_path, scenario)


@pytest.mark.parametrize("who", ["stranger", "another institution's doctor"])
def test_an_author_who_is_not_a_participant_here_is_refused(tmp_path: Path, who: str) -> None:
    async def scenario(w: World, patient: PrivateKey) -> None:
        author = key("incoming:" + who)
        if who != "stranger":
            payload = {"address": author.address, "role": "doctor"}
            other = w.consortium.keys[1]
            await w.node.submit_payload(other, identity.REGISTER_PARTICIPANT, payload)
        context = dataclasses.replace(sealing_context(w.node, w.author),
                                      author_secret=author.to_bytes())  # fmt: skip
        await _refused(w, [seal(w, first(w, patient), context)], "author")

    run(tmp_path, scenario)


def test_a_tampered_ciphertext_is_refused(tmp_path: Path) -> None:
    async def scenario(w: World, patient: PrivateKey) -> None:
        good = seal(w, first(w, patient))
        flipped = bytes([good.sealed.ciphertext[0] ^ 1]) + good.sealed.ciphertext[1:]
        bad = Incoming(dataclasses.replace(good.sealed, ciphertext=flipped), good.fhir_id)
        with pytest.raises(RecordTampered, match="ciphertext"):
            await w.writer.write_sealed([bad])
        assert w.store.batches() == []

    run(tmp_path, scenario)


def test_a_record_of_an_unregistered_patient_is_refused(tmp_path: Path) -> None:
    async def scenario(w: World, patient: PrivateKey) -> None:
        job = dataclasses.replace(first(w, patient), patient=key("incoming:nobody").address)
        await _refused(w, [seal(w, job)], "patient")

    run(tmp_path, scenario)


def test_a_key_split_for_other_custodians_is_refused(tmp_path: Path) -> None:
    async def scenario(w: World, patient: PrivateKey) -> None:
        everyone = custodians_of(w.node)
        fewer = Custodians(1, everyone.holders[:2])
        context = dataclasses.replace(sealing_context(w.node, w.author), custodians=fewer)
        await _refused(w, [seal(w, first(w, patient), context)], "keys")

    run(tmp_path, scenario)


def _labelled(w: World, patient: PrivateKey, resource_type: str, category: str) -> Incoming:
    """The lab result sealed under a header that names this type and category."""
    job = first(w, patient)
    draft = Draft(job.record_id, job.version, job.previous, job.patient, job.patient_key,
                  resource_type, category)  # fmt: skip
    wrapper = KeyWrapper(custodians_of(w.node))
    return Incoming(seal_record(draft, canonical_json(BODY), network_id=w.node.network_id,
                                author=w.author, wrapper=wrapper))  # fmt: skip


@pytest.mark.parametrize("kind", ["Spaceship", "Quantity", "Observation\u202e", "[red]Patient"])
def test_a_record_of_a_type_no_client_validates_is_refused(tmp_path: Path, kind: str) -> None:
    """A browser checks less than records/fhir.py does, and a client can sign any header:
    the node takes only FHIR resource types, whatever category it is labelled."""

    async def scenario(w: World, patient: PrivateKey) -> None:
        await _refused(w, [_labelled(w, patient, kind, "clinical")], "resourceType")

    run(tmp_path, scenario)


@pytest.mark.parametrize("category", ["financial", "mental health", "Labs"])
def test_a_record_labelled_with_a_category_its_type_never_has_is_refused(
    tmp_path: Path, category: str
) -> None:
    async def scenario(w: World, patient: PrivateKey) -> None:
        await _refused(w, [_labelled(w, patient, "Observation", category)], "author")

    run(tmp_path, scenario)


def test_two_versions_of_one_record_in_one_batch_are_refused(tmp_path: Path) -> None:
    async def scenario(w: World, patient: PrivateKey) -> None:
        v1 = seal(w, first(w, patient))
        await _refused(w, [v1, seal(w, amendment(w, patient, v1))], "duplicate")

    run(tmp_path, scenario)


@pytest.mark.parametrize(
    "case", ["amends nothing", "skips a version", "points elsewhere", "changes the patient"]
)
def test_a_version_that_does_not_follow_the_vaults_is_refused(tmp_path: Path, case: str) -> None:
    async def scenario(w: World, patient: PrivateKey) -> None:
        v1 = seal(w, first(w, patient))
        if case == "amends nothing":
            await _refused(w, [seal(w, amendment(w, patient, v1))], "version")
            return
        await w.writer.write_sealed([v1])
        job = amendment(w, patient, v1, version=3 if case == "skips a version" else 2)
        if case == "points elsewhere":
            job = dataclasses.replace(job, previous=bytes(31) + b"\x01")
        if case == "changes the patient":
            other = await w.add_patient("incoming-other")
            job = dataclasses.replace(job, patient=other.address)
        await _refused(w, [seal(w, job)], "version")

    run(tmp_path, scenario)
