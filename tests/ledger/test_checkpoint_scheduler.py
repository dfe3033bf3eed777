"""When a member proposes a checkpoint: entries other than cosignatures wait beyond the
latest one, enough of them or long enough, and it is the member's turn or the member
whose turn it was stayed silent."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from medledger.crypto.keys import Address, PrivateKey
from medledger.ledger.contracts import checkpoint as checkpoint_contract
from medledger.ledger.heads import CheckpointScheduler, HeadsMixin
from medledger.ledger.machine import NETWORK_NS
from tests.ledger.consortium import key

ME = key("scheduler-me")
OTHERS = [key("scheduler-b"), key("scheduler-c")]
INTERVAL_S = 10.0


@dataclass
class FakeStore:
    latest: int | None = None
    entries_besides_cosigns: bool = True

    def get(self, ns: str, entry: str) -> Any | None:
        assert (ns, entry) == (NETWORK_NS, checkpoint_contract.LATEST_KEY)
        return None if self.latest is None else {"size": self.latest}

    def has_entries_besides(self, after_size: int, tx_type: str) -> bool:
        assert tx_type == checkpoint_contract.COSIGN
        return self.entries_besides_cosigns


@dataclass
class FakeNode:
    key: PrivateKey | None = ME
    size: int = 5
    store: FakeStore = field(default_factory=FakeStore)
    current: list[Address] = field(default_factory=lambda: [ME.address])

    def members(self) -> list[Address]:
        return self.current

    def is_member(self) -> bool:
        return HeadsMixin.is_member(self)  # type: ignore[arg-type]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def scheduler(
    node: FakeNode, clock: Clock, every_entries: int = 100, wall: float = 0.0
) -> CheckpointScheduler:
    return CheckpointScheduler(node, interval_s=INTERVAL_S, every_entries=every_entries,  # type: ignore[arg-type]
                               clock=clock, wall=lambda: wall)  # fmt: skip


def test_a_lone_member_proposes_once_the_interval_passed() -> None:
    clock, node = Clock(), FakeNode()
    due = scheduler(node, clock)
    assert not due.due()
    clock.now += INTERVAL_S
    assert due.due()


def test_enough_waiting_entries_need_no_wait() -> None:
    clock, node = Clock(), FakeNode(size=100)
    assert scheduler(node, clock, every_entries=100).due()
    assert not scheduler(FakeNode(size=99), clock, every_entries=100).due()


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"store": FakeStore(latest=500)}, id="all covered"),
        pytest.param({"store": FakeStore(entries_besides_cosigns=False)}, id="only cosignatures"),
        pytest.param({"key": None}, id="no key"),
        pytest.param({"current": [OTHERS[0].address]}, id="voted out"),
    ],
)
def test_nothing_is_proposed(change: dict[str, Any]) -> None:
    clock, node = Clock(), FakeNode(size=500, **change)
    due = scheduler(node, clock)
    clock.now += 10 * INTERVAL_S
    assert not due.due()


@pytest.mark.parametrize("mine", [True, False])
def test_members_take_turns_and_one_out_of_turn_steps_in_after_three_intervals(
    mine: bool,
) -> None:
    members = sorted([ME.address, *(k.address for k in OTHERS)])
    clock, node = Clock(), FakeNode(current=members)
    slot = members.index(ME.address) if mine else (members.index(ME.address) + 1) % 3
    due = scheduler(node, clock, wall=slot * INTERVAL_S)
    clock.now += INTERVAL_S
    assert due.due() is mine
    clock.now += INTERVAL_S
    assert due.due() is mine
    clock.now += INTERVAL_S
    assert due.due()


def test_a_new_checkpoint_restarts_the_wait() -> None:
    clock, node = Clock(), FakeNode(size=8)
    due = scheduler(node, clock)
    clock.now += INTERVAL_S - 1
    node.store.latest = 5
    assert not due.due()
    clock.now += INTERVAL_S - 1
    assert not due.due()
    clock.now += 1
    assert due.due()
