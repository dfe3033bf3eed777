"""The ledger's steps: founding, staff, members, refusals, checkpoints, proofs, agreement."""

from __future__ import annotations

import dataclasses
import hashlib

from medledger.access import care
from medledger.crypto import merkle
from medledger.demo.scene import (
    NETWORK_ID,
    Scene,
    check,
    expect_refusal,
    labelled_key,
    labelled_x25519_public,
)
from medledger.ledger.contracts import identity, membership
from medledger.ledger.errors import BadSignature, DoubleVote, ReplayedTransaction, Unauthorized
from medledger.ledger.tx import SignedTransaction, Transaction


class LedgerSteps(Scene):
    """Steps about the network itself, its members and its log."""

    async def _found(self) -> str:
        check(all(n.size == 1 for n in self.nodes), "every node applied the genesis")
        check(len(self.a.members()) == 3, "three founding members")
        genesis_id = self.genesis.tx_id.hex()[:16]
        return f"network {NETWORK_ID}, genesis 0x{genesis_id}…, 3 nodes on one embedded sequencer"

    async def _register_staff(self) -> str:
        await self.a.submit_payload(
            self.hospital_a,
            identity.REGISTER_PARTICIPANT,
            {"address": self.doctor_a.address, "role": "doctor"},
        )
        await self.a.submit_payload(
            self.hospital_a,
            identity.REGISTER_PARTICIPANT,
            {"address": self.nurse_a.address, "role": "nurse"},
        )
        await self.b.submit_payload(
            self.hospital_b,
            identity.REGISTER_PARTICIPANT,
            {"address": self.doctor_b.address, "role": "doctor"},
        )
        await self.b.wait_for_size(self.a.size)
        check(
            identity.participant_role(self.b.store, self.nurse_a.address) == "nurse",
            "hospital B sees A's nurse",
        )
        return "Hospital A: a doctor and a nurse; Hospital B: a doctor"

    async def _outsider(self) -> str:
        why = await expect_refusal(
            Unauthorized,
            self.a.submit_payload(
                self.doctor_a,
                identity.REGISTER_PARTICIPANT,
                {"address": labelled_key("x").address, "role": "doctor"},
            ),
        )
        return f"refused: {why}"

    async def _patient_joins(self) -> str:
        joined = await self.b.submit_payload(
            self.patient,
            identity.REGISTER_SUBJECT,
            {"encryption_key": "0x" + self.pkey.hex()},
        )
        await self.a.wait_for_size(self.b.size)
        check(
            identity.is_subject(self.a.store, self.patient.address),
            "patient visible at A",
        )
        check(joined.index is not None, "the registration is in the log")
        self.patient_entry = joined.index or 0
        # Hospital A's clinicians may write to the chart once the patient enrols there.
        enrolled = {"institution": self.hospital_a.address}
        await self.b.submit_payload(self.patient, care.ENROL, enrolled)
        return (
            f"pseudonym {self.patient.address}, enrolled at Hospital A; the ledger holds "
            "only its encryption key"
        )

    async def _forged_and_replayed(self) -> str:
        tx = Transaction(
            NETWORK_ID,
            self.patient.address,
            self.a.next_nonce(self.patient.address),
            identity.REGISTER_SUBJECT,
            {"encryption_key": "0x" + bytes(32).hex()},
        )
        forged = SignedTransaction(tx, labelled_key("mallory").sign_digest(tx.digest))
        bad = await expect_refusal(BadSignature, self.a.submit(forged))
        first = self.a.store.tx_by_index(1)
        replay = await expect_refusal(
            ReplayedTransaction, self.a.submit(SignedTransaction.decode(first.raw))
        )
        return f"forged: {bad}\n      replayed: {replay}"

    async def _admit_insurer(self) -> str:
        member = {
            "id": "insurer",
            "name": "Insurer",
            "address": self.insurer.address,
            "custodian_key": "0x" + labelled_x25519_public("insurer").hex(),
        }
        proposal = await self.a.submit_payload(
            self.hospital_a, membership.PROPOSE, {"action": "admit", "member": member}
        )
        proposal_id = "0x" + proposal.tx_id.hex()
        check(self.insurer.address not in self.a.members(), "one vote is not enough")
        double = await expect_refusal(
            DoubleVote,
            self.a.submit_payload(self.hospital_a, membership.VOTE, {"proposal": proposal_id}),
        )
        await self.b.submit_payload(self.hospital_b, membership.VOTE, {"proposal": proposal_id})
        await self.nodes[2].wait_for_size(self.b.size)
        check(self.insurer.address in self.nodes[2].members(), "admitted after 2 of 3 votes")
        return f"1 of 2 votes: pending; second vote by Hospital B: admitted. {double}"

    async def _checkpoint(self) -> str:
        cp = await self._cosigned()
        size = cp.head.size
        quorum = cp.verify(self.a.members(), int(self.a.network_config()["checkpoint_threshold"]))
        return f"size {size}, root 0x{cp.head.root.hex()[:16]}…, {quorum.describe()}"

    async def _proofs(self) -> str:
        cp = self.a.checkpoint()
        check(cp is not None, "a checkpoint exists")
        assert cp is not None
        logged = self.b.store.tx_by_index(self.patient_entry)
        proof = self.b.inclusion_proof(logged.index, cp.head.size)
        merkle.verify_inclusion(
            merkle.leaf_hash(logged.raw), logged.index, cp.head.size, proof, cp.head.root
        )
        consistency = self.nodes[2].consistency_proof(cp.head.size, self.nodes[2].size)
        merkle.verify_consistency(
            cp.head.size, self.nodes[2].size, cp.head.root, self.nodes[2].root(), consistency
        )
        return (
            f"entry {logged.index} ({logged.tx_type}) included: {len(proof)} hashes; "
            f"log grew consistently to {self.nodes[2].size}"
        )

    async def _agree(self) -> str:
        for n in self.nodes:
            await n.wait_for_size(self.a.size)
        roots = {await n.state_root_at(self.a.size) for n in self.nodes}
        check(len(roots) == 1 and len({n.root() for n in self.nodes}) == 1, "all nodes agree")
        return f"state root 0x{roots.pop().hex()[:16]}… on all three nodes"

    async def _equivocation(self) -> str:
        honest = self.a.tree_head(2)
        forked = hashlib.sha256(b"forked").digest()
        lie = dataclasses.replace(honest, root=forked).sign(self.checkup)
        evidence = self.a.check_head(lie)
        check(evidence is not None, "a contradicting head is detected")
        return f"two signed heads of size 2, different roots: misbehaviour by {lie.signer} reported"
