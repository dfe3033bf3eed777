"""Cosigning tree heads on the ledger itself.

Members submit their signed heads as transactions, so every node sees every
cosignature in the same order. A head's log root and timestamp are checked
against the log before it counts; a member-signed head that contradicts the log
is kept as evidence of misbehaviour rather than silently dropped.

The head's state root is what the signer's own state committer computed for that
size (ledger/committer.py); the contract cannot recompute it in the block, so it
keeps cosignatures per (size, state root). Honest members only sign roots they
computed themselves, so a root reaches the threshold only if that many members
agree on it; a second root signed at one size is recorded as evidence that the
state diverged somewhere.
"""

from __future__ import annotations

from typing import Any

from medledger.ledger.checkpoints import SignedTreeHead, TreeHead
from medledger.ledger.contracts import fields as p
from medledger.ledger.contracts.base import Handler, StateView, TxContext, Write
from medledger.ledger.contracts.membership import active_members, network_config, require_member
from medledger.ledger.errors import CheckpointError, Conflict, InvalidPayload
from medledger.ledger.machine import NETWORK_NS
from medledger.ledger.timestamps import NS_PER_MS

COSIGN = "checkpoint.cosign"
CHECKPOINT_NS = "checkpoint"
#: The state roots cosigned at each size, in the order they first appeared.
ROOTS_NS = "checkpoint.roots"
MISBEHAVIOUR_NS = "misbehaviour"
#: ``{"size", "state_root"}`` of the latest checkpoint that reached the threshold.
LATEST_KEY = "latest_checkpoint"


def size_key(size: int) -> str:
    # Zero-padded so that keys sort by size.
    return f"{size:020d}"


def checkpoint_key(size: int, state_root: str) -> str:
    return f"{size_key(size)}/{state_root}"


def roots_at(view: StateView, size: int) -> list[str]:
    """The state roots (0x hex) cosigned at ``size``, in the order they first appeared."""
    return list(view.get(ROOTS_NS, size_key(size)) or [])


def cosigned_at(view: StateView, size: int, state_root: str) -> Any | None:
    """The head cosigned at ``size`` with ``state_root`` (0x hex) and its cosignatures."""
    return view.get(CHECKPOINT_NS, checkpoint_key(size, state_root))


def latest_cosigned(view: StateView) -> Any | None:
    """The latest head that reached the threshold, with its cosignatures."""
    latest = view.get(NETWORK_NS, LATEST_KEY)
    return None if latest is None else cosigned_at(view, latest["size"], latest["state_root"])


def cosign(ctx: TxContext, view: StateView) -> list[Write]:
    require_member(view, ctx.sender)
    config = network_config(view)
    size = p.integer(ctx.payload, "size", minimum=1)
    if size > ctx.log.committed_size:
        raise InvalidPayload(
            f"size: {size} is beyond the committed log of {ctx.log.committed_size}"
        )
    claimed = TreeHead(
        ctx.network_id,
        size,
        p.hex_bytes(ctx.payload, "root", 32),
        p.hex_bytes(ctx.payload, "state_root", 32),
        p.integer(ctx.payload, "timestamp_ms"),
    )
    signed = SignedTreeHead(claimed, ctx.sender, p.hex_bytes(ctx.payload, "signature", 65))
    try:
        signed.verify()
    except CheckpointError as exc:
        raise InvalidPayload(f"signature: {exc}") from exc
    log_root, log_time = ctx.log.root(size), ctx.log.timestamp(size) // NS_PER_MS
    if (claimed.root, claimed.timestamp_ms) != (log_root, log_time):
        actual = TreeHead(ctx.network_id, size, log_root, claimed.state_root, log_time)
        return [_evidence(ctx, "head_contradicts_log", signed, log=actual.to_json())]
    state_root = "0x" + claimed.state_root.hex()
    entry = cosigned_at(view, size, state_root) or {**claimed.to_json(), "cosignatures": {}}
    if ctx.sender in entry["cosignatures"]:
        raise Conflict(f"{ctx.sender} already cosigned the head of size {size}")
    cosignatures = {**entry["cosignatures"], ctx.sender: "0x" + signed.signature.hex()}
    key = checkpoint_key(size, state_root)
    writes = [Write(CHECKPOINT_NS, key, {**entry, "cosignatures": cosignatures})]
    roots = roots_at(view, size)
    if state_root not in roots:
        if roots:
            writes.append(_evidence(ctx, "state_roots_differ", signed, roots=roots))
        writes.append(Write(ROOTS_NS, size_key(size), [*roots, state_root]))
    members = set(active_members(view))
    count = sum(1 for signer in cosignatures if signer in members)
    latest = view.get(NETWORK_NS, LATEST_KEY)
    if count >= config["checkpoint_threshold"] and (latest is None or size > latest["size"]):
        writes.append(Write(NETWORK_NS, LATEST_KEY, {"size": size, "state_root": state_root}))
    return writes


def _evidence(ctx: TxContext, kind: str, signed: SignedTreeHead, **details: Any) -> Write:
    evidence = {"kind": kind, "head": signed.to_json(), **details}
    return Write(MISBEHAVIOUR_NS, "0x" + ctx.tx_id.hex(), evidence)


HANDLERS: dict[str, Handler] = {COSIGN: cosign}
