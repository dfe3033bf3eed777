"""The records contract: a vault commits batches of record commitments to the ledger.

One ``records.commit`` transaction carries the RFC 6962 root over the commitments
of a batch of records, their count, the vault they are stored in and the batch's
sequence number in that vault. The ledger learns nothing else: not the patients,
not the record types, not even which leaves the root covers.

A vault belongs to the member institution that committed its first batch, and its
batches are numbered 0, 1, 2, ... without gaps. That makes the ledger the witness
of a vault's completeness: a batch deleted from the vault, or a vault rolled back,
shows as a numbered batch on the ledger that the vault cannot reproduce.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from medledger.ledger.contracts import fields as p
from medledger.ledger.contracts.base import ContractRegistry, Handler, StateView, TxContext, Write
from medledger.ledger.contracts.membership import require_member
from medledger.ledger.contracts.standard import ledger_contracts
from medledger.ledger.errors import Conflict, Unauthorized

COMMIT = "records.commit"
VAULT_NS = "records.vault"
BATCH_NS = "records.batch"
VAULT_ID_SIZE = 16
MAX_BATCH_RECORDS = 1_000_000


def batch_key(vault: str, seq: int) -> str:
    return f"{vault}/{seq}"


@dataclass(frozen=True)
class VaultState:
    """A vault as the state holds it: the institution it belongs to, how many batches it
    committed and how many records they hold."""

    institution: str
    batches: int
    records: int

    @classmethod
    def from_state(cls, entry: Mapping[str, Any]) -> VaultState:
        return cls(str(entry["institution"]), int(entry["batches"]), int(entry["records"]))

    def to_state(self) -> dict[str, Any]:
        return {"institution": self.institution, "batches": self.batches, "records": self.records}


def vault_state(view: StateView, vault: str) -> VaultState | None:
    """A vault's state, or None if it committed nothing."""
    entry = view.get(VAULT_NS, vault)
    return None if entry is None else VaultState.from_state(entry)


@dataclass(frozen=True)
class Batch:
    """A committed batch of a vault as the state holds it: its records' Merkle root, how
    many, the first record's number in the vault, and where and when the log took it."""

    root: bytes
    count: int
    first: int
    index: int
    timestamp_ns: int

    @classmethod
    def from_state(cls, entry: Mapping[str, Any]) -> Batch:
        root = bytes.fromhex(str(entry["root"])[2:])
        return cls(root, int(entry["count"]), int(entry["first"]), int(entry["index"]),
                   int(entry["timestamp_ns"]))  # fmt: skip

    def to_state(self) -> dict[str, Any]:
        return {"root": "0x" + self.root.hex(), "count": self.count, "first": self.first,
                "index": self.index, "timestamp_ns": self.timestamp_ns}  # fmt: skip


def batch_state(view: StateView, vault: str, seq: int) -> Batch | None:
    """One committed batch of a vault, or None if the log has not taken it."""
    entry = view.get(BATCH_NS, batch_key(vault, seq))
    return None if entry is None else Batch.from_state(entry)


def commit(ctx: TxContext, view: StateView) -> list[Write]:
    require_member(view, ctx.sender)
    vault = "0x" + p.hex_bytes(ctx.payload, "vault", VAULT_ID_SIZE).hex()
    seq = p.integer(ctx.payload, "batch")
    count = p.integer(ctx.payload, "count", minimum=1, maximum=MAX_BATCH_RECORDS)
    root = p.hex_bytes(ctx.payload, "root", 32)
    state = vault_state(view, vault) or VaultState(ctx.sender, 0, 0)
    if state.institution != ctx.sender:
        raise Unauthorized(f"vault {vault} belongs to {state.institution}")
    if seq != state.batches:
        raise Conflict(f"vault {vault} expects batch {state.batches}, got {seq}")
    batch = Batch(root, count, state.records, ctx.index, ctx.timestamp_ns)
    updated = VaultState(state.institution, seq + 1, state.records + count)
    return [Write(VAULT_NS, vault, updated.to_state()),
            Write(BATCH_NS, batch_key(vault, seq), batch.to_state())]  # fmt: skip


HANDLERS: dict[str, Handler] = {COMMIT: commit}


def records_contracts() -> ContractRegistry:
    """The ledger's own contracts plus the records contract."""
    registry = ledger_contracts()
    registry.register_all(HANDLERS)
    return registry
