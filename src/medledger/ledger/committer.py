"""The state committer: brings the state tree up to the journal, off the execution path.

Executing a block only appends its writes to the journal (ledger/state_tree.py);
hashing them into the tree costs more than executing them, so a committer does it
beside the executor: in a thread of the node's process, or in a process of its own
so that it runs on another core. It takes every version the journal holds beyond
the tree, stages them one by one and stores them in one SQL transaction, so each
version gets its root and a crash loses nothing (the journal is durable with its
block; the committer resumes from the version it stored last).

Consensus does not depend on it: the checkpoint contract records cosigned roots as
they come; a node cosigns only a head whose state root its own committer computed.
It also prunes what proofs no longer need: the undo records and journal entries
older than the checkpoint before the latest one (so a client that just fetched the
latest can still be served), or older than ``retain_entries`` if checkpoints stall.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import threading
from multiprocessing.connection import Connection

from sqlalchemy import Engine

from medledger.ledger.contracts.checkpoint import LATEST_KEY
from medledger.ledger.database import make_engine
from medledger.ledger.machine import NETWORK_NS
from medledger.ledger.state_tree import (
    HORIZON_KEY,
    TREE_VERSION_KEY,
    TreeWriter,
    driver_sql,
    journal_versions,
    journal_writes,
    meta_int,
    statements,
)
from medledger.ledger.store_schema import GET_STATE

log = logging.getLogger(__name__)

#: Versions stored in one SQL transaction when the committer is behind.
BATCH_VERSIONS = 64
#: Log entries of history kept for proofs when no newer checkpoint lets it go.
RETAIN_ENTRIES = 100_000
_IDLE_S = 1.0


class StateCommitter:
    """The tree's only writer for one store: reads the journal from the ledger's
    database, writes the tree's."""

    def __init__(
        self, ledger: Engine, tree: Engine, *, retain_entries: int = RETAIN_ENTRIES
    ) -> None:
        self._ledger = ledger
        self._engine = tree
        self._ledger_sql = statements(ledger)
        self._get_state = driver_sql(ledger, GET_STATE)
        self._sql = statements(tree)
        self._writer = TreeWriter(tree)
        self._retain = retain_entries
        with tree.connect() as conn:
            self.version = meta_int(conn, self._sql, TREE_VERSION_KEY)
            self.horizon = meta_int(conn, self._sql, HORIZON_KEY)
        self._checkpoints: list[int] = []

    def step(self) -> bool:
        """Store the next versions the journal holds; False if there were none."""
        with self._ledger.connect() as conn:
            versions = journal_versions(conn, self._ledger_sql, self.version, BATCH_VERSIONS)
            if not versions:
                return False
            writes = journal_writes(conn, self._ledger_sql, self.version, versions[-1])
        try:
            commits = [self._writer.stage(v, writes.get(v, {})) for v in versions]
            with self._engine.begin() as conn:
                self._writer.write(conn, commits)
            self._writer.stored()
        except BaseException:
            # The cache may hold pages the store never got.
            self._writer.forget()
            raise
        self.version = versions[-1]
        return True

    def catch_up(self) -> int:
        while self.step():
            pass
        self._prune()
        return self.version

    def _prune(self) -> None:
        horizon = max(self.horizon, self.version - self._retain)
        latest = self._latest_checkpoint()
        if latest is not None and (not self._checkpoints or self._checkpoints[-1] != latest):
            self._checkpoints = [*self._checkpoints[-1:], latest]
        if len(self._checkpoints) == 2:
            horizon = max(horizon, self._checkpoints[0])
        horizon = min(horizon, self.version)
        if horizon <= self.horizon:
            return
        with self._engine.begin() as conn:
            conn.exec_driver_sql(self._sql["prune_pages"], (horizon,))
            conn.exec_driver_sql(self._sql["set_meta"], (HORIZON_KEY, str(horizon)))
        with self._ledger.begin() as conn:
            conn.exec_driver_sql(self._ledger_sql["prune_journal"], (horizon,))
        self.horizon = horizon

    def _latest_checkpoint(self) -> int | None:
        with self._ledger.connect() as conn:
            row = conn.exec_driver_sql(self._get_state, (NETWORK_NS, LATEST_KEY)).first()
        if row is None:
            return None
        return int(json.loads(bytes(row[0]))["size"])


class CommitterThread:
    """A committer in a thread of the node's own process: for tests and small nodes."""

    def __init__(self, ledger: Engine, tree: Engine, *, name: str = "state-committer") -> None:
        self._committer = StateCommitter(ledger, tree)
        self._wake = threading.Event()
        self._stop = False
        self.failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop = True
        self._wake.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        try:
            while not self._stop:
                self._committer.catch_up()
                self._wake.wait(_IDLE_S)
                self._wake.clear()
        except BaseException as exc:
            self.failure = exc
            log.exception("the state committer stopped")


class CommitterProcess:
    """A committer in a process of its own, so that hashing runs on another core."""

    def __init__(self, ledger_url: str, tree_url: str, *, name: str = "state-committer") -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_serve, args=(ledger_url, tree_url, child), name=name, daemon=True
        )

    def start(self) -> None:
        self._process.start()

    def wake(self) -> None:
        try:
            self._conn.send_bytes(b"")
        except (BrokenPipeError, OSError):
            log.error("the state committer process is gone")

    @property
    def failure(self) -> BaseException | None:
        if self._process.is_alive() or self._process.exitcode in (None, 0):
            return None
        return RuntimeError(f"the state committer exited with code {self._process.exitcode}")

    def stop(self) -> None:
        with contextlib.suppress(BrokenPipeError, OSError):
            self._conn.send_bytes(b"stop")
        self._process.join(timeout=30)
        if self._process.is_alive():
            self._process.terminate()
        self._conn.close()


def _serve(ledger_url: str, tree_url: str, conn: Connection) -> None:
    engine = make_engine(ledger_url)
    tree = make_engine(tree_url)
    committer = StateCommitter(engine, tree)
    try:
        while True:
            committer.catch_up()
            if conn.poll(_IDLE_S):
                stop = conn.recv_bytes() == b"stop"
                while conn.poll(0):
                    stop = conn.recv_bytes() == b"stop" or stop
                if stop:
                    return
    except (EOFError, KeyboardInterrupt):
        return
    finally:
        engine.dispose()
        tree.dispose()
