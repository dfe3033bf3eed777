"""A patient (or her guardian) reads her own chart through hospital B's FHIR API, over three
real node servers: every record opened through the custodians as an owner read, its
receipts naming her, the node and the app; and nobody else passes for her.

The sessions are made as the App Launch flow will make them: a Session whose delegation
the patient (or the guardian) signed to hospital B's node for one app, in B's token store.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI

from medledger.access.custodian import ReleaseAsk
from medledger.access.delegation import Delegation, SignedDelegation, digest_of
from medledger.access.owner import PURPOSE
from medledger.access.release import OWNER_READ, Release
from medledger.crypto.keys import PrivateKey
from medledger.ledger.timestamps import NS_PER_MS, NS_PER_S
from medledger.node.api import ReadOut
from medledger.node.client import NodeClient, NodeRefused, RemoteCustodian
from medledger.node.fhir.groups import Group, GroupRegistry
from medledger.node.fhir.tokens import Session, Tokens
from medledger.node.identities import PASSPHRASE_ENV
from medledger.records.proof import committed_record
from tests.ledger.consortium import key
from tests.node.network import Network, running_network
from tests.node.test_fhir_api import OTHER, PASSPHRASE, PATIENT, SCENE, _fhir, _get, _set_up

GUARDIAN = key("fhir-owner:guardian")
APP = "patient-app"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(PASSPHRASE_ENV, PASSPHRASE)
        with running_network(tmp_path_factory.mktemp("fhir-owner")) as network:
            asyncio.run(_set_up(network))
            asyncio.run(network.submit("hospital-a", PATIENT, "access.set_guardians",
                                       {"guardians": [GUARDIAN.address]}))  # fmt: skip
            yield network


def _tokens(net: Network) -> Tokens:
    app = net.nodes["hospital-b"].server.config.app
    assert isinstance(app, FastAPI)
    # The node makes its token store on the first bearer token it is shown.
    _fhir(_get(net, "/Observation", "none-yet", patient=PATIENT.address), 401)
    tokens = app.state.tokens
    assert isinstance(tokens, Tokens)
    return tokens


def _session_token(
    net: Network, principal: PrivateKey, *, signer: PrivateKey | None = None,
    types: set[str] | None = None, app: str = APP,
) -> str:  # fmt: skip
    """A token at hospital B for ``principal``, whose delegation to B ``signer`` signed
    (the principal, unless said otherwise)."""
    expires_ns = time.time_ns() + 300 * NS_PER_S
    delegation = Delegation.of_types(3131, net.nodes["hospital-b"].member.address, app, types,
                                     expires_ns // NS_PER_MS)  # fmt: skip
    signed = SignedDelegation.sign(delegation, signer or principal)
    session = Session(principal.address, app, "patient/*.rs", signed, expires_ns, creates=None)
    return _tokens(net).issue(session)


def _receipts(net: Network) -> int:
    store = net.nodes["hospital-b"].service.node.store
    return sum(1 for tx in store.iter_txs() if tx.tx_type == "access.receipt")


def _audit(net: Network, reader: PrivateKey) -> list[ReadOut]:
    async def ask() -> list[ReadOut]:
        async with net.client("hospital-a", PATIENT) as client:
            audit = await client.audit(PATIENT.address)
        return [r for r in audit.reads if r.reader == reader.address]

    return asyncio.run(ask())


def test_the_patient_reads_her_chart_and_her_audit_names_node_and_app(net: Network) -> None:
    token = _session_token(net, PATIENT)
    before = _receipts(net)
    bundle = _fhir(_get(net, f"/Patient/{PATIENT.address}/$everything", token))
    resources = [e["resource"] for e in bundle["entry"] if e["search"]["mode"] == "match"]
    lab = SCENE.records_b["lab3.json"]
    # Her whole chart: the four records at A and the one at B, every vault answering.
    assert bundle["total"] == 5 and len(resources) == 5
    records = {n: i for n, i in SCENE.records_a.items() if n != "patient.json"}
    # The chart's Patient is served under her pseudonym.
    assert {*records.values(), lab, PATIENT.address} == {r["id"] for r in resources}
    assert all(r["subject"]["reference"] == f"Patient/{PATIENT.address}" for r in resources
               if "subject" in r)  # fmt: skip
    observation = _fhir(_get(net, f"/Observation/{lab}", token))
    assert observation["valueQuantity"]["value"] == 6.10
    # One owner release for the chart: one receipt per custodian.
    assert _receipts(net) - before == 3
    reads = _audit(net, PATIENT)
    member_b = net.nodes["hospital-b"].member.address
    assert reads and {(r.via, r.app, r.grant, r.purpose) for r in reads} == {
        (member_b, APP, None, PURPOSE)}  # fmt: skip
    assert lab in {r.record_id for r in reads} and all(r.complete for r in reads)


def test_a_guardians_read_names_the_guardian(net: Network) -> None:
    token = _session_token(net, GUARDIAN)
    bundle = _fhir(_get(net, "/Observation", token, patient=PATIENT.address))
    assert SCENE.records_b["lab3.json"] in {e["resource"]["id"] for e in bundle["entry"]
                                            if e["search"]["mode"] == "match"}  # fmt: skip
    (read, *_) = _audit(net, GUARDIAN)
    assert (read.via, read.app) == (net.nodes["hospital-b"].member.address, APP)


def test_her_delegation_narrows_what_the_node_opens(net: Network) -> None:
    token = _session_token(net, PATIENT, types={"Condition"}, app="conditions-app")
    bundle = _fhir(_get(net, "/Observation", token, patient=PATIENT.address))
    assert bundle["total"] == 0
    _fhir(_get(net, f"/Observation/{SCENE.records_b['lab3.json']}", token), 404)
    # Whatever the chart opened for this app, no custodian released an Observation.
    opened = {r.resource_type for r in _audit(net, PATIENT) if r.app == "conditions-app"}
    assert opened <= {"Condition"}


@pytest.mark.parametrize("case", ["another patient", "a session the node signed for her"])
def test_nobody_else_reads_her_chart(net: Network, case: str) -> None:
    """Another patient's session reads nothing of hers; a session the node's operator made
    up for her (its own signature on the delegation) opens nothing: every custodian
    refuses the release, and none logs a receipt."""
    before = _receipts(net)
    if case == "another patient":
        token = _session_token(net, OTHER)
        bundle = _fhir(_get(net, "/Observation", token, patient=PATIENT.address))
        assert bundle["total"] == 0 and "entry" not in bundle
    else:
        token = _session_token(net, PATIENT, signer=net.nodes["hospital-b"].member,
                               app="forged-app")  # fmt: skip
        outcome = _fhir(_get(net, "/Observation", token, patient=PATIENT.address), 422)
        assert "released by 0 of 3 custodians" in outcome["issue"][0]["diagnostics"]
    assert _receipts(net) == before


def _owner_ask(net: Network, signer: PrivateKey, delegation: SignedDelegation | None) -> Any:
    node_a = net.nodes["hospital-a"]
    stored = node_a.service.vault.get(bytes.fromhex(SCENE.records_a["lab1.json"]))
    record = committed_record(stored, node_a.service.vault_id, node_a.service.node)
    not_after = int(time.time() * 1000) + 60_000
    release = Release.of(3131, OWNER_READ, [record.commitment], bytes(32), not_after,
                         delegation=digest_of(delegation))  # fmt: skip
    return ReleaseAsk(release, release.sign(signer), (record,), delegation)


@pytest.mark.parametrize(
    ("case", "code"),
    [("hospital B's own signature", "not_patient"),
     ("her delegation, captured by the insurer", "bad_approval")],
)  # fmt: skip
def test_a_custodian_releases_her_records_only_to_her(net: Network, case: str, code: str) -> None:
    """Straight at hospital A's custodian: a node asking for her records as her, with no
    delegation of hers, or with the one she gave another node, is refused."""
    member_b, insurer = net.nodes["hospital-b"].member, net.nodes["insurer"].member
    hers = SignedDelegation.sign(
        Delegation.of_types(3131, member_b.address, APP, None, int(time.time() * 1000) + 60_000),
        PATIENT,
    )
    signer, ask = ((member_b, _owner_ask(net, member_b, None))
                   if case == "hospital B's own signature"
                   else (insurer, _owner_ask(net, insurer, hers)))  # fmt: skip
    node_a = net.nodes["hospital-a"]
    before = _receipts(net)

    async def attack() -> None:
        async with NodeClient(node_a.url, signer) as client:
            await RemoteCustodian(client, node_a.member.address).release(ask)

    with pytest.raises(NodeRefused) as refused:
        asyncio.run(attack())
    assert refused.value.code == code
    assert _receipts(net) == before


def test_her_app_exports_her_own_chart(net: Network) -> None:
    """Bulk export for the patient herself: Patient/$export covers her own chart (an
    owner read), and a Group naming her and another patient exports hers alone."""
    from tests.node.test_fhir_export import _exported, _kick_off, _manifest

    token = _session_token(net, PATIENT)
    everything = _fhir(_get(net, f"/Patient/{PATIENT.address}/$everything", token))
    shown = sorted(e["resource"]["id"] for e in everything["entry"]
                   if e["search"]["mode"] == "match")  # fmt: skip
    manifest = _manifest(_kick_off(net, "/Patient/$export", token), token)
    assert manifest["error"] == []
    exported = _exported(manifest, token)
    assert sorted(r["id"] for rs in exported.values() for r in rs) == shown
    GroupRegistry(net.nodes["hospital-b"].service.settings.data_dir).add(
        Group.of("mine-and-another", [PATIENT.address, OTHER.address]))  # fmt: skip
    group = _fhir(_get(net, "/Group/mine-and-another", token))
    assert [m["entity"]["reference"] for m in group["member"]] == [f"Patient/{PATIENT.address}"]
