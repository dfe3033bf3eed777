"""Cosigning tree heads on the ledger itself.

Members submit their signed heads as transactions, so every node sees every
cosignature in the same order. A head is checked against the log before it
counts; a member-signed head that contradicts the log is kept as evidence of
misbehaviour rather than silently dropped.
"""

from __future__ import annotations

from medledger.ledger.checkpoints import SignedTreeHead, TreeHead
from medledger.ledger.contracts import fields as p
from medledger.ledger.contracts.base import Handler, StateView, TxContext, Write
from medledger.ledger.contracts.membership import active_members, network_config, require_member
from medledger.ledger.errors import CheckpointError, Conflict, InvalidPayload
from medledger.ledger.machine import NETWORK_NS

COSIGN = "checkpoint.cosign"
CHECKPOINT_NS = "checkpoint"
NS_PER_MS = 1_000_000
MISBEHAVIOUR_NS = "misbehaviour"
LATEST_KEY = "latest_checkpoint"


def checkpoint_key(size: int) -> str:
    # Zero-padded so that keys sort by size.
    return f"{size:020d}"


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
        p.integer(ctx.payload, "timestamp_ms"),
    )
    signed = SignedTreeHead(claimed, ctx.sender, p.hex_bytes(ctx.payload, "signature", 65))
    try:
        signed.verify()
    except CheckpointError as exc:
        raise InvalidPayload(f"signature: {exc}") from exc
    actual = TreeHead(
        ctx.network_id, size, ctx.log.root(size), ctx.log.timestamp(size) // NS_PER_MS
    )
    if claimed != actual:
        evidence = {
            "kind": "head_contradicts_log",
            "head": signed.to_json(),
            "log": actual.to_json(),
        }
        return [Write(MISBEHAVIOUR_NS, "0x" + ctx.tx_id.hex(), evidence)]
    key = checkpoint_key(size)
    entry = view.get(CHECKPOINT_NS, key) or {**actual.to_json(), "cosignatures": {}}
    if ctx.sender in entry["cosignatures"]:
        raise Conflict(f"{ctx.sender} already cosigned the head of size {size}")
    cosignatures = {**entry["cosignatures"], ctx.sender: "0x" + signed.signature.hex()}
    writes = [Write(CHECKPOINT_NS, key, {**entry, "cosignatures": cosignatures})]
    members = set(active_members(view))
    count = sum(1 for signer in cosignatures if signer in members)
    latest = view.get(NETWORK_NS, LATEST_KEY) or 0
    if count >= config["checkpoint_threshold"] and size > latest:
        writes.append(Write(NETWORK_NS, LATEST_KEY, size))
    return writes


HANDLERS: dict[str, Handler] = {COSIGN: cosign}
