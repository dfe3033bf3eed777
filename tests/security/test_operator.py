"""Attack table: a node operator editing its own node's database, and an ordering service
that loses what it acknowledged. The node must notice before it serves anything.

- a state row edited while the node is down: the replay at start-up finds it and the
  node refuses to serve, naming the entry (and ``medledger ledger check`` does too);
- a log entry's bytes edited: the replay's log no longer matches the stored one;
- the ordering service rolled back behind a head the node signed, its own store gone:
  the node, caught up with what is left, finds its log shorter than its witness and
  refuses to serve.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from pathlib import Path

import pytest

from medledger.crypto.keys import PrivateKey
from medledger.errors import UsageError
from medledger.ledger.contracts import identity
from medledger.ledger.errors import LogBehindWitness
from medledger.ledger.genesis import save_genesis
from medledger.node.config import NodeSettings
from medledger.node.identities import patient_public_key
from medledger.node.service import NodeKeys, NodeService
from tests.ledger.consortium import key
from tests.node.network import solo_genesis

MEMBER, CUSTODIAN = key("operator:member"), key("operator:custodian")
PATIENTS = [key(f"operator:patient-{i}") for i in range(3)]


def _service(root: Path) -> NodeService:
    if not (root / "genesis.tx").exists():
        save_genesis(solo_genesis(5151, MEMBER, CUSTODIAN), root / "genesis.tx")
    settings = NodeSettings(
        name="solo", data_dir=root / "data", genesis=root / "genesis.tx",
        member_key=root / "unused", custodian_key=root / "unused", state_committer="thread",
        checkpoint_interval_s=3600, checkpoint_every_entries=10**9,
    )  # fmt: skip
    return NodeService(settings, NodeKeys(MEMBER, CUSTODIAN))


async def _register(service: NodeService, patient: PrivateKey) -> None:
    payload = {"encryption_key": "0x" + patient_public_key(patient).hex()}
    await service.node.submit_payload(patient, identity.REGISTER_SUBJECT, payload)


async def _history(root: Path) -> None:
    service = _service(root)
    await service.start()
    try:
        for patient in PATIENTS:
            await _register(service, patient)
    finally:
        await service.stop()


def _start(root: Path) -> None:
    async def start() -> None:
        service = _service(root)
        await service.start()
        await service.stop()

    asyncio.run(start())


def test_a_state_row_edited_while_the_node_was_down_stops_it_serving(tmp_path: Path) -> None:
    asyncio.run(_history(tmp_path))
    _start(tmp_path)  # an honest store starts
    with sqlite3.connect(tmp_path / "data" / "ledger.db") as db:
        db.execute("UPDATE ledger_state SET value = ? WHERE ns = 'subject' AND key = ?",
                   (b'{"encryption_key":"0x00","since":1}', PATIENTS[0].address))  # fmt: skip
    with pytest.raises(UsageError, match=f"state subject/{PATIENTS[0].address}: differs"):
        _start(tmp_path)


def test_a_log_entry_edited_in_the_database_stops_the_node_serving(tmp_path: Path) -> None:
    asyncio.run(_history(tmp_path))
    with sqlite3.connect(tmp_path / "data" / "ledger.db") as db:
        raw = db.execute("SELECT raw FROM ledger_txs WHERE idx = 2").fetchone()[0]
        db.execute("UPDATE ledger_txs SET raw = ? WHERE idx = 2",
                   (bytes(raw).replace(b'"nonce":0', b'"nonce":1'),))  # fmt: skip
    with pytest.raises(UsageError, match="log entry 2"):
        _start(tmp_path)


def test_an_ordering_service_that_lost_what_it_acknowledged_is_caught(tmp_path: Path) -> None:
    async def scenario() -> None:
        service = _service(tmp_path)
        await service.start()
        try:
            await _register(service, PATIENTS[0])
            # The ordering service as a crash will leave it: before what follows.
            shutil.copy(tmp_path / "data" / "ordering.db", tmp_path / "ordering-then.db")
            for patient in PATIENTS[1:]:
                await _register(service, patient)
            await service.node.cosign_head()
        finally:
            await service.stop()

    asyncio.run(scenario())
    data = tmp_path / "data"
    shutil.copy(tmp_path / "ordering-then.db", data / "ordering.db")
    for stale in (*data.glob("ordering.db-*"), *data.glob("ledger*")):
        stale.unlink()
    with pytest.raises(LogBehindWitness, match="lost acknowledged entries"):
        _start(tmp_path)
