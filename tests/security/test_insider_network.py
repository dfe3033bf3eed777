"""Attack table over three real node servers (embedded orderer, 127.0.0.1): a staff member
with one key, an institution's other staff, an unregistered key, a node operator.

The cast: hospital A holds the patient's chart (a lab result and a mental-health
Condition) and employs a doctor, a nurse and an officer; hospital B a doctor; the
insurer a verifier and a doctor. The patient's labs policy lets any nurse approve.
Each row is the attack as a user of the API would make it, and what must come back.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import pytest

from medledger.access import contract as access
from medledger.access.approval import Approval
from medledger.access.reader import read_record
from medledger.crypto.errors import InsufficientShares, InvalidProof
from medledger.crypto.keys import PrivateKey
from medledger.ledger.contracts import identity
from medledger.node.client import NodeRefused, RemoteCustodian
from medledger.node.proven_state import ProvenState
from medledger.node.uploads import upload_records
from medledger.records.proof import CommittedRecord
from medledger.records.wire import committed_from_json
from tests.ledger.consortium import key
from tests.node.network import Network, running_network
from tests.records.world import lab_result

DR_A, NURSE_A, OFFICER_A = key("net:dr-a"), key("net:nurse-a"), key("net:officer-a")
DR_B, VERIFIER, DR_INSURER = key("net:dr-b"), key("net:verifier"), key("net:dr-insurer")
PATIENT, STRANGER = key("net:patient"), key("net:stranger")
ANY_NURSE = {"approvers": {"role": "nurse"}, "purposes": ["TREAT"], "max_duration_s": 86400}
MENTAL_CONDITION = {
    "resourceType": "Condition",
    "id": "depression",
    "clinicalStatus": {"coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
    "category": [{"coding": [{"system": "http://example.org/categories",
                              "code": "mental-health"}]}],
    "code": {"text": "Major depressive disorder"},
    "subject": {"reference": "Patient/example"},
}  # fmt: skip


class Chart:
    lab: str
    mental: str
    commitments: dict[str, str]


CHART = Chart()


async def _set_up(net: Network) -> None:
    for node, person, role in (("hospital-a", DR_A, "doctor"), ("hospital-a", NURSE_A, "nurse"),
                               ("hospital-a", OFFICER_A, "officer"),
                               ("hospital-b", DR_B, "doctor"), ("insurer", VERIFIER, "verifier"),
                               ("insurer", DR_INSURER, "doctor")):  # fmt: skip
        await net.register_staff(node, person, role)
    await net.register_patient(PATIENT)
    await net.submit("hospital-a", PATIENT, access.SET_POLICY,
                     {"category": "labs", "policy": ANY_NURSE})  # fmt: skip
    sources = [("lab.json", lab_result()),
               ("mind.json", MENTAL_CONDITION)]  # fmt: skip
    async with net.client("hospital-a", DR_A) as dr_a:
        written, rejected = await upload_records(dr_a, PATIENT.address, sources)
    assert not rejected
    CHART.lab, CHART.mental = (w.record_id for w in written)
    CHART.commitments = {w.record_id: w.commitment for w in written}


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with running_network(tmp_path_factory.mktemp("insiders")) as network:
        asyncio.run(_set_up(network))
        yield network


async def _request(net: Network, node: str, requester: PrivateKey, **changes: Any) -> Any:
    payload = {"patient": PATIENT.address, "categories": ["labs"], "purpose": "TREAT",
               "duration_s": 3600, **changes}  # fmt: skip
    async with net.client(node, requester) as client:
        tx = await client.transaction(access.REQUEST, payload)
        return await client.post("/v1/access/requests", {"transaction": tx})


async def _approve(net: Network, node: str, request: Any, *signers: PrivateKey) -> Any:
    not_after = int(time.time() * 1000) + 600_000
    approval = Approval(3131, bytes.fromhex(request["request"][2:]), request["patient"],
                        request["requester"], not_after)  # fmt: skip
    state = request
    for signer in signers:
        async with net.client(node, signer) as client:
            body = {"approvals": [approval.signed_by(signer)]}
            state = await client.post(f"/v1/access/requests/{request['request']}/approvals", body)
    return state


async def _as_staff(net: Network, reader: PrivateKey, record: str) -> CommittedRecord:
    """A record as hospital A's staff may fetch it: its ciphertext, not its key."""
    async with net.client("hospital-a", reader) as client:
        return committed_from_json(await client.get(f"/v1/records/{record}"))


async def _read(net: Network, reader: PrivateKey, grant: str, record: CommittedRecord) -> bytes:
    clients = [net.client(name, reader) for name in net.nodes]
    try:
        custodians = [RemoteCustodian(c, net.nodes[n].member.address)
                      for c, n in zip(clients, net.nodes, strict=True)]  # fmt: skip
        return await read_record(reader, bytes.fromhex(grant[2:]), record,
                                 custodians=custodians, threshold=2)  # fmt: skip
    finally:
        for client in clients:
            await client.close()


def _refused(coroutine: Any) -> NodeRefused:
    with pytest.raises(NodeRefused) as refused:
        asyncio.run(coroutine)
    return refused.value


# -- 1, 2, 3: the scope of a request cannot escape its categories' policies ----------------


def test_a_nurse_cannot_ask_for_a_record_without_its_category(net: Network) -> None:
    refusal = _refused(_request(net, "hospital-a", NURSE_A, categories=[],
                                records=[CHART.commitments[CHART.mental]]))  # fmt: skip
    assert (refusal.status, refusal.code) == (422, "empty_scope")


def test_a_labs_grant_naming_a_mental_health_record_opens_only_the_labs(net: Network) -> None:
    async def attack() -> tuple[bytes, InsufficientShares]:
        records = [CHART.commitments[CHART.lab], CHART.commitments[CHART.mental]]
        asked = await _request(net, "hospital-a", NURSE_A, records=records)
        granted = await _approve(net, "hospital-a", asked, NURSE_A)
        assert granted["status"] == "granted"
        lab = await _read(net, NURSE_A, asked["request"], await _as_staff(net, NURSE_A, CHART.lab))
        with pytest.raises(InsufficientShares) as refused:
            await _read(net, NURSE_A, asked["request"],
                        await _as_staff(net, NURSE_A, CHART.mental))  # fmt: skip
        return lab, refused.value

    lab, refused = asyncio.run(attack())
    assert json.loads(lab)["resourceType"] == "Observation"
    assert "released by 0 of 3" in str(refused) and "not in the grant's scope" in str(refused)


def test_break_glass_reaches_only_the_summary_whatever_records_it_names(net: Network) -> None:
    async def attack() -> InsufficientShares:
        with pytest.raises(NodeRefused) as empty:
            await _request(net, "hospital-a", DR_A, categories=[], emergency=True,
                           purpose="ETREAT", records=[CHART.commitments[CHART.mental]])
        assert empty.value.code == "empty_scope"
        asked = await _request(net, "hospital-a", DR_A, categories=["allergies"], emergency=True,
                               purpose="ETREAT", records=[CHART.commitments[CHART.mental]])
        assert (await _approve(net, "hospital-a", asked, DR_A, OFFICER_A))["status"] == "granted"
        with pytest.raises(InsufficientShares) as refused:
            await _read(net, DR_A, asked["request"], await _as_staff(net, DR_A, CHART.mental))
        return refused.value

    assert "not in the grant's scope" in str(asyncio.run(attack()))


# -- 4: a grant does not outlive its holder's standing --------------------------------------


def test_a_doctor_whose_registration_was_revoked_reads_nothing_more(net: Network) -> None:
    async def attack() -> InsufficientShares:
        holder = key("net:dr-b-leaving")
        await net.register_staff("hospital-b", holder, "doctor")
        asked = await _request(net, "hospital-b", holder)
        await _approve(net, "hospital-b", asked, NURSE_A)
        record = await _as_staff(net, NURSE_A, CHART.lab)
        await _read(net, holder, asked["request"], record)
        await net.submit("hospital-b", net.nodes["hospital-b"].member,
                         identity.REVOKE_PARTICIPANT, {"address": holder.address})  # fmt: skip
        with pytest.raises(InsufficientShares) as refused:
            await _read(net, holder, asked["request"], record)
        return refused.value

    assert "no longer registered at a member institution" in str(asyncio.run(attack()))


# -- 6: only clinicians with a care relationship write into a chart ----------------------


@pytest.mark.parametrize(
    ("author", "why"),
    [(VERIFIER, "a role that does not write records"), (DR_INSURER, "no care relationship")],
    ids=["the insurer's verifier", "a doctor at an institution the patient never enrolled at"],
)
def test_a_record_from_someone_outside_the_care_relationship_is_refused(
    net: Network, author: PrivateKey, why: str
) -> None:
    async def attack() -> Any:
        async with net.client("insurer", author) as client:
            return await upload_records(client, PATIENT.address,
                                        [("mind.json", MENTAL_CONDITION)])

    refusal = _refused(attack())
    assert refusal.status == 422 and why in str(refusal)


# -- 8, 9: need to know; refusals that say nothing ----------------------------------------


def test_an_unregistered_key_reads_hashes_and_nothing_else(net: Network) -> None:
    async def attack() -> tuple[Any, Any, list[int]]:
        asked = await _request(net, "hospital-a", NURSE_A)
        async with net.client("hospital-a", STRANGER) as stranger:
            index = (await stranger.get("/v1/ledger/status"))["size"] - 1
            proof = await stranger.get("/v1/ledger/proofs/inclusion", {"index": index})
            statuses = []
            for path, params in ((f"/v1/access/requests/{asked['request']}", None),
                                 ("/v1/ledger/state/access.request", {"key": asked["request"]}),
                                 ("/v1/ledger/state/subject", {"key": PATIENT.address})):
                try:
                    await stranger.get(path, params)
                except NodeRefused as refused:
                    statuses.append(refused.status)
        async with net.client("hospital-b", DR_B) as other_staff:
            try:
                await other_staff.get(f"/v1/access/requests/{asked['request']}")
            except NodeRefused as refused:
                statuses.append(refused.status)
        return asked, proof, statuses

    _, proof, statuses = asyncio.run(attack())
    assert proof["transaction"] is None and proof["leaf"].startswith("0x")
    assert statuses == [404, 404, 404, 404]


def test_a_record_one_may_not_see_is_answered_as_one_that_does_not_exist(net: Network) -> None:
    async def probe(record: str) -> NodeRefused:
        async with net.client("hospital-a", STRANGER) as stranger:
            with pytest.raises(NodeRefused) as refused:
                await stranger.get(f"/v1/records/{record}")
        return refused.value

    existing = asyncio.run(probe(CHART.mental))
    missing = asyncio.run(probe("ab" * 16))
    assert (existing.status, existing.error) == (missing.status, missing.error)
    assert (existing.status, existing.error) == (404, "UnknownRecord")
    assert str(existing).replace(CHART.mental, "ID") == str(missing).replace("ab" * 16, "ID")
    assert PATIENT.address not in str(existing)


# -- 11: a node operator who edits its own state fools no client --------------------------


def test_an_operator_rewriting_a_revoked_grant_as_active_fools_no_one(net: Network) -> None:
    async def scenario() -> tuple[Any, Any]:
        asked = await _request(net, "hospital-b", DR_B)
        await _approve(net, "hospital-b", asked, NURSE_A)
        await net.submit("hospital-b", PATIENT, access.REVOKE, {"grant": asked["request"]})
        await net.checkpoint("hospital-a")
        grant = asked["request"]
        database = net.nodes["hospital-b"].service.settings.data_dir / "ledger.db"
        store = net.nodes["hospital-b"].service.node.store
        forged = {**store.get(access.GRANT_NS, grant), "status": "active"}
        forged.pop("revoked_index")
        with sqlite3.connect(database) as db:
            db.execute("UPDATE ledger_state SET value = ? WHERE ns = ? AND key = ?",
                       (json.dumps(forged, sort_keys=True, separators=(",", ":")).encode(),
                        access.GRANT_NS, grant))  # fmt: skip
        store._cache.clear()
        async with net.client("hospital-b", PATIENT) as patient:
            told = await patient.get(f"/v1/access/grants/{grant}")
            proven = ProvenState(patient)
            try:
                believed = await asyncio.to_thread(proven.get, access.GRANT_NS, grant)
            except InvalidProof as exc:
                believed = exc
            finally:
                proven.close()
        record = await _as_staff(net, NURSE_A, CHART.lab)
        with pytest.raises(InsufficientShares):
            await _read(net, DR_B, grant, record)
        return told, believed

    told, believed = asyncio.run(scenario())
    assert told["status"] == "active"  # the edited node says so ...
    # ... but a client that checks proofs is not fooled, and two other custodians refuse.
    assert isinstance(believed, InvalidProof) or believed["status"] == "revoked"


def test_an_operator_serving_an_older_checkpoint_takes_no_client_back_in_time(
    net: Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Hospital B is not used: the row above left its store edited.
    service = net.nodes["hospital-a"].service

    async def scenario() -> tuple[Any, Any]:
        asked = await _request(net, "hospital-a", DR_B)
        await _approve(net, "hospital-a", asked, NURSE_A)
        await net.checkpoint("insurer")
        before_revocation = service.node.checkpoint()
        await net.submit("hospital-a", PATIENT, access.REVOKE, {"grant": asked["request"]})
        async with net.client("hospital-a", PATIENT) as patient:
            proven = ProvenState(patient)
            try:
                first = await asyncio.to_thread(proven.get, access.GRANT_NS, asked["request"])

                async def stale(*, timeout_s: float) -> Any:
                    return before_revocation

                monkeypatch.setattr(service, "covering_checkpoint", stale)
                await asyncio.sleep(1.1)  # past the client's one-second reuse
                later = await asyncio.to_thread(proven.get, access.GRANT_NS, asked["request"])
            finally:
                proven.close()
        return first, later

    first, later = asyncio.run(scenario())
    assert first["status"] == "revoked"
    assert later["status"] == "revoked"
