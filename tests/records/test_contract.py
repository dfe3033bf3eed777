"""The records.commit contract, executed block by block: who may commit what, in which order."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from medledger.records.contract import (
    COMMIT,
    VaultState,
    batch_state,
    records_contracts,
    vault_state,
)
from tests.ledger.consortium import InProcessLedger, key, make_consortium

VAULT = "0x" + "ab" * 16
OTHER_VAULT = "0x" + "cd" * 16
ROOT = "0x" + "11" * 32


class Ledger(InProcessLedger):
    def __init__(self, tmp_path: Path) -> None:
        super().__init__(str(tmp_path / "state.db"), records_contracts(), make_consortium())

    def commit(self, member: int, **payload: Any) -> str | None:
        body = {"vault": VAULT, "batch": 0, "count": 10, "root": ROOT, **payload}
        return self.submit(self.consortium.keys[member], COMMIT, body)[0]


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    ledger = Ledger(tmp_path)
    yield ledger
    ledger.store.close()


def _accept(ledger: Ledger, member: int = 0, **payload: Any) -> None:
    assert ledger.commit(member, **payload) is None


def test_a_member_commits_numbered_batches_of_its_vault(ledger: Ledger) -> None:
    _accept(ledger)
    _accept(ledger, batch=1, count=5, root="0x" + "22" * 32)
    vault = vault_state(ledger.store, VAULT)
    assert vault == VaultState(ledger.consortium.keys[0].address, batches=2, records=15)
    second = batch_state(ledger.store, VAULT, 1)
    assert second is not None
    assert (second.root, second.count, second.first, second.index) == (b"\x22" * 32, 5, 10, 2)


def test_a_batch_out_of_order_is_a_conflict(ledger: Ledger) -> None:
    assert ledger.commit(0, batch=1) == "conflict"
    _accept(ledger)
    assert ledger.commit(0, batch=0) == "conflict"
    assert ledger.commit(0, batch=2) == "conflict"


def test_another_member_cannot_commit_to_a_vault_it_does_not_own(ledger: Ledger) -> None:
    _accept(ledger)
    assert ledger.commit(1, batch=1) == "unauthorized"
    _accept(ledger, member=1, vault=OTHER_VAULT)


def test_a_non_member_cannot_commit(ledger: Ledger) -> None:
    outsider = key("outsider")
    payload = {"vault": VAULT, "batch": 0, "count": 1, "root": ROOT}
    tx = ledger.consortium.tx(outsider, COMMIT, payload)
    assert ledger.run(tx) == ["unauthorized"]


@pytest.mark.parametrize(
    "payload",
    [
        {"vault": "0xabcd"},
        {"root": "0x" + "11" * 31},
        {"root": "11" * 32},
        {"count": 0},
        {"count": "10"},
        {"batch": -1},
    ],
)
def test_a_malformed_commit_is_refused(ledger: Ledger, payload: dict[str, Any]) -> None:
    assert ledger.commit(0, **payload) == "invalid_payload"
    assert vault_state(ledger.store, VAULT) is None
