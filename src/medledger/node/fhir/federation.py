"""A patient's chart across the consortium, as one FHIR session may read it.

For a session (a grant's holder reading through this node for one app, under the
holder's delegation), the chart is the latest version of every record, in every
member's vault, that the holder's grants cover and the delegation's resource types
reach: this node's vault is read directly, the others' through their
``/v1/records/committed`` route, signed by this node and carrying the delegation, all
at once. Every record is then opened through the custodians (access/reader.py): one
release per grant per 150 records, so a chart of 500 records costs each custodian four
receipts. A vault that does not answer is reported, not hidden: the chart says which.

A session whose principal speaks for the patient (the patient, or a guardian she
named) reads her whole chart as an owner read (access/owner.py) instead: no grant, the
custodians checking the principal's delegation to this node against the patient.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from medledger.access.owner import OwnerRead
from medledger.access.reader import CustodianEndpoint, read_records
from medledger.access.state import Grant, held_grants, speaks_for
from medledger.crypto.json_numbers import parse_json
from medledger.crypto.keys import Address
from medledger.errors import MedledgerError
from medledger.ledger.contracts.membership import network_config
from medledger.node.client import NodeClient, RemoteCustodian
from medledger.node.fhir.provenance import provenance_found
from medledger.node.fhir.tokens import Session
from medledger.node.service import NodeService
from medledger.records.errors import UnknownRecord
from medledger.records.fhir_search import Found
from medledger.records.proof import CommittedRecord, RecordProof, committed_record, prove
from medledger.records.store import StoredRecord, latest_versions

__all__ = ["Chart", "Federation", "Opened"]


@dataclass(frozen=True)
class Opened:
    """One record of a chart, decrypted: its FHIR body as written and where it is from."""

    record: CommittedRecord
    body: dict[str, Any]
    #: When its batch was committed to the ledger (orderer time).
    committed_ns: int
    #: The node whose vault holds it.
    vault: str


@dataclass(frozen=True)
class Chart:
    patient: Address
    records: tuple[Opened, ...]
    #: Why records may be missing: vaults that did not answer, or listed what does not check.
    unreachable: tuple[str, ...]


class Federation:
    def __init__(self, service: NodeService) -> None:
        self._service = service
        self._peers: dict[str, RemoteCustodian] = {}

    def grants(self, session: Session, patient: Address) -> frozenset[str]:
        """The grants the session's principal holds on the patient's data, now (the owner
        read's all-zero id while the principal speaks for the patient)."""
        return frozenset(g.grant for g in self._reads_under(session, patient))

    def _reads_under(self, session: Session, patient: Address) -> list[Grant | OwnerRead]:
        """What the session reads the patient's records under: her own right, if its
        principal speaks for her; else the grants its principal holds on her data."""
        view = self._service.node.store
        if speaks_for(view, patient, session.principal):
            return [OwnerRead(patient)]
        return list(held_grants(view, session.principal, patient, time.time_ns()))

    async def chart(self, session: Session, patient: Address) -> Chart:
        grants = self._reads_under(session, patient)
        if not grants:
            return Chart(patient, (), ())
        listed, unreachable = await self._list(session, patient, grants)
        opened = await self._open(session, listed) if listed else []
        return Chart(patient, tuple(opened), tuple(unreachable))

    async def record(
        self, session: Session, record_id: bytes, version: int | None = None
    ) -> Opened | None:
        """One version of a record (the latest by default), wherever it is kept, if the
        session may read it; None otherwise: a record it may not read is as one that does
        not exist."""
        found = await self._find(session, record_id, version)
        if found is None:
            return None
        opened = await self._open(session, [found])
        return opened[0] if opened else None

    async def provenance(
        self, session: Session, record_id: bytes, version: int | None = None
    ) -> Found | None:
        """The Provenance of a record version the session may read, built without opening
        it (no custodian is asked, no receipt left: it shows what the record list does,
        plus the author's signature and the ledger's proof); None otherwise."""
        found = await self._find(session, record_id, version)
        if found is None:
            return None
        record, vault = found
        header = record.sealed.header
        grants = self._reads_under(session, header.patient)
        reaches = session.delegation.delegation.allows
        if _covering(grants, record) is None or not (
            reaches(header.resource_type) and reaches("Provenance")
        ):
            return None
        proof = await self._proof(session, record, vault)
        return provenance_found(record, author=record.sealed.check_signed(),
                                committed_ns=self._committed_ns(record), proof=proof)  # fmt: skip

    async def _proof(
        self, session: Session, record: CommittedRecord, vault: str
    ) -> RecordProof | None:
        """The record's proof up to the latest cosigned checkpoint; None before one covers
        its batch (or when its vault does not answer)."""
        header, service = record.sealed.header, self._service
        try:
            if vault == "local":
                stored = service.vault.get(header.record_id, header.version)
                return prove(stored, service.vault_id, service.node)
            async with NodeClient(vault, service.keys.member,
                                  delegation=session.delegation) as client:  # fmt: skip
                return await client.record_proof(header.record_id.hex(), header.version)
        except MedledgerError:
            return None

    async def history(self, session: Session, record_id: bytes) -> list[Opened]:
        """Every version of a record the session may read, oldest first, in one release."""
        latest = await self._find(session, record_id, None)
        if latest is None:
            return []
        record, vault = latest
        found = [latest]
        for version in range(1, record.sealed.header.version):
            earlier = await self._find(session, record_id, version, only=vault)
            if earlier is not None:
                found.insert(-1, earlier)
        return await self._open(session, found)

    async def _open(
        self, session: Session, found: Sequence[tuple[CommittedRecord, str]]
    ) -> list[Opened]:
        """Open records of one patient under the grants that cover them (those covered
        by none, or of a type the delegation does not reach, are left out)."""
        view = self._service.node.store
        grants = self._reads_under(session, found[0][0].sealed.header.patient)
        by_grant: dict[str, list[tuple[CommittedRecord, str]]] = {}
        for record, vault in found:
            grant = _covering(grants, record)
            if grant is not None and session.delegation.delegation.allows(
                record.sealed.header.resource_type
            ):
                by_grant.setdefault(grant.grant, []).append((record, vault))
        custodians = await self._custodian_endpoints()
        threshold = int(network_config(view)["custodian_threshold"])
        opened: list[Opened] = []
        for grant_id, entries in by_grant.items():
            texts = await read_records(
                self._service.keys.member, bytes.fromhex(grant_id[2:]),
                [record for record, _ in entries], custodians=custodians,
                threshold=threshold, delegation=session.delegation,
            )  # fmt: skip
            opened += [
                Opened(record, parse_json(text), self._committed_ns(record), vault)
                for (record, vault), text in zip(entries, texts, strict=True)
            ]
        return opened

    async def _find(
        self, session: Session, record_id: bytes, version: int | None, *,
        only: str | None = None,
    ) -> tuple[CommittedRecord, str] | None:  # fmt: skip
        """Where a record version is kept: this vault, or the first peer that serves it
        (``only``: that vault)."""
        service = self._service
        if only in (None, "local"):
            try:
                stored = service.vault.get(record_id, version)
            except UnknownRecord:
                pass
            else:
                return committed_record(stored, service.vault_id, service.node), "local"
        peers = [url for url in service.settings.peers if only in (None, url)]
        answers = await asyncio.gather(
            *(self._remote_record(url, session, record_id, version) for url in peers),
            return_exceptions=True,
        )
        for url, answer in zip(peers, answers, strict=True):
            if isinstance(answer, CommittedRecord):
                return answer, url
            if isinstance(answer, BaseException) and not isinstance(answer, MedledgerError):
                raise answer
        return None

    async def _remote_record(
        self, url: str, session: Session, record_id: bytes, version: int | None
    ) -> CommittedRecord:
        async with NodeClient(url, self._service.keys.member, delegation=session.delegation) as c:
            return await c.record(record_id.hex(), version)

    async def _list(
        self, session: Session, patient: Address, grants: Sequence[Grant | OwnerRead]
    ) -> tuple[list[tuple[CommittedRecord, str]], list[str]]:
        service = self._service
        local = [
            (committed_record(stored, service.vault_id, service.node), "local")
            for stored in latest_versions(service.vault.for_patient(patient))
            if any(_covers(grant, stored) for grant in grants)
        ]
        peers = service.settings.peers
        answers = await asyncio.gather(
            *(self._remote(url, session, patient) for url in peers), return_exceptions=True
        )
        listed, unreachable = local, []
        for url, answer in zip(peers, answers, strict=True):
            if isinstance(answer, MedledgerError):
                unreachable.append(f"no answer from the vault at {url}")
            elif isinstance(answer, BaseException):
                raise answer
            else:
                commits: dict[int, bytes] = {}  # a vault's records share a few batches
                kept = [r for r in answer if self._checks(r, patient, commits)]
                listed += [(record, url) for record in kept]
                if len(kept) < len(answer):
                    # A vault that lists what is not this patient's, or what its log does
                    # not commit, has its other records read; those are left out, said so.
                    unreachable.append(
                        f"the vault at {url} listed records that do not check: left out"
                    )
        return listed, unreachable

    def _checks(self, record: CommittedRecord, patient: Address, commits: dict[int, bytes]) -> bool:
        """That a record another vault listed is this patient's, signed by its author and
        committed in this node's own log (``commits``: the commit transactions read so
        far, by log index)."""
        if record.sealed.header.patient != patient:
            return False
        try:
            if record.log_index not in commits:
                logged = self._service.node.store.tx_by_index(record.log_index)
                commits[record.log_index] = logged.raw
            record.check(commits[record.log_index])
        except (MedledgerError, LookupError):
            return False
        return True

    async def _remote(self, url: str, session: Session, patient: Address) -> list[CommittedRecord]:
        async with NodeClient(url, self._service.keys.member, delegation=session.delegation) as c:
            return await c.committed_records(patient)

    async def _custodian_endpoints(self) -> list[CustodianEndpoint]:
        """This node's custodian and each reachable peer's (a peer is asked once which
        member it runs for); t of them are enough."""
        service = self._service
        endpoints: list[CustodianEndpoint] = [service.custodian]
        for url in service.settings.peers:
            custodian = self._peers.get(url)
            if custodian is None:
                client = NodeClient(url, service.keys.member)
                try:
                    member = (await client.status()).member
                except MedledgerError:
                    await client.close()
                    continue
                custodian = self._peers[url] = RemoteCustodian(client, Address(member))
            endpoints.append(custodian)
        return endpoints

    async def close(self) -> None:
        for custodian in self._peers.values():
            await custodian.client.close()
        self._peers.clear()

    def _committed_ns(self, record: CommittedRecord) -> int:
        return self._service.node.store.tx_by_index(record.log_index).timestamp_ns


def _covers(grant: Grant | OwnerRead, stored: StoredRecord) -> bool:
    return grant.covers(stored.sealed.header.category, "0x" + stored.commitment.hex())


def _covering(
    grants: Sequence[Grant | OwnerRead], record: CommittedRecord
) -> Grant | OwnerRead | None:
    commitment = "0x" + record.commitment.hex()
    category = record.sealed.header.category
    return next((g for g in grants if g.covers(category, commitment)), None)
