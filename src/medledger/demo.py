"""``make demo``: the consortium ledger's story, told step by step, every step checked.

Three institutions found a network on the embedded defaults, register their
staff, a patient joins under a pseudonym, an insurer is admitted by 2 of 3
votes, forged and replayed transactions bounce, records are written and read; a
doctor at hospital B reads a lab result once the patient and the attending
doctor approved (2 of 3), through custodians that log a receipt first; the
patient's audit shows it; a revoked grant releases nothing; a break-glass read
is flagged; a tampered record is caught; the insurer learns "HbA1c below 6.5 %"
from a zero-knowledge proof; and the log is checkpointed, proven and compared
across nodes. Exits non-zero if any check fails.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from rich.console import Console
from sqlalchemy import create_engine, text

from medledger.access import care
from medledger.access import contract as access
from medledger.access.approval import Approval
from medledger.access.audit import audit_log, break_glass_notices
from medledger.access.custodian import Custodian
from medledger.access.errors import EmptyScope
from medledger.access.reader import read_record
from medledger.credentials.claims import derive_claims
from medledger.credentials.contract import verification
from medledger.credentials.errors import PredicateNotSatisfied
from medledger.credentials.issuer import Issuer
from medledger.credentials.registry import Registry
from medledger.credentials.request import Predicate
from medledger.credentials.verifier import Verifier
from medledger.credentials.wallet import Wallet
from medledger.crypto import ecies, merkle
from medledger.crypto.canonical import canonical_json
from medledger.crypto.errors import InsufficientShares
from medledger.crypto.keys import PrivateKey
from medledger.errors import MedledgerError
from medledger.ledger.checkpoints import Checkpoint
from medledger.ledger.contracts import identity, membership
from medledger.ledger.errors import BadSignature, DoubleVote, ReplayedTransaction, Unauthorized
from medledger.ledger.genesis import Founder, build_genesis
from medledger.ledger.node import LedgerNode
from medledger.ledger.ordering.embedded import EmbeddedOrderer
from medledger.ledger.store import LedgerStore
from medledger.ledger.tx import SignedTransaction, Transaction
from medledger.protocol import contract_set
from medledger.records.pipeline import SealingPool
from medledger.records.proof import CommittedRecord, committed_record
from medledger.records.recipients import sealing_context
from medledger.records.sealed import open_as_patient, open_with_shares, unwrap_share
from medledger.records.store import VaultStore
from medledger.records.synthetic import generate_patients
from medledger.records.synthetic_checkup import CheckupResults, checkup_observations
from medledger.records.verify import verify_vault
from medledger.records.writer import RecordWriter, Written, plan_new

NETWORK_ID = 2026
INSTITUTIONS = [
    ("hospital-a", "Hospital A"),
    ("hospital-b", "Hospital B"),
    ("checkup", "Checkup centre"),
]


class DemoFailed(MedledgerError):
    """A step of the demo did not turn out as it must."""


def _key(label: str) -> PrivateKey:
    # Demo identities are derived from labels so that every run tells the same story.
    return PrivateKey.from_bytes(hashlib.sha256(b"medledger-demo/" + label.encode()).digest())


def _x25519_private(label: str) -> X25519PrivateKey:
    secret = hashlib.sha256(b"medledger-demo-x25519/" + label.encode()).digest()
    return ecies.private_from_bytes(secret)


def _x25519_public(label: str) -> bytes:
    return ecies.public_bytes(_x25519_private(label))


def check(condition: bool, what: str) -> None:
    if not condition:
        raise DemoFailed(what)


async def expect_error(error: type[Exception], attempt: Callable[[], object]) -> str:
    try:
        attempt()
    except error as exc:
        return str(exc)
    raise DemoFailed(f"expected {error.__name__}, but it succeeded")


async def expect_refusal(error: type[Exception], attempt: Awaitable[object]) -> str:
    try:
        await attempt
    except error as exc:
        return str(exc)
    raise DemoFailed(f"expected {error.__name__}, but the transaction was accepted")


class Story:
    def __init__(self, console: Console, workdir: Path) -> None:
        self.console = console
        self.workdir = workdir
        self.step = 0
        self.patient_entry = 0
        self.pkey = _x25519_public("patient-p")
        self.vault: VaultStore | None = None
        self.written: list[Written] = []

    async def say(self, title: str, action: Callable[[], Awaitable[str]]) -> None:
        self.step += 1
        started = time.perf_counter()
        detail = await action()
        elapsed = (time.perf_counter() - started) * 1000
        self.console.print(
            f"[green]✓[/green] [bold]{self.step:>2}. {title}[/bold] [dim]({elapsed:.0f} ms)[/dim]"
        )
        if detail:
            self.console.print(f"      {detail}")

    async def run(self) -> None:
        founders = [_key(i) for i, _ in INSTITUTIONS]
        genesis = build_genesis(
            network_id=NETWORK_ID,
            name="medledger demo consortium",
            founders=[
                Founder(ident, name, k.address, _x25519_public(ident))
                for (ident, name), k in zip(INSTITUTIONS, founders, strict=True)
            ],
            signer=founders[0],
            vote_threshold=2,
            checkpoint_threshold=2,
            roles=["doctor", "nurse", "pharmacist", "officer", "verifier"],
            protocol=contract_set().protocol(),
        )
        orderer = EmbeddedOrderer(self.workdir / "ordering.db")
        nodes: list[LedgerNode] = []
        try:
            for (ident, _), key in zip(INSTITUTIONS, founders, strict=True):
                store = LedgerStore.open(str(self.workdir / f"{ident}.db"))
                node = LedgerNode(
                    genesis=genesis,
                    store=store,
                    orderer=orderer,
                    registry=contract_set(),
                    key=key,
                    name=ident,
                )
                await node.start()
                nodes.append(node)
            await self.story(nodes, founders, genesis)
        finally:
            if self.vault is not None:
                self.vault.close()
            for node in nodes:
                await node.stop()
                node.store.close()
            await orderer.close()

    async def story(
        self, nodes: list[LedgerNode], founders: list[PrivateKey], genesis: SignedTransaction
    ) -> None:
        self.nodes, self.genesis = nodes, genesis
        self.a, self.b = nodes[0], nodes[1]
        self.hospital_a, self.hospital_b, self.checkup = founders
        self.doctor_a, self.nurse_a, self.doctor_b = (
            _key("dr-alice"),
            _key("nurse-nia"),
            _key("dr-bob"),
        )
        self.patient, self.insurer = _key("patient-p"), _key("insurer")
        self.officer_b = _key("officer-omar")
        await self.say("Three institutions found the network", self._found)
        await self.say("Institutions register their clinicians with roles", self._register_staff)
        await self.say("A clinician cannot act for an institution", self._outsider)
        await self.say("A patient registers under a pseudonymous key", self._patient_joins)
        await self.say("Forged and replayed transactions are refused", self._forged_and_replayed)
        await self.say("An insurer joins by 2-of-3 member votes", self._admit_insurer)
        await self.say("A doctor writes the patient's FHIR records", self._write_records)
        await self.say("Members cosign a checkpoint of the log", self._checkpoint)
        await self.say("Inclusion and consistency proofs check against it", self._proofs)
        await self.say("Every record verifies against the checkpoint", self._verify_vault)
        await self.say("The patient reads a record; one custodian cannot", self._read_record)
        await self.say("Dr B reads a lab result after 2 of 3 approve", self._shared_read)
        await self.say("The patient's audit shows the read, with its proof", self._audit)
        await self.say("A grant reaches its categories, whatever records it names",
                       self._scope)  # fmt: skip
        await self.say("A revoked grant releases no key", self._revoke)
        await self.say("Break-glass: a doctor and an officer, the read flagged", self._break_glass)
        await self.say("An insurer's verifier cannot write into the chart", self._author)
        await self.say("A record relabelled in the vault is caught", self._tamper)
        await self.say("An insurer learns “HbA1c below 6.5 %” and nothing more", self._credential)
        await self.say("Every node reached the same state", self._agree)
        await self.say("A head that contradicts the log is caught", self._equivocation)

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
                {"address": _key("x").address, "role": "doctor"},
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
            self.a.store.get(identity.SUBJECT_NS, self.patient.address) is not None,
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
        forged = SignedTransaction(tx, _key("mallory").sign_digest(tx.digest))
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
            "custodian_key": "0x" + _x25519_public("insurer").hex(),
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
            plan_new(f"chart-{i}.json", json.dumps(r).encode(), self.patient.address, self.pkey)
            for i, r in enumerate([*resources, wrong])
        ]
        self.vault = VaultStore.open(str(self.workdir / "vault-a.db"), network_id=NETWORK_ID)
        writer = RecordWriter(self.vault, self.a, self.hospital_a, authoring=care.check_author)
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

    def _vault(self) -> VaultStore:
        check(self.vault is not None, "hospital A has a vault")
        assert self.vault is not None
        return self.vault

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
        resource = json.loads(open_as_patient(sealed, _x25519_private("patient-p")))
        check(resource["resourceType"] == "Observation", "the patient reads the observation")
        members = [self.hospital_a, self.hospital_b, self.checkup]
        idents = [ident for ident, _ in INSTITUTIONS]
        shares = [
            unwrap_share(sealed, key.address, _x25519_private(ident))
            for key, ident in zip(members, idents, strict=True)
        ]
        alone = await expect_error(InsufficientShares, lambda: open_with_shares(sealed, shares[:1]))
        check(open_with_shares(sealed, shares[1:]) == canonical_json(resource), "2 of 3 open it")
        code = resource["code"]["coding"][0]["display"]
        return f"the patient reads “{code}”; one custodian alone: {alone}; two: the same record"

    def _custodians(self) -> list[Custodian]:
        members = [self.hospital_a, self.hospital_b, self.checkup]
        return [
            Custodian(node, key, _x25519_private(ident))
            for node, key, (ident, _) in zip(self.nodes, members, INSTITUTIONS, strict=True)
        ]

    def _committed(self, resource_type: str, category: str) -> CommittedRecord:
        written = next(
            w for w in self.written
            if w.resource_type == resource_type
            and self._vault().get(w.record_id).sealed.header.category == category
        )  # fmt: skip
        stored = self._vault().get(written.record_id)
        return committed_record(stored, "0x" + self._vault().vault_id.hex(), self.a)

    async def _grant(self, requester: PrivateKey, approvers: list[PrivateKey],
                     **terms: object) -> bytes:  # fmt: skip
        request = await self.b.submit_payload(
            requester, access.REQUEST, {"patient": self.patient.address, **terms}
        )
        not_after = time.time_ns() // 1_000_000 + 600_000
        signed = [
            Approval(NETWORK_ID, request.tx_id, self.patient.address, requester.address,
                     not_after).signed_by(k)
            for k in approvers
        ]  # fmt: skip
        await self.b.submit_payload(
            self.hospital_b, access.APPROVE, {"request": "0x" + request.tx_id.hex(),
                                              "approvals": signed}
        )  # fmt: skip
        await self.a.wait_for_size(self.b.size)
        return request.tx_id

    async def _shared_read(self) -> str:
        policy = {
            "approvers": {"k_of": 2, "of": [{"patient": True}, {"person": self.doctor_a.address},
                                            {"role": "nurse"}]},
            "purposes": ["TREAT"], "max_duration_s": 24 * 3600,
        }  # fmt: skip
        await self.a.submit_payload(
            self.patient, access.SET_POLICY, {"category": "labs", "policy": policy}
        )
        terms = {"categories": ["labs"], "purpose": "TREAT", "duration_s": 3600}
        alone = await self._grant(self.doctor_b, [self.patient], **terms)
        check(self.a.store.get(access.GRANT_NS, "0x" + alone.hex()) is None,
              "the patient alone is 1 of the 2 the policy asks for")  # fmt: skip
        self.grant = await self._grant(self.doctor_b, [self.patient, self.doctor_a], **terms)
        lab = self._committed("Observation", "labs")
        plaintext = await read_record(self.doctor_b, self.grant, lab,
                                      custodians=self._custodians(), threshold=2)  # fmt: skip
        resource = json.loads(plaintext)
        check(resource["resourceType"] == "Observation", "Dr B reads the lab result")
        display = resource["code"]["coding"][0]["display"]
        return (
            f"policy “2 of patient, Dr A, a nurse”: the patient alone is not enough; with Dr A "
            f"a grant; 3 custodians each log a receipt, then release a share\n      Dr B "
            f"reads “{display}” from 2 shares"
        )

    async def _audit(self) -> str:
        await self._cosigned()
        reads = [e for e in audit_log(self.a, self.patient.address)
                 if e.grant == "0x" + self.grant.hex()]  # fmt: skip
        check(bool(reads) and all(e.reader == self.doctor_b.address for e in reads),
              "every read is Dr B's")  # fmt: skip
        check(all(e.proven for e in reads), "each receipt is proven")
        read = reads[0]
        checkpoint = read.receipts[0].checkpoint_size
        return (
            f"{len(reads)} read of {read.resource_type} {read.record_id} v{read.version}: reader "
            f"Dr B, category labs, purpose TREAT; {len(read.receipts)} custodians' receipts, "
            f"each proven into checkpoint {checkpoint}"
        )

    async def _scope(self) -> str:
        condition = self._committed("Condition", "conditions")
        named = "0x" + condition.commitment.hex()
        empty = await expect_refusal(EmptyScope, self.b.submit_payload(
            self.doctor_b, access.REQUEST, {"patient": self.patient.address, "categories": [],
            "records": [named], "purpose": "TREAT", "duration_s": 3600}))  # fmt: skip
        terms = {"categories": ["labs"], "records": [named], "purpose": "TREAT",
                 "duration_s": 3600}  # fmt: skip
        grant = await self._grant(self.doctor_b, [self.patient, self.doctor_a], **terms)
        why = await expect_refusal(
            InsufficientShares,
            read_record(self.doctor_b, grant, condition, custodians=self._custodians(),
                        threshold=2),
        )  # fmt: skip
        check(why.count("not in the grant's scope") == 3, "each custodian checks the category")
        return (
            f"no category: {empty}\n      a labs grant naming a Condition record: each "
            "custodian finds the record's signed category outside the grant and releases nothing"
        )

    async def _author(self) -> str:
        verifier = _key("verifier-vera")
        staff = {"address": verifier.address, "role": "verifier"}
        await self.a.submit_payload(self.insurer, identity.REGISTER_PARTICIPANT, staff)
        writer = RecordWriter(self._vault(), self.a, self.hospital_a, authoring=care.check_author)
        job = plan_new("note.json", json.dumps(self.resources[-1]).encode(),
                       self.patient.address, self.pkey)  # fmt: skip
        pool = SealingPool(sealing_context(self.a, verifier), workers=1)
        report = await writer.write([job], pool)
        pool.close()
        check(not report.written and len(report.rejected) == 1, "the record is refused")
        check("does not write records" in report.rejected[0].problem, "for its author's role")
        return (
            "genesis lets doctors, nurses and labs write, at institutions the patient enrolled "
            f"at: {report.rejected[0].problem}"
        )

    async def _revoke(self) -> str:
        await self.b.submit_payload(self.patient, access.REVOKE, {"grant": "0x" + self.grant.hex()})
        await self.a.wait_for_size(self.b.size)
        lab = self._committed("Observation", "labs")
        why = await expect_refusal(
            InsufficientShares,
            read_record(self.doctor_b, self.grant, lab, custodians=self._custodians(), threshold=2),
        )
        check(why.count("was revoked") == 3, "each custodian refuses because of the revocation")
        return f"the patient revokes; Dr B asks again: {why.split(':')[0]}: each finds it revoked"

    async def _break_glass(self) -> str:
        officer = {"address": self.officer_b.address, "role": "officer"}
        await self.b.submit_payload(self.hospital_b, identity.REGISTER_PARTICIPANT, officer)
        terms = {"categories": ["conditions"], "purpose": "ETREAT", "duration_s": 3600,
                 "emergency": True}  # fmt: skip
        grant = await self._grant(self.doctor_b, [self.doctor_b, self.officer_b], **terms)
        condition = self._committed("Condition", "conditions")
        await read_record(self.doctor_b, grant, condition, custodians=self._custodians(),
                          threshold=2)  # fmt: skip
        flagged = [e for e in audit_log(self.a, self.patient.address)
                   if e.grant == "0x" + grant.hex()]  # fmt: skip
        check(bool(flagged) and all(e.emergency for e in flagged), "every such read is flagged")
        notices = break_glass_notices(self.a.store, self.patient.address)
        check([n["grant"] for n in notices] == ["0x" + grant.hex()], "the patient is notified")
        return (
            "Dr B and an on-call officer, conditions only, ETREAT, 1 h: granted without the "
            f"patient; {len(flagged)} reads flagged, and a notice waits in the patient's audit"
        )

    async def _tamper(self) -> str:
        lab = self.written[1]
        engine = create_engine(f"sqlite:///{self.workdir / 'vault-a.db'}")
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

    async def _credential(self) -> str:
        claims = derive_claims(self.resources)
        issuer = Issuer(self.nodes[2], self.checkup, self.workdir / "issuer",
                        tails_dir=self.workdir / "tails")  # fmt: skip
        # Safe-prime search for the credential definition: a few seconds, once per issuer.
        await issuer.setup(now_s=int(time.time()), max_credentials=100)
        registry = Registry(self.a.store)
        wallet = Wallet(self.workdir / "wallet.sealed", self.patient)
        offer = issuer.offer()
        issued, credential_id = issuer.issue_anoncreds(
            claims, offer, wallet.request_anoncreds(offer, registry)
        )
        wallet.store_anoncreds(issued, credential_id, registry)
        insurer = Verifier(self.a, self.insurer)
        now_ms = time.time_ns() // 1_000_000
        asked = (Predicate.parse("hba1c_x10 < 65"), Predicate.parse("non_smoker >= 1"))
        signed = insurer.request(purpose="COVERAGE", fmt="anoncreds", now_ms=now_ms,
                                 predicates=asked, issuers=[self.checkup.address])  # fmt: skip
        tails = self.workdir / "tails"
        envelope = wallet.present(signed, registry, now_ms=now_ms, tails_dir=tails)
        result = await insurer.verify(signed, envelope, now_ms=now_ms)
        check(result.facts == {str(p): True for p in asked}, "both predicates hold, nothing else")
        check(json.loads(envelope["presentation"])["requested_proof"]["revealed_attrs"] == {},
              "no attribute revealed")  # fmt: skip
        entry = verification(self.a.store, signed.request.id)
        check(entry is not None and entry["outcome"] == "accepted", "the check is on the ledger")
        lower = insurer.request(purpose="COVERAGE", fmt="anoncreds", now_ms=now_ms,
                                predicates=(Predicate.parse("hba1c_x10 < 50"),))  # fmt: skip
        refused = await expect_error(
            PredicateNotSatisfied,
            lambda: wallet.present(lower, registry, now_ms=now_ms, tails_dir=tails),
        )
        return (
            f"the checkup centre issued an AnonCreds credential; the insurer checked "
            f"{' and '.join(result.facts)} in zero knowledge\n      ledger: request id, "
            f"COVERAGE, accepted; “HbA1c below 5.0 %”: {refused}"
        )

    async def _cosigned(self) -> Checkpoint:
        """Hospital A proposes its head; the other founders' nodes cosign it on their own."""
        # What other nodes ordered (a custodian's receipt, say) must be in A's head too.
        await self.a.wait_for_size(max(node.size for node in self.nodes))
        size = self.a.size
        await self.a.cosign_head(size)
        deadline = time.monotonic() + 10
        while True:
            cp = self.a.checkpoint(size)
            if cp is not None and len(cp.cosignatures) >= 3:
                return cp
            check(time.monotonic() < deadline, "the other members cosign within 10 s")
            await asyncio.sleep(0.02)

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


def run_demo(console: Console) -> None:
    console.print("[bold]medledger[/bold]: a consortium ledger for personal health data\n")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="medledger-demo-") as tmp:
        asyncio.run(Story(console, Path(tmp)).run())
    console.print(f"\n[green]All checks passed[/green] in {time.perf_counter() - started:.1f} s.")
