"""The ledger node over the embedded sequencer, on SQLite and PostgreSQL state."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from medledger.crypto import merkle
from medledger.crypto.errors import InvalidProof
from medledger.ledger.checkpoints import Checkpoint
from medledger.ledger.contracts import identity, membership
from medledger.ledger.errors import (
    BadSignature,
    CheckpointError,
    Conflict,
    DoubleVote,
    InsufficientCosigners,
    InvalidPayload,
    MalformedTransaction,
    NonceGap,
    NotInitialised,
    ReplayedTransaction,
    Unauthorized,
    UnknownTransactionType,
    WrongNetwork,
)
from medledger.ledger.node import LedgerNode
from medledger.ledger.ordering.embedded import EmbeddedOrderer
from medledger.ledger.store import LedgerStore
from medledger.ledger.store_schema import rejected_table
from medledger.ledger.tx import SignedTransaction, Transaction
from medledger.protocol import contract_set
from tests.ledger.consortium import Consortium, custodian_public, key, make_consortium, start_node

Scenario = Callable[[Consortium, list[LedgerNode], EmbeddedOrderer], Awaitable[None]]


def run(tmp_path: Path, state_url: str, scenario: Scenario, *, nodes: int = 1) -> None:
    """Run ``scenario`` against ``nodes`` nodes sharing one embedded sequencer."""

    async def main() -> None:
        consortium = make_consortium()
        orderer = EmbeddedOrderer(tmp_path / "ordering.db")
        urls = [state_url] + [str(tmp_path / f"state-{i}.db") for i in range(1, nodes)]
        started = [await start_node(consortium, url, orderer, i) for i, url in enumerate(urls)]
        try:
            await scenario(consortium, started, orderer)
        finally:
            for node in started:
                await node.stop()
                node.store.close()
            await orderer.close()

    asyncio.run(main())


def subject_tx(consortium: Consortium, label: str, **kwargs: object) -> SignedTransaction:
    return consortium.tx(
        key(label),
        identity.REGISTER_SUBJECT,
        {"encryption_key": "0x" + custodian_public(label).hex()},
        **kwargs,
    )  # type: ignore[arg-type]


def test_genesis_founds_the_network(tmp_path: Path, state_url: str) -> None:
    async def scenario(c: Consortium, nodes: list[LedgerNode], _: EmbeddedOrderer) -> None:
        node = nodes[0]
        assert node.size == 1
        assert sorted(node.members()) == sorted(k.address for k in c.keys)
        assert node.network_config()["vote_threshold"] == 2
        assert node.store.tx_by_index(0).tx_id == c.genesis.tx_id

    run(tmp_path, state_url, scenario)


def test_transaction_checks_reject_with_specific_errors(tmp_path: Path, state_url: str) -> None:
    async def scenario(c: Consortium, nodes: list[LedgerNode], _: EmbeddedOrderer) -> None:
        node = nodes[0]
        first = subject_tx(c, "patient-1")
        accepted = await node.submit(first)
        assert accepted.index == 1
        patient = key("patient-1").address
        stored = node.store.get(identity.SUBJECT_NS, patient)
        registered = identity.subject_of(node.store, patient)
        assert registered == identity.Subject(patient, custodian_public("patient-1"), 1)
        assert registered.to_state() == stored
        with pytest.raises(ReplayedTransaction, match="already used"):
            await node.submit(first)
        with pytest.raises(NonceGap, match="got nonce 5"):
            await node.submit(subject_tx(c, "patient-2", nonce=5))
        with pytest.raises(WrongNetwork, match="network 1,"):
            await node.submit(subject_tx(c, "patient-3", network_id=1))
        forged = subject_tx(c, "patient-4")
        other = key("mallory").sign_digest(forged.tx_id)
        with pytest.raises(BadSignature, match="signed by"):
            await node.submit(SignedTransaction(forged.tx, other))
        with pytest.raises(UnknownTransactionType):
            await node.submit(c.tx(key("patient-5"), "no.such_type", {}))
        with pytest.raises(Conflict, match="already registered"):
            await node.submit(subject_tx(c, "patient-1"))
        outcomes = await node.submit_raw_many([b"{not json", b"[]"])
        assert [o.code for o in outcomes] == [MalformedTransaction.code] * 2
        assert node.size == 2

    run(tmp_path, state_url, scenario)


def test_member_registers_participants_outsiders_cannot(tmp_path: Path, state_url: str) -> None:
    async def scenario(c: Consortium, nodes: list[LedgerNode], _: EmbeddedOrderer) -> None:
        node = nodes[0]
        hospital, doctor = c.keys[1], key("doctor-1")
        await node.submit(
            c.tx(
                hospital,
                identity.REGISTER_PARTICIPANT,
                {"address": doctor.address, "role": "doctor"},
            )
        )
        assert identity.participant_role(node.store, doctor.address) == "doctor"
        with pytest.raises(Unauthorized, match="not a member"):
            await node.submit(
                c.tx(
                    doctor,
                    identity.REGISTER_PARTICIPANT,
                    {"address": key("x").address, "role": "nurse"},
                )
            )
        with pytest.raises(InvalidPayload, match="role"):
            await node.submit(
                c.tx(
                    hospital,
                    identity.REGISTER_PARTICIPANT,
                    {"address": key("y").address, "role": "wizard"},
                    advance=False,
                )
            )
        with pytest.raises(Unauthorized, match="another institution"):
            await node.submit(
                c.tx(
                    c.keys[2],
                    identity.REVOKE_PARTICIPANT,
                    {"address": doctor.address},
                    advance=False,
                )
            )
        await node.submit(c.tx(hospital, identity.REVOKE_PARTICIPANT, {"address": doctor.address}))
        assert identity.participant_role(node.store, doctor.address) is None
        gone = node.store.get(identity.PARTICIPANT_NS, doctor.address)
        await node.submit(c.tx(c.keys[2], identity.REGISTER_PARTICIPANT,
                               {"address": doctor.address, "role": "nurse", "name": "Ann"}))
        moved = node.store.get(identity.PARTICIPANT_NS, doctor.address)
        # Typed both ways: each stored form reads into a Participant and writes out unchanged.
        for entry in (gone, moved):
            typed = identity.Participant.from_state(doctor.address, entry)
            assert typed.to_state() == entry
        assert set(gone) == {"role", "institution", "status", "since", "spans", "name", "until"}
        now = identity.Participant.from_state(doctor.address, moved)
        assert (now.role, now.institution, now.name, now.active) == ("nurse", c.keys[2].address,
                                                                     "Ann", True)
        first, second = now.spans
        assert first.institution == hospital.address and first.until == gone["until"]
        assert second.covers(second.since) and not first.covers(gone["until"])
        assert identity.participant_at(node.store, doctor.address, first.since) == (
            "doctor", hospital.address
        )

    run(tmp_path, state_url, scenario)


def test_membership_changes_need_k_of_n_votes(tmp_path: Path, state_url: str) -> None:
    async def scenario(c: Consortium, nodes: list[LedgerNode], _: EmbeddedOrderer) -> None:
        node = nodes[0]
        newcomer = key("insurer")
        member = {
            "id": "insurer",
            "name": "An insurer",
            "address": newcomer.address,
            "custodian_key": "0x" + custodian_public("insurer").hex(),
        }
        proposal = c.tx(c.keys[0], membership.PROPOSE, {"action": "admit", "member": member})
        await node.submit(proposal)
        proposal_id = "0x" + proposal.tx_id.hex()
        assert newcomer.address not in node.members()
        with pytest.raises(Unauthorized):
            await node.submit(
                c.tx(newcomer, membership.VOTE, {"proposal": proposal_id}, advance=False)
            )
        with pytest.raises(DoubleVote):
            await node.submit(
                c.tx(c.keys[0], membership.VOTE, {"proposal": proposal_id}, advance=False)
            )
        await node.submit(c.tx(c.keys[1], membership.VOTE, {"proposal": proposal_id}))
        assert newcomer.address in node.members()
        with pytest.raises(Conflict, match="executed"):
            await node.submit(
                c.tx(c.keys[2], membership.VOTE, {"proposal": proposal_id}, advance=False)
            )
        removal = c.tx(
            newcomer, membership.PROPOSE, {"action": "remove", "address": c.keys[2].address}
        )
        await node.submit(removal)
        await node.submit(
            c.tx(c.keys[1], membership.VOTE, {"proposal": "0x" + removal.tx_id.hex()})
        )
        assert c.keys[2].address not in node.members()
        with pytest.raises(Unauthorized):
            await node.submit(
                c.tx(
                    c.keys[2], membership.PROPOSE, {"action": "remove", "address": newcomer.address}
                )
            )
        # Typed both ways: each stored member reads into a Member and writes out unchanged.
        for address in (newcomer.address, c.keys[2].address, c.keys[0].address):
            entry = node.store.get(membership.MEMBER_NS, address)
            assert membership.Member.from_state(entry).to_state() == entry
        gone = membership.member_of(node.store, c.keys[2].address)
        assert gone is not None and not gone.active and gone.spans[-1][1] is not None
        assert gone.member_at(0) and not gone.member_at(gone.spans[-1][1])
        joined = membership.member_of(node.store, newcomer.address)
        assert joined is not None and joined.active and not joined.member_at(joined.since - 1)
        assert set(node.store.get(membership.MEMBER_NS, c.keys[2].address)) == {
            "id", "name", "address", "custodian_key", "status", "since", "spans"}

    run(tmp_path, state_url, scenario)


def test_second_genesis_and_foreign_genesis_are_refused(tmp_path: Path, state_url: str) -> None:
    async def scenario(c: Consortium, nodes: list[LedgerNode], _: EmbeddedOrderer) -> None:
        node = nodes[0]
        again = c.tx(c.keys[1], membership.GENESIS, dict(c.genesis.tx.payload))
        with pytest.raises(Conflict, match="already has its genesis"):
            await node.submit(again)

    run(tmp_path, state_url, scenario)

    async def foreign() -> None:
        consortium = make_consortium()
        other = make_consortium(vote_threshold=1)
        orderer = EmbeddedOrderer(tmp_path / "other-ordering.db")
        await orderer.append([other.genesis.encode()])
        node = LedgerNode(
            genesis=consortium.genesis,
            store=LedgerStore.open(str(tmp_path / "f.db")),
            orderer=orderer,
            registry=contract_set(),
        )
        await node.start()
        assert node.store.rejection(other.genesis.tx_id).code == NotInitialised.code  # type: ignore[union-attr]
        assert node.store.tx_by_index(0).tx_id == consortium.genesis.tx_id
        await node.stop()
        await orderer.close()

    asyncio.run(foreign())


def test_nodes_sharing_a_log_reach_identical_state(tmp_path: Path, state_url: str) -> None:
    async def scenario(c: Consortium, nodes: list[LedgerNode], orderer: EmbeddedOrderer) -> None:
        txs = [subject_tx(c, f"p-{i}") for i in range(40)]
        outcomes = await nodes[1].submit_raw_many([t.encode() for t in txs])
        assert all(o.accepted for o in outcomes)
        for node in nodes:
            await node.wait_for_size(41)
        assert len({await n.state_root_at(41) for n in nodes}) == 1
        assert len({n.root() for n in nodes}) == 1
        late = await start_node(c, str(tmp_path / "late.db"), orderer, 2)
        await late.wait_for_size(41)
        assert await late.state_root_at(41) == await nodes[0].state_root_at(41)
        assert late.root() == nodes[0].root()
        await late.stop()

    run(tmp_path, state_url, scenario, nodes=3)


def test_checkpoints_are_cosigned_and_prove_inclusion(tmp_path: Path, state_url: str) -> None:
    async def scenario(c: Consortium, nodes: list[LedgerNode], _: EmbeddedOrderer) -> None:
        txs = [subject_tx(c, f"p-{i}") for i in range(10)]
        await nodes[0].submit_raw_many([t.encode() for t in txs])
        for node in nodes:
            await node.wait_for_size(11)
        await nodes[0].cosign_head(11)
        for _ in range(100):
            checkpoint = nodes[0].checkpoint(11)
            if checkpoint is not None and len(checkpoint.cosignatures) == 3:
                break
            await asyncio.sleep(0.05)
        assert checkpoint is not None and len(checkpoint.cosignatures) == 3
        assert nodes[0].checkpoint() == checkpoint
        # Each node cosigns once, however many cosignatures it sees arrive first (the
        # genesis, submitted by every node as it starts, is the only thing refused).
        await asyncio.sleep(0.3)
        with nodes[0].store._engine.connect() as conn:
            refused = conn.execute(select(rejected_table.c.tx_id)).scalars().all()
        assert set(refused) <= {c.genesis.tx_id}
        quorum = checkpoint.verify(nodes[0].members(), 2)
        assert quorum.needed == 0 and not quorum.missing
        nodes[0].verify_checkpoint(checkpoint)
        portable = Checkpoint.from_json(checkpoint.to_json())
        assert portable == checkpoint
        one = next(iter(checkpoint.cosignatures.items()))
        with pytest.raises(InsufficientCosigners, match="cosigned by 1 of 3 members, 2 required"):
            Checkpoint(checkpoint.head, dict([one])).verify(nodes[0].members(), 2)
        with pytest.raises(InsufficientCosigners):
            checkpoint.verify([], 0)
        logged = nodes[1].store.tx_by_id(txs[3].tx_id)
        assert logged is not None
        proof = nodes[1].inclusion_proof(logged.index, 11)
        merkle.verify_inclusion(
            merkle.leaf_hash(txs[3].encode()), logged.index, 11, proof, checkpoint.head.root
        )
        with pytest.raises(InvalidProof):
            merkle.verify_inclusion(
                merkle.leaf_hash(txs[4].encode()), logged.index, 11, proof, checkpoint.head.root
            )
        size = nodes[0].size
        consistency = nodes[2].consistency_proof(11, size)
        merkle.verify_consistency(11, size, checkpoint.head.root, nodes[2].root(), consistency)

    run(tmp_path, state_url, scenario, nodes=3)


def test_heads_that_contradict_the_log_are_evidence(tmp_path: Path, state_url: str) -> None:
    async def scenario(c: Consortium, nodes: list[LedgerNode], orderer: EmbeddedOrderer) -> None:
        node = nodes[0]
        await node.submit(subject_tx(c, "p-1"))
        honest = await node.head_at(2)
        lie = dataclasses.replace(honest, root=bytes(32)).sign(c.keys[1])
        evidence = node.check_head(lie)
        assert evidence is not None and evidence.first == lie
        assert evidence.second.head == honest
        assert node.misbehaviour == [evidence]
        assert node.check_head(honest.sign(c.keys[1])) is None
        keyless = LedgerNode(
            genesis=c.genesis, store=node.store, orderer=orderer, registry=contract_set()
        )
        with pytest.raises(CheckpointError, match="contradicts this log"):
            keyless.check_head(lie)
        colluding = {k.address: lie.head.sign(k).signature for k in c.keys[:2]}
        with pytest.raises(CheckpointError, match="contradicts this node's log"):
            node.verify_checkpoint(Checkpoint(lie.head, colluding))
        payload = lie.cosign_payload()
        report = c.tx(c.keys[1], "checkpoint.cosign", payload)
        await node.submit(report)
        recorded = node.store.get("misbehaviour", "0x" + report.tx_id.hex())
        assert recorded["kind"] == "head_contradicts_log"
        # A head true of the log but false of the state: once a member signs the true
        # state root at that size (here this node, on its own), the two roots are evidence.
        false_state = dataclasses.replace(honest, state_root=bytes(32)).sign(c.keys[2])
        assert node.check_head(false_state) is not None
        await node.submit(c.tx(c.keys[2], "checkpoint.cosign", false_state.cosign_payload()))
        true_state = c.tx(c.keys[1], "checkpoint.cosign", honest.sign(c.keys[1]).cosign_payload())
        await node.submit(true_state)
        entries = node.store.state_entries()
        evidence = [json.loads(v) for ns, _, v in entries if ns == "misbehaviour"]
        differ = [e for e in evidence if e["kind"] == "state_roots_differ"]
        assert [e["roots"] for e in differ] == [["0x" + bytes(32).hex()]]
        # The true root has the threshold's two cosignatures; the false one has one.
        latest = node.checkpoint()
        assert latest is not None and latest.head == honest
        with pytest.raises(InvalidPayload, match="beyond"):
            await node.submit(c.tx(c.keys[1], "checkpoint.cosign", {**payload, "size": 99}))

    run(tmp_path, state_url, scenario)


def test_node_restarts_from_its_store(tmp_path: Path, state_url: str) -> None:
    async def main() -> None:
        c = make_consortium()
        orderer = EmbeddedOrderer(tmp_path / "ordering.db")
        node = await start_node(c, state_url, orderer, 0)
        await node.submit(subject_tx(c, "p-1"))
        root, state = node.root(), await node.state_root_at()
        await node.stop()
        node.store.close()
        await orderer.close()
        orderer = EmbeddedOrderer(tmp_path / "ordering.db")
        node = await start_node(c, state_url, orderer, 0)
        assert (node.size, node.root(), await node.state_root_at()) == (2, root, state)
        with pytest.raises(ReplayedTransaction):
            await node.submit(subject_tx(c, "p-1", nonce=0))
        await node.submit(subject_tx(c, "p-2"))
        assert node.size == 3
        await node.stop()
        node.store.close()
        await orderer.close()

    asyncio.run(main())


def test_wallet_typed_data_signs_the_same_digest() -> None:
    from eth_account import Account
    from eth_account.messages import encode_typed_data

    from medledger.crypto.keys import keccak256
    from medledger.ledger.tx import typed_data

    c = make_consortium()
    tx = Transaction(
        7, c.keys[0].address, 3, "identity.register_subject", {"encryption_key": "0x00"}
    )
    full = typed_data(7) | {
        "message": {
            "network": 7,
            "sender": tx.sender,
            "nonce": 3,
            "txType": tx.tx_type,
            "payloadHash": keccak256(tx.payload_bytes),
        }
    }
    signed = Account.sign_message(encode_typed_data(full_message=full), c.keys[0].to_bytes())
    assert signed.message_hash == tx.digest
    SignedTransaction(tx, signed.signature).verify()
