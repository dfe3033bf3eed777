"""The demo's story: the network started, then every step in order."""

from __future__ import annotations

from medledger.crypto.keys import PrivateKey
from medledger.demo.access_steps import AccessSteps
from medledger.demo.credentials_steps import CredentialsSteps
from medledger.demo.ledger_steps import LedgerSteps
from medledger.demo.records_steps import RecordsSteps
from medledger.demo.scene import (
    INSTITUTIONS,
    NETWORK_ID,
    labelled_key,
    labelled_x25519_private,
    labelled_x25519_public,
)
from medledger.institution import Institution, Parts
from medledger.ledger.genesis import Founder, build_genesis
from medledger.ledger.node import LedgerNode
from medledger.ledger.ordering.embedded import EmbeddedOrderer
from medledger.ledger.tx import SignedTransaction
from medledger.protocol import contract_set


class Story(LedgerSteps, RecordsSteps, AccessSteps, CredentialsSteps):
    async def run(self) -> None:
        founders = [labelled_key(i) for i, _ in INSTITUTIONS]
        genesis = build_genesis(
            network_id=NETWORK_ID,
            name="medledger demo consortium",
            founders=[
                Founder(ident, name, k.address, labelled_x25519_public(ident))
                for (ident, name), k in zip(INSTITUTIONS, founders, strict=True)
            ],
            signer=founders[0],
            vote_threshold=2,
            checkpoint_threshold=2,
            roles=["doctor", "nurse", "pharmacist", "officer", "verifier"],
            protocol=contract_set().protocol(),
        )
        # One sequencer file, shared as the nodes of one machine share it.
        institutions = [
            Institution(
                self._parts(genesis, ident, key), EmbeddedOrderer(self.workdir / "ordering.db")
            )
            for (ident, _), key in zip(INSTITUTIONS, founders, strict=True)
        ]
        try:
            for institution in institutions:
                await institution.start()
            self.institutions = institutions
            await self.story([i.node for i in institutions], founders, genesis)
        finally:
            for institution in institutions:
                await institution.stop()

    def _parts(self, genesis: SignedTransaction, ident: str, key: PrivateKey) -> Parts:
        return Parts(genesis=genesis, state_url=str(self.workdir / f"{ident}.db"),
                     vault_url=str(self.workdir / f"{ident}-vault.db"), name=ident, member=key,
                     custodian_key=labelled_x25519_private(ident))  # fmt: skip

    async def story(
        self, nodes: list[LedgerNode], founders: list[PrivateKey], genesis: SignedTransaction
    ) -> None:
        self.nodes, self.genesis = nodes, genesis
        self.a, self.b = nodes[0], nodes[1]
        self.hospital_a, self.hospital_b, self.checkup = founders
        self.doctor_a, self.nurse_a, self.doctor_b = (
            labelled_key("dr-alice"),
            labelled_key("nurse-nia"),
            labelled_key("dr-bob"),
        )
        self.patient, self.insurer = labelled_key("patient-p"), labelled_key("insurer")
        self.officer_b = labelled_key("officer-omar")
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
