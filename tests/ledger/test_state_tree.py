"""The store-backed state tree: a committer taking the journal of real blocks, proofs at
the current and older sizes, pruning, tampered pages and restarts."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import pytest
from sqlalchemy import Engine, text

from medledger.crypto import smt
from medledger.crypto.errors import InvalidProof
from medledger.ledger.committer import StateCommitter
from medledger.ledger.config import LedgerLimits
from medledger.ledger.contracts.base import StateView, TxContext, Write
from medledger.ledger.contracts.standard import ledger_contracts
from medledger.ledger.database import make_engine
from medledger.ledger.executor import BlockExecutor
from medledger.ledger.machine import StateMachine
from medledger.ledger.ordering.base import Block
from medledger.ledger.state_proofs import StateProof
from medledger.ledger.state_tree import (
    TreeWriter,
    decode_page,
    state_path,
    tree_metadata,
    value_hash,
)
from medledger.ledger.store import LedgerStore, encode_value
from medledger.ledger.verify import decode_all
from tests.crypto.test_smt import naive_root
from tests.ledger.consortium import NETWORK_ID, make_consortium

NS = "kv"
KV = "test.kv"


def kv(ctx: TxContext, view: StateView) -> list[Write]:
    """A contract that sets and deletes what its payload says, so blocks can overwrite and
    delete entries at will."""
    writes = [Write(NS, k, v) for k, v in ctx.payload.get("set", {}).items()]
    return writes + [Write(NS, k, None) for k in ctx.payload.get("delete", [])]


class Chain:
    """One store driven block by block by a real executor, remembering the ``kv`` entries
    and the scanned state root at every log size."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.consortium = make_consortium()
        self.seq = 0
        self.model: dict[str, Any] = {}
        self.history: dict[int, dict[str, Any]] = {}
        self.scanned: dict[int, bytes] = {}
        self.open()
        self.apply(self.consortium.genesis.encode())

    def open(self) -> None:
        registry = ledger_contracts()
        registry.register(KV, kv)
        self.store = LedgerStore.open(self.url)
        machine = StateMachine(registry, NETWORK_ID, self.consortium.genesis.tx_id)
        self.executor = BlockExecutor(self.store, machine)

    def reopen(self) -> None:
        self.store.close()
        self.open()

    def apply(self, raw: bytes) -> int:
        self.seq += 1
        outcomes = self.executor.apply(
            Block(self.seq, self.seq * 1000, (raw,)), decode_all((raw,), LedgerLimits())
        )
        assert [o.code for o in outcomes] == [None]
        size = self.executor.size
        self.history[size] = dict(self.model)
        self.scanned[size] = self.store.scanned_state_root()
        return size

    def write(self, sets: Mapping[str, Any] | None = None, deletes: Iterable[str] = ()) -> int:
        updates, removed = dict(sets or {}), list(deletes)
        payload = {"set": updates, "delete": removed}
        tx = self.consortium.tx(self.consortium.keys[1], KV, payload)
        self.model.update(updates)
        for key in removed:
            self.model.pop(key, None)
        return self.apply(tx.encode())

    def committer(self, **kwargs: Any) -> StateCommitter:
        return StateCommitter(self.store.engine, self.store.tree_engine, **kwargs)

    def prove(self, key: str, size: int) -> StateProof:
        current = self.store.get(NS, key)
        return self.store.tree.prove(
            NS, key, size, None if current is None else encode_value(current)
        )

    def check_proofs(self, sizes: Iterable[int], keys: Iterable[str]) -> None:
        """Every key at every size proves what it held then, against that size's root."""
        for size in sizes:
            root = self.store.tree.root_at(size)
            assert root == self.scanned[size]
            for key in keys:
                proof = self.prove(key, size)
                held = self.history[size].get(key)
                assert proof.value == (None if held is None else encode_value(held)), (key, size)
                assert (proof.size, proof.root) == (size, root)
                proof.verify(root)


@pytest.fixture
def chain(state_url: str) -> Iterator[Chain]:
    made = Chain(state_url)
    yield made
    made.store.close()


def fill(chain: Chain) -> list[int]:
    """Four blocks over enough entries for several levels of pages: entries set, then
    overwritten, deleted and set again. Returns the sizes after each."""
    first: dict[str, Any] = {f"filler-{i}": i for i in range(200)}
    first.update({"k1": "one", "k2": "two", "k3": {"three": [3]}})
    return [
        chain.write(first),
        chain.write({"k1": "one bis", "k4": "four", "filler-5": "changed"}, ["k2"]),
        chain.write({"k1": "one ter", "k2": "two again"}, ["k3", "filler-7"]),
        chain.write({"filler-8": None, "filler-9": [9, 9]}, ["k1"]),
    ]


KEYS = ["k1", "k2", "k3", "k4", "filler-0", "filler-5", "filler-7", "filler-8", "never"]


def naive_state_root(store: LedgerStore) -> bytes:
    return naive_root({state_path(ns, k): value_hash(v) for ns, k, v in store.state_entries()})


def tree_rows(engine: Engine, table: str) -> list[tuple[Any, bytes]]:
    key = "page" if table == "ledger_state_pages" else "id"
    with engine.connect() as conn:
        rows = conn.execute(text(f"SELECT {key}, nodes FROM {table}")).all()
    return [(row[0], bytes(row[1])) for row in rows]


def set_nodes(engine: Engine, table: str, key: Any, nodes: bytes) -> None:
    column = "page" if table == "ledger_state_pages" else "id"
    with engine.begin() as conn:
        conn.execute(
            text(f"UPDATE {table} SET nodes = :nodes WHERE {column} = :key"),
            {"nodes": nodes, "key": key},
        )


# -- roots ------------------------------------------------------------------------------


def test_the_committed_root_is_the_root_of_the_state_table(chain: Chain) -> None:
    sizes = fill(chain)
    committer = chain.committer()
    assert committer.catch_up() == sizes[-1]
    assert chain.store.tree.latest() == (sizes[-1], chain.store.scanned_state_root())
    assert chain.store.scanned_state_root() == naive_state_root(chain.store)
    # One catch-up took every version, and each kept its own root.
    for size, scanned in chain.scanned.items():
        assert chain.store.tree.root_at(size) == scanned
    assert len(set(chain.scanned.values())) == len(chain.scanned)
    assert not committer.step()


def test_catching_up_block_by_block_or_all_at_once_agrees(state_url: str) -> None:
    rnd = random.Random(7)
    chain = Chain(state_url)
    try:
        keys = [f"key-{i}" for i in range(60)]
        committer = chain.committer()
        for _ in range(15):
            sets = {k: rnd.choice([1, "x", [k], {"v": rnd.randrange(3)}]) for k in
                    rnd.sample(keys, rnd.randint(0, 12))}  # fmt: skip
            deletes = [k for k in rnd.sample(keys, rnd.randint(0, 6)) if k not in sets]
            chain.write(sets, deletes)
            if rnd.random() < 0.4:
                committer.catch_up()
        committer.catch_up()
        assert chain.store.scanned_state_root() == naive_state_root(chain.store)
        chain.check_proofs(chain.scanned, [*keys, "never"])
    finally:
        chain.store.close()


# -- proofs -----------------------------------------------------------------------------


def test_proofs_at_the_current_and_older_sizes(chain: Chain) -> None:
    sizes = fill(chain)
    chain.committer().catch_up()
    chain.check_proofs(sizes, KEYS)
    first, latest = sizes[0], sizes[-1]
    old = chain.prove("k1", first)
    assert old.value == encode_value("one")
    assert chain.prove("k1", latest).value is None
    assert chain.prove("k3", first).value == encode_value({"three": [3]})
    assert chain.prove("k4", first).value is None
    # A value proven at one size is not the entry at another.
    with pytest.raises(InvalidProof):
        old.verify(chain.store.tree.root_at(latest))  # type: ignore[arg-type]
    root = chain.store.tree.root_at(first)
    assert root is not None
    with pytest.raises(InvalidProof):
        dataclasses.replace(old, value=encode_value("one bis")).verify(root)
    with pytest.raises(InvalidProof):
        dataclasses.replace(old, value=None).verify(root)
    with pytest.raises(InvalidProof, match="another entry"):
        dataclasses.replace(old, key="k2").verify(root)
    with pytest.raises(LookupError):
        chain.prove("k1", latest + 100)


def test_a_pruned_size_can_no_longer_be_proven(chain: Chain) -> None:
    sizes = fill(chain)
    committer = chain.committer(retain_entries=2)
    committer.catch_up()
    horizon = sizes[-1] - 2
    assert committer.horizon == chain.store.tree.horizon() == horizon
    for size in range(1, horizon):
        with pytest.raises(LookupError):
            chain.prove("k1", size)
    # What is still kept proves exactly as before.
    chain.check_proofs(range(horizon, sizes[-1] + 1), KEYS)
    with chain.store.engine.connect() as conn:
        kept = conn.execute(text("SELECT min(version) FROM ledger_state_journal")).scalar_one()
    assert kept > horizon


# -- a node operator editing the tree -------------------------------------------------------


@pytest.mark.parametrize("table", ["ledger_state_pages", "ledger_state_page_undo"])
@pytest.mark.parametrize("offset", [1, 1 + 32, 1 + 40, 1 + 96])
def test_an_edited_page_is_refused_rather_than_served(
    chain: Chain, table: str, offset: int
) -> None:
    sizes = fill(chain)
    chain.committer().catch_up()
    rows = tree_rows(chain.store.tree_engine, table)
    assert rows
    for key, nodes in rows:
        edited = bytearray(nodes)
        edited[offset] ^= 0x01
        set_nodes(chain.store.tree_engine, table, key, bytes(edited))
    # Current pages serve the latest size; older sizes read what later ones overwrote.
    size = sizes[-1] if table == "ledger_state_pages" else sizes[0]
    with pytest.raises(ValueError, match="does not match its hash"):
        chain.prove("k2", size)


def test_a_rehashed_forgery_yields_a_proof_that_fails(chain: Chain) -> None:
    sizes = fill(chain)
    chain.committer().catch_up()
    path, forged = state_path(NS, "k2"), encode_value("forged")
    entry = 1 + smt.NODE_SIZE
    for key, nodes in tree_rows(chain.store.tree_engine, "ledger_state_pages"):
        for start in range(0, len(nodes), entry):
            node = nodes[start + 1 : start + entry]
            if node[32] == 0 and node[33:65] == path:
                node = smt.leaf(path, value_hash(forged))
                edited = nodes[: start + 1] + node + nodes[start + entry :]
                set_nodes(chain.store.tree_engine, "ledger_state_pages", key, edited)
                break
        else:
            continue
        break
    else:
        pytest.fail("no leaf of k2 in the pages")
    proof = chain.store.tree.prove(NS, "k2", sizes[-1], forged)
    assert proof.value == forged
    with pytest.raises(InvalidProof):
        proof.verify(chain.scanned[sizes[-1]])


# -- restarts ---------------------------------------------------------------------------------


def test_the_committer_resumes_from_the_version_it_stored(chain: Chain) -> None:
    first = chain.write({f"filler-{i}": i for i in range(100)})
    second = chain.write({"k1": "one", "filler-3": "x"}, ["filler-4"])
    assert chain.committer().catch_up() == second
    chain.reopen()
    third = chain.write({"k1": "two"}, ["filler-5"])
    fourth = chain.write({"k2": "new"}, ["k1"])
    resumed = chain.committer()
    assert resumed.version == second
    assert resumed.catch_up() == fourth
    assert chain.store.tree.latest() == (fourth, chain.store.scanned_state_root())
    chain.check_proofs([first, second, third, fourth], ["k1", "k2", "filler-3", "filler-5"])


def _flip(path: bytes, bit: int) -> bytes:
    flipped = bytearray(path)
    flipped[bit // 8] ^= 0x80 >> (bit % 8)
    return bytes(flipped)


def test_pages_staged_and_not_yet_stored_survive_a_full_cache(tmp_path: Any) -> None:
    """A committer behind the log stages many versions before it stores them; a cache
    that fills meanwhile must not drop what exists nowhere else."""
    engine = make_engine(str(tmp_path / "tree.db"))
    tree_metadata.create_all(engine)
    writer = TreeWriter(engine, cache_pages=1)
    path, value = bytes(32), value_hash(b"v")
    writer.stage(1, {path: value, _flip(path, 20): value})
    second = writer.stage(2, {_flip(path, 21): value})
    entries = [(path, value), (_flip(path, 20), value), (_flip(path, 21), value)]
    assert second.root == smt.root_of(entries) == naive_root(dict(entries))


def test_a_page_naming_a_slot_it_has_not_is_refused() -> None:
    with pytest.raises(ValueError, match="names a slot"):
        decode_page(bytes((15,)) + smt.leaf(bytes(32), bytes(32)))


def test_a_leaf_at_the_deepest_level_is_stored(tmp_path: Any) -> None:
    engine = make_engine(str(tmp_path / "tree.db"))
    tree_metadata.create_all(engine)
    writer = TreeWriter(engine)
    one, two = bytes(32), bytes(31) + b"\x01"
    commit = writer.stage(1, {one: value_hash(b"a"), two: value_hash(b"b")})
    with engine.begin() as conn:
        writer.write(conn, [commit])
    assert commit.root == naive_root({one: value_hash(b"a"), two: value_hash(b"b")})
