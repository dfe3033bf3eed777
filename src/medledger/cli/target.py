"""Where a command acts: a sandbox home in this process, or an institution's node.

In a home, a patient is named by alias (``--patient``) and the home holds their
keystore; against a node, the caller signs with their own keystore (``--key``) and
believes ledger state only as proven into a checkpoint the members cosigned. Either
way a command gets a :class:`Target`: the acting key, a
:class:`~medledger.ledger.port.Ledger` to read and submit through, and the records,
proofs and audit the caller may see, in one JSON form. Commands are written once.

Heavy modules are imported inside functions: ``medledger --help`` and commands that
never reach a ledger start without them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

from medledger.errors import UsageError

T = TypeVar("T")

if TYPE_CHECKING:
    from medledger.crypto.keys import Address, PrivateKey
    from medledger.ledger.port import Ledger
    from medledger.node.api import Audit, RecordSummary
    from medledger.node.client import NodeClient
    from medledger.node.home import Session
    from medledger.node.proven_state import RemoteLedger
    from medledger.records.proof import CommittedRecord, RecordProof


def load_key(path: Path) -> PrivateKey:
    from medledger.crypto.keystore import decrypt_keystore
    from medledger.node.identities import passphrase, read_keystore

    try:
        document = read_keystore(path)
    except FileNotFoundError:
        raise UsageError(f"no keystore at {path}") from None
    return decrypt_keystore(document, passphrase())


def with_client(node: str, key: Path, work: Callable[[NodeClient], Awaitable[T]]) -> T:
    """Run ``work`` against the node with a client signing as the keystore's key."""
    from medledger.node.client import NodeClient

    async def run() -> T:
        async with NodeClient(node, load_key(key)) as client:
            return await work(client)

    return asyncio.run(run())


class Target(Protocol):
    key: PrivateKey

    @property
    def ledger(self) -> Ledger: ...

    async def records(self, patient: Address, grant: str | None) -> list[RecordSummary]:
        """Every record version of ``patient`` the caller may see, oldest first."""
        ...

    async def committed(self, record_id: str, version: int | None) -> CommittedRecord: ...

    async def proof(self, record_id: str, version: int | None) -> RecordProof: ...

    async def trusted(self) -> tuple[frozenset[Address], int]:
        """The members and checkpoint threshold this side believes in."""
        ...

    async def audit(self, patient: Address) -> Audit: ...


class HomeTarget:
    """Hospital A's node and vault of a sandbox home, in this process."""

    def __init__(self, session: Session, key: PrivateKey) -> None:
        self.session, self.key = session, key

    @property
    def ledger(self) -> Ledger:
        return self.session.node

    async def records(self, patient: Address, grant: str | None) -> list[RecordSummary]:
        from medledger.node.api import RecordSummary

        return [RecordSummary.of(r) for r in self.session.store.for_patient(patient)]

    async def committed(self, record_id: str, version: int | None) -> CommittedRecord:
        from medledger.records.proof import committed_record

        stored = self.session.store.get(record_bytes(record_id), version)
        return committed_record(stored, self._vault, self.session.node)

    async def proof(self, record_id: str, version: int | None) -> RecordProof:
        from medledger.records.proof import prove

        stored = self.session.store.get(record_bytes(record_id), version)
        return prove(stored, self._vault, self.session.node)

    async def trusted(self) -> tuple[frozenset[Address], int]:
        node = self.session.node
        return frozenset(node.members()), int(node.network_config()["checkpoint_threshold"])

    async def audit(self, patient: Address) -> Audit:
        from medledger.access.audit import audit_json
        from medledger.node.api import Audit

        return Audit.model_validate(audit_json(self.session.node, patient))

    @property
    def _vault(self) -> str:
        return "0x" + self.session.store.vault_id.hex()


class NodeTarget:
    """An institution's node, every request signed with the caller's key."""

    def __init__(self, client: NodeClient, ledger: RemoteLedger) -> None:
        self.client, self.remote = client, ledger
        self.key = client.key

    @property
    def ledger(self) -> Ledger:
        return self.remote

    async def records(self, patient: Address, grant: str | None) -> list[RecordSummary]:
        return await self.client.records(patient, grant)

    async def committed(self, record_id: str, version: int | None) -> CommittedRecord:
        return await self.client.record(record_id, version)

    async def proof(self, record_id: str, version: int | None) -> RecordProof:
        return await self.client.record_proof(record_id, version)

    async def trusted(self) -> tuple[frozenset[Address], int]:
        import asyncio

        state = self.remote.store
        await asyncio.to_thread(state.checkpoint)
        return state.trusted.members, state.trusted.threshold

    async def audit(self, patient: Address) -> Audit:
        return await self.client.audit(patient)


def record_bytes(record: str) -> bytes:
    """A record id as typed: 32 hex digits."""
    try:
        raw = bytes.fromhex(record)
    except ValueError:
        raw = b""
    if len(raw) != 16:
        raise UsageError(f"record id {record!r} is not 32 hex digits")
    return raw


@asynccontextmanager
async def acting(
    *,
    patient: str | None,
    key: Path | None,
    node: str,
    home: Path | None,
    writer: str | None = None,
) -> AsyncIterator[Target]:
    """A home's patient by alias, or a keystore at a node; ``writer``: a home's founder
    whose key the home's node signs with (to commit, or write receipts)."""
    if patient is not None:
        from medledger.node.home import Home

        here = Home.at(home)
        own = here.load_key(here.patient_name(patient))
        async with here.session(writer=writer) as session:
            yield HomeTarget(session, own)
        return
    if key is None:
        raise UsageError(
            "say who acts: --patient ALIAS in a sandbox home, or --key KEYSTORE with --node"
        )
    from medledger.node.client import NodeClient
    from medledger.node.proven_state import RemoteLedger

    async with NodeClient(node, load_key(key)) as client:
        ledger = RemoteLedger(client, (await client.health()).network)
        try:
            yield NodeTarget(client, ledger)
        finally:
            ledger.close()
