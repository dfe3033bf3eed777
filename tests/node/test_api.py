"""The node's API over real HTTP: a lab result written at hospital A is read at hospital B
after 2 of 3 approvals, through custodians at every node, and every refusal changes nothing."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import pytest

import medledger.node.uploads as uploads_module
from medledger.access.approval import Approval
from medledger.access.contract import DENY, REQUEST, REVOKE, SET_POLICY
from medledger.access.reader import read_record
from medledger.crypto.canonical import canonical_json
from medledger.crypto.errors import InsufficientShares, InvalidProof
from medledger.crypto.keys import Address, PrivateKey
from medledger.errors import InvalidInput
from medledger.ledger.contracts import checkpoint as checkpoint_contract
from medledger.ledger.contracts import identity
from medledger.ledger.contracts.membership import MEMBER_NS
from medledger.ledger.errors import InsufficientCosigners
from medledger.node import api
from medledger.node.client import NodeClient, NodeRefused, RemoteCustodian
from medledger.node.identities import PATIENT_LABEL, encryption_key
from medledger.node.proven_state import NotShown, ProvenState
from medledger.node.signatures import new_nonce, sign_request
from medledger.node.uploads import upload_records
from medledger.records.pipeline import Incoming, SealingContext, seal_for_upload
from medledger.records.proof import RecordProof
from medledger.records.sealed import Custodians, open_as_patient
from medledger.records.wire import committed_from_json
from medledger.records.writer import plan_new
from tests.ledger.consortium import key
from tests.node.network import NETWORK_ID, Network, patient_public, running_network
from tests.records.world import lab_result

DR_A, NURSE_A, DR_B = key("api:dr-a"), key("api:nurse-a"), key("api:dr-b")
PATIENT, OTHER_PATIENT, STRANGER = key("api:patient"), key("api:other"), key("api:stranger")
TWO_OF_THREE = {
    "approvers": {
        "k_of": 2,
        "of": [{"patient": True}, {"person": DR_A.address}, {"role": "nurse"}],
    },
    "purposes": ["TREAT"],
    "max_duration_s": 24 * 3600,
}


async def _set_up(net: Network) -> None:
    await net.register_staff("hospital-a", DR_A, "doctor")
    await net.register_staff("hospital-a", NURSE_A, "nurse")
    await net.register_staff("hospital-b", DR_B, "doctor")
    for patient in (PATIENT, OTHER_PATIENT):
        await net.register_patient(patient)
    async with net.client("hospital-a", PATIENT) as client:
        tx = net.tx(PATIENT, SET_POLICY, {"category": "labs", "policy": TWO_OF_THREE})
        await client.post("/v1/ledger/transactions", {"transaction": tx})


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with running_network(tmp_path_factory.mktemp("nodes")) as network:
        asyncio.run(_set_up(network))
        yield network


async def _write_lab(net: Network, author: PrivateKey = DR_A) -> tuple[dict[str, Any], str]:
    """Seal a lab result on the author's side and have hospital A commit it."""
    resource = lab_result()
    async with net.client("hospital-a", author) as client:
        sources = [("lab.json", resource)]
        written, rejected = await upload_records(client, PATIENT.address, sources)
    assert not rejected
    return resource, written[0].record_id


def _custodians(net: Network, reader: PrivateKey) -> list[RemoteCustodian]:
    return [
        RemoteCustodian(net.client(n.name, reader), n.member.address) for n in net.nodes.values()
    ]


async def _request_labs(net: Network) -> str:
    async with net.client("hospital-b", DR_B) as dr_b:
        payload = {
            "patient": PATIENT.address,
            "categories": ["labs"],
            "purpose": "TREAT",
            "duration_s": 3600,
        }
        state = await dr_b.post(
            "/v1/access/requests", {"transaction": net.tx(DR_B, REQUEST, payload)}
        )
    assert state["status"] == "pending"
    return str(state["request"])


async def _approve(net: Network, node: str, signer: PrivateKey, request: str) -> dict[str, Any]:
    approval = Approval(NETWORK_ID, bytes.fromhex(request[2:]), PATIENT.address, DR_B.address,
                        int(time.time() * 1000) + 60_000)  # fmt: skip
    async with net.client(node, signer) as client:
        return dict(await client.post(f"/v1/access/requests/{request}/approvals",
                                      {"approvals": [approval.signed_by(signer)]}))  # fmt: skip


def test_a_lab_result_is_read_at_another_hospital_after_two_of_three_approvals(
    net: Network,
) -> None:
    async def scenario() -> None:
        resource, record_id = await _write_lab(net)
        async with net.client("hospital-a", PATIENT) as patient:
            listed = await patient.get("/v1/records", {"patient": PATIENT.address})
            assert record_id in {r["record_id"] for r in listed}
            committed = committed_from_json(await patient.get(f"/v1/records/{record_id}"))
        own = open_as_patient(committed.sealed, encryption_key(PATIENT, PATIENT_LABEL))
        assert own == canonical_json(resource)

        request = await _request_labs(net)
        assert (await _approve(net, "hospital-b", PATIENT, request))["status"] == "pending"
        assert (await _approve(net, "hospital-a", DR_A, request))["status"] == "granted"

        async with net.client("hospital-a", DR_B) as dr_b:
            fetched = await dr_b.get(f"/v1/records/{record_id}", {"grant": request})
        record = committed_from_json(fetched)
        grant = bytes.fromhex(request[2:])
        plaintext = await read_record(
            DR_B, grant, record, custodians=_custodians(net, DR_B), threshold=2
        )
        assert plaintext == canonical_json(resource)

        async with net.client("hospital-a", PATIENT) as patient:
            audit = await patient.get(f"/v1/audit/{PATIENT.address}")
        (read,) = [r for r in audit["reads"] if r["grant"] == request]
        assert (read["reader"], read["record_id"]) == (DR_B.address, record_id)
        assert read["purpose"] == "TREAT" and not read["emergency"]
        assert len(read["receipts"]) >= 2

        async with net.client("hospital-b", PATIENT) as patient:
            tx = net.tx(PATIENT, REVOKE, {"grant": request})
            await patient.post(f"/v1/access/grants/{request}/revoke", {"transaction": tx})
            ended = await patient.get(f"/v1/access/grants/{request}")
        assert ended["status"] == "revoked"
        with pytest.raises(InsufficientShares, match="revoked"):
            await read_record(DR_B, grant, record, custodians=_custodians(net, DR_B), threshold=2)
        async with net.client("hospital-a", DR_B) as dr_b:
            with pytest.raises(NodeRefused) as refused:
                await dr_b.get(f"/v1/records/{record_id}", {"grant": request})
        assert refused.value.status == 422 and refused.value.code == "grant_revoked"

    asyncio.run(scenario())


# -- refusals: 401 for requests that are not signed, fresh and first-seen; 403 for callers
# -- the ledger does not allow; none of them changes the log.


def _signed(url: str, key_: PrivateKey, body: bytes = b"", *, created: int | None = None,
            method: str = "GET", nonce: str | None = None) -> dict[str, str]:  # fmt: skip
    now = int(time.time()) if created is None else created
    return sign_request(key_, method=method, url=url, body=body, created=now, expires=now + 60,
                        nonce=nonce or new_nonce())  # fmt: skip


def test_unsigned_tampered_expired_and_replayed_requests_get_401(net: Network) -> None:
    base = net.nodes["hospital-a"].url
    url = f"{base}/v1/ledger/status"
    with httpx.Client() as http:
        assert http.get(f"{base}/v1/health").status_code == 200
        size = http.get(f"{base}/v1/health").json()["size"]
        assert http.get(url).status_code == 401
        assert (
            http.get(
                url, headers=_signed(url, PATIENT, created=int(time.time()) - 3600)
            ).status_code
            == 401
        )
        assert http.get(url, headers=_signed(url + "?x=1", PATIENT)).status_code == 401
        headers = _signed(url, PATIENT)
        assert http.get(url, headers=headers).status_code == 200
        replayed = http.get(url, headers=headers)
        assert replayed.status_code == 401 and replayed.json()["error"] == "ReplayedRequest"

        tx_url = f"{base}/v1/ledger/transactions"
        payload = {"encryption_key": patient_public(STRANGER)}
        tx = net.tx(STRANGER, identity.REGISTER_SUBJECT, payload, advance=False)
        body = json.dumps({"transaction": tx}).encode()
        headers = _signed(tx_url, STRANGER, body, method="POST")
        tampered = body.replace(b"identity", b"identitx")
        answer = http.post(
            tx_url, content=tampered, headers={**headers, "content-type": "application/json"}
        )
        assert answer.status_code == 401 and answer.json()["error"] == "ContentDigestMismatch"
        assert http.get(f"{base}/v1/health").json()["size"] == size


@pytest.mark.parametrize(
    ("who", "method", "path", "params"),
    [
        ("stranger", "GET", "/v1/records", {"patient": PATIENT.address}),
        ("other", "GET", "/v1/records", {"patient": PATIENT.address}),
        ("dr_b", "GET", "/v1/records", {"patient": PATIENT.address}),
        ("dr_b", "GET", "/v1/records/recipients", {"patient": PATIENT.address}),
        ("other", "GET", f"/v1/audit/{PATIENT.address}", None),
        ("dr_a", "GET", f"/v1/audit/{PATIENT.address}", None),
    ],
)
def test_callers_outside_the_patients_circle_get_403(
    net: Network, who: str, method: str, path: str, params: dict[str, str] | None
) -> None:
    signer = {"stranger": STRANGER, "other": OTHER_PATIENT, "dr_b": DR_B, "dr_a": DR_A}[who]

    async def attempt() -> None:
        async with net.client("hospital-a", signer) as client:
            with pytest.raises(NodeRefused) as refused:
                await client.request(method, path, params=params)
        assert refused.value.status == 403

    asyncio.run(attempt())


def test_writes_and_transactions_not_the_callers_own_get_403_and_change_nothing(
    net: Network,
) -> None:
    async def attempt() -> None:
        size = net.nodes["hospital-a"].service.node.size
        with pytest.raises(NodeRefused) as foreign:
            await _write_lab(net, author=DR_B)
        assert foreign.value.status == 403
        async with net.client("hospital-a", STRANGER) as stranger:
            payload = {"category": "labs", "policy": TWO_OF_THREE}
            tx = net.tx(PATIENT, SET_POLICY, payload, advance=False)
            with pytest.raises(NodeRefused) as relayed:
                await stranger.post("/v1/ledger/transactions", {"transaction": tx})
        assert relayed.value.status == 403
        assert net.nodes["hospital-a"].service.node.size == size

    asyncio.run(attempt())


@pytest.mark.parametrize("payload", [["not", "an", "object"], {"grant": 7}, {}])
def test_a_revocation_whose_payload_is_not_a_grant_is_refused_not_a_crash(
    net: Network, payload: Any
) -> None:
    grant = "0x" + "ab" * 32
    tx = {"network": NETWORK_ID, "sender": PATIENT.address, "nonce": 0, "type": REVOKE,
          "payload": payload, "signature": "0x" + "00" * 65}  # fmt: skip

    async def attempt() -> None:
        async with net.client("hospital-a", PATIENT) as patient:
            with pytest.raises(NodeRefused) as refused:
                await patient.post(f"/v1/access/grants/{grant}/revoke", {"transaction": tx})
        assert refused.value.status in (403, 422)

    asyncio.run(attempt())


def test_a_record_proof_from_the_node_checks_against_a_cosigned_checkpoint(net: Network) -> None:
    async def scenario() -> None:
        _, record_id = await _write_lab(net)
        hospital_a = net.nodes["hospital-a"]
        signed = (await hospital_a.service.node.head_at()).sign(hospital_a.member)
        head, payload = signed.head, signed.cosign_payload()
        async with net.client("hospital-a", hospital_a.member) as member:
            # The node relays approvals under this key too: ask it for the next nonce.
            address = hospital_a.member.address
            nonce = (await member.get(f"/v1/ledger/nonces/{address}"))["next_nonce"]
            tx = net.tx(hospital_a.member, checkpoint_contract.COSIGN, payload, nonce=nonce)
            await member.post("/v1/ledger/transactions", {"transaction": tx})
        async with net.client("hospital-a", PATIENT) as patient:
            for _ in range(200):
                status = await patient.get("/v1/ledger/status")
                if status["checkpoint"] is not None and status["checkpoint"] >= head.size:
                    break
                await asyncio.sleep(0.02)
            proof = RecordProof.from_json(await patient.get(f"/v1/records/{record_id}/proof"))
            members = status["members"]
        assert proof.verify(members, 2) == DR_A.address
        with pytest.raises(InsufficientCosigners):
            proof.verify(members, len(members) + 1)

    asyncio.run(scenario())


def test_a_body_over_the_limit_is_refused_declared_or_chunked(net: Network) -> None:
    url = f"{net.nodes['hospital-a'].url}/v1/ledger/transactions"
    limit = net.nodes["hospital-a"].service.settings.max_body_bytes
    with httpx.Client() as http:
        declared = http.post(url, content=b"x" * (limit + 1))
        assert declared.status_code == 413 and declared.json()["error"] == "BodyTooLarge"

        def chunks() -> Iterator[bytes]:
            for _ in range(limit // 65536 + 2):
                yield b"x" * 65536

        chunked = http.post(url, content=chunks())
        assert chunked.status_code == 413 and chunked.json()["error"] == "BodyTooLarge"


def test_a_version_beyond_what_a_header_can_hold_is_invalid_input_not_a_crash(net: Network) -> None:
    async def attempt() -> None:
        async with net.client("hospital-a", PATIENT) as patient:
            with pytest.raises(NodeRefused) as refused:
                await patient.get("/v1/records/" + "ab" * 16, {"version": 2**64})
        assert refused.value.status == 422

    asyncio.run(attempt())


def test_the_patient_lists_requests_of_their_data_and_denies_one(net: Network) -> None:
    async def scenario() -> None:
        request = await _request_labs(net)
        async with net.client("hospital-a", PATIENT) as patient:
            listed = await patient.get("/v1/access/requests", {"patient": PATIENT.address})
            assert listed[0]["request"] == request and listed[0]["status"] == "pending"
            tx = net.tx(PATIENT, DENY, {"request": request})
            denied = await patient.post(f"/v1/access/requests/{request}/deny", {"transaction": tx})
        assert denied["status"] == "denied"
        async with net.client("hospital-a", DR_B) as dr_b:
            with pytest.raises(NodeRefused) as refused:
                await dr_b.get("/v1/access/requests", {"patient": PATIENT.address})
        assert refused.value.status == 403

    asyncio.run(scenario())


def test_a_resource_pushed_again_is_its_record_s_next_version(net: Network) -> None:
    async def scenario() -> None:
        lab = {**lab_result(), "id": "pushed-again"}
        amended = {**lab, "status": "amended"}
        async with net.client("hospital-a", DR_A) as dr_a:
            (first,), _ = await upload_records(dr_a, PATIENT.address, [("lab.json", lab)])
            # Twice in one upload: the second points to the first, written a pass later.
            again, _ = await upload_records(dr_a, PATIENT.address,
                                            [("a.json", amended), ("b.json", lab)])  # fmt: skip
            rows = await dr_a.get("/v1/records", {"patient": PATIENT.address})
        assert [(w.record_id, w.version) for w in again] == [
            (first.record_id, 2), (first.record_id, 3)
        ]
        versions = [r for r in rows if r["fhir_id"] == "pushed-again"]
        assert [r["version"] for r in versions] == [1, 2, 3]
        assert len({r["record_id"] for r in versions}) == 1

    asyncio.run(scenario())


def test_an_author_amends_only_what_the_node_serves_as_listed(
    net: Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node that lists a patient's resource under another record (or digest) than the
    record it serves cannot steer the author into signing an amendment of it."""

    async def scenario() -> None:
        lab = {**lab_result(), "id": "steered"}
        async with net.client("hospital-a", DR_A) as dr_a:
            (first,), _ = await upload_records(dr_a, PATIENT.address, [("lab.json", lab)])
            honest = await uploads_module._listed_versions(dr_a, PATIENT.address)
            entry = honest["Observation", "steered"]

            async def lying(*_: object) -> object:
                return {("Observation", "steered"): entry._replace(digest=b"\x01" * 32)}

            monkeypatch.setattr(uploads_module, "_listed_versions", lying)
            with pytest.raises(InvalidInput, match="other than it serves it"):
                await upload_records(dr_a, PATIENT.address, [("lab.json", lab)])
        assert first.version == 1

    asyncio.run(scenario())


@pytest.mark.parametrize("listed", ["another of the patient's records", "a clinician's record"])
def test_a_patient_amends_only_the_resource_the_node_lists_under_its_fhir_id(
    net: Network, monkeypatch: pytest.MonkeyPatch, listed: str
) -> None:
    """The FHIR id is not in what an author signs: the patient opens the version a next
    one would follow, so a node that lists another record under the id is caught."""

    async def scenario() -> None:
        mine, theirs = {**lab_result(), "id": "own-a"}, {**lab_result(), "id": "by-dr-a"}
        async with net.client("hospital-a", PATIENT) as me, net.client("hospital-a", DR_A) as dr:
            await upload_records(me, PATIENT.address, [("a.json", mine)])
            await upload_records(dr, PATIENT.address, [("dr.json", theirs)])
            own = await uploads_module._listed_versions(me, PATIENT.address)
            staff = await uploads_module._listed_versions(dr, PATIENT.address)
            steered = (own["Observation", "own-a"] if listed.startswith("another")
                       else staff["Observation", "by-dr-a"])  # fmt: skip

            async def lying(*_: object) -> object:
                return {("Observation", "own-b"): steered}

            before = await me.records(PATIENT.address)
            monkeypatch.setattr(uploads_module, "_listed_versions", lying)
            with pytest.raises(InvalidInput, match="the node lists record"):
                await upload_records(me, PATIENT.address, [("b.json", {**mine, "id": "own-b"})])
            assert await me.records(PATIENT.address) == before

    asyncio.run(scenario())


@pytest.mark.parametrize("fhir_id", ["Jane Doe, 1970-01-01", "x" * 65, "", "a/b"])
def test_a_record_is_kept_only_under_a_fhir_id_a_validated_resource_could_have(
    net: Network, fhir_id: str
) -> None:
    """The FHIR id is stored in the clear beside the ciphertext: the node takes what a
    client that validated the resource could send, and nothing else there."""

    async def scenario() -> None:
        async with net.client("hospital-a", DR_A) as dr_a:
            r = await dr_a.recipients(PATIENT.address)
            custodians = Custodians(r.threshold, tuple(
                (Address(c.address), bytes.fromhex(c.key[2:])) for c in r.custodians))  # fmt: skip
            context = SealingContext(r.network, DR_A.to_bytes(), custodians)
            job = plan_new("lab.json", lab_result(), PATIENT.address,
                           bytes.fromhex(r.patient_key[2:]))  # fmt: skip
            (sealed,) = seal_for_upload(context, [job])
            assert isinstance(sealed, Incoming)
            before = await dr_a.records(PATIENT.address)
            with pytest.raises(NodeRefused) as refused:
                await dr_a.write_records([dataclasses.replace(sealed, fhir_id=fhir_id)])
            assert refused.value.status == 422
            assert await dr_a.records(PATIENT.address) == before

    asyncio.run(scenario())


def _lying_recipients(honest: api.Recipients, lie: str) -> api.Recipients:
    """What a node that wants to open what its staff write could name instead."""
    first = honest.custodians[0]
    if lie == "one key for every share":
        return honest.model_copy(update={"custodians": [
            c.model_copy(update={"key": first.key}) for c in honest.custodians]})  # fmt: skip
    if lie == "a threshold of one":
        return honest.model_copy(update={"threshold": 1})
    if lie == "fewer custodians":
        return honest.model_copy(update={"custodians": [first], "threshold": 1})
    assert lie == "a patient key the node holds"
    return honest.model_copy(update={"patient_key": first.key})


@pytest.mark.parametrize("lie", ["one key for every share", "a threshold of one",
                                 "fewer custodians", "a patient key the node holds"])  # fmt: skip
def test_an_author_seals_only_to_the_recipients_the_members_cosigned(
    net: Network, monkeypatch: pytest.MonkeyPatch, lie: str
) -> None:
    """A node that names recipients of its choosing gets nothing sealed to them."""
    honest_recipients = NodeClient.recipients

    async def lying(self: NodeClient, patient: Address) -> api.Recipients:
        return _lying_recipients(await honest_recipients(self, patient), lie)

    async def scenario() -> None:
        lab = {**lab_result(), "id": "sealed-to-whom"}
        async with net.client("hospital-a", DR_A) as dr_a:
            before = await dr_a.records(PATIENT.address)
            monkeypatch.setattr(NodeClient, "recipients", lying)
            with pytest.raises(InvalidInput, match="other recipients than the members cosigned"):
                await upload_records(dr_a, PATIENT.address, [("lab.json", lab)])
            monkeypatch.setattr(NodeClient, "recipients", honest_recipients)
            assert await dr_a.records(PATIENT.address) == before

    asyncio.run(scenario())


def test_a_proof_of_another_entry_does_not_answer_for_the_one_asked(
    net: Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node that answers for one member's entry with a valid proof of another member's
    (whose custodian key it holds) is caught: a proof names the entry it proves."""
    ours, theirs = (net.nodes[n].member.address for n in ("hospital-a", "hospital-b"))

    async def scenario() -> None:
        async with net.client("hospital-a", PATIENT) as client:
            state = ProvenState(client)
            honest = state._get

            def lying(path: str, params: Mapping[str, Any]) -> Any:
                if path == f"/v1/ledger/state/{MEMBER_NS}" and params["key"] == theirs:
                    params = {**params, "key": ours}
                return honest(path, params)

            monkeypatch.setattr(state, "_get", lying)
            try:
                own = await asyncio.to_thread(state.get, MEMBER_NS, ours)
                assert own["address"] == ours
                with pytest.raises(InvalidProof, match="the node proved another"):
                    await asyncio.to_thread(state.get, MEMBER_NS, theirs)
            finally:
                state.close()

    asyncio.run(scenario())


def test_an_entry_the_node_withholds_is_never_read_as_absent(
    net: Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node that answers "nothing to show" for an entry the reader may see (a revoked
    credential, say) is not believed: only a proof of absence reads as absent."""
    stranger = key("nobody-registered").address

    async def scenario() -> None:
        async with net.client("hospital-a", PATIENT) as client:
            state = ProvenState(client)
            honest = state._get

            def withholding(path: str, params: Mapping[str, Any]) -> Any:
                return None if path == f"/v1/ledger/state/{MEMBER_NS}" else honest(path, params)

            try:
                # Proven absent: nobody of that address is a member.
                assert await asyncio.to_thread(state.get, MEMBER_NS, stranger) is None
                monkeypatch.setattr(state, "_get", withholding)
                with pytest.raises(NotShown, match="shows no proof"):
                    await asyncio.to_thread(state.get, MEMBER_NS, stranger)
            finally:
                state.close()

    asyncio.run(scenario())


def test_many_records_go_up_in_batches_the_node_accepts(net: Network) -> None:
    async def scenario() -> None:
        lab = lab_result()
        limit = net.nodes["hospital-a"].service.settings.max_records_per_write
        sources = [(f"lab-{i}.json", {**lab, "id": f"lab-{i}"}) for i in range(limit + 44)]
        done: list[int] = []
        async with net.client("hospital-a", DR_A) as dr_a:
            written, rejected = await upload_records(dr_a, PATIENT.address, sources, done.append)
            with pytest.raises(NodeRefused, match=f"this node takes {limit}"):
                await dr_a.post("/v1/records", {"records": [{"sealed": {}}] * (limit + 1)})
        assert not rejected and len(written) == len(sources)
        assert done == [limit, len(sources)]

    asyncio.run(scenario())


def test_every_api_answer_forbids_sniffing_and_referrers(net: Network) -> None:
    base = net.nodes["hospital-a"].url
    limit = net.nodes["hospital-a"].service.settings.max_body_bytes
    with httpx.Client() as http:
        answers = [
            http.get(f"{base}/v1/health"),
            http.get(f"{base}/v1/ledger/status"),
            http.get(f"{base}/v1/no-such-route"),
            http.post(f"{base}/v1/ledger/transactions", content=b"x" * (limit + 1)),
            http.get(f"{base}/openapi.json"),
        ]
    assert [a.status_code for a in answers] == [200, 401, 404, 413, 200]
    for answer in answers:
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["referrer-policy"] == "no-referrer"
