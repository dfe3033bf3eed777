"""Every limit and tunable of the ledger, in one place."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LedgerLimits:
    """Bounds on untrusted input and batching. Defaults suit a 2-core node."""

    max_tx_bytes: int = 64 * 1024
    max_type_length: int = 64
    max_block_txs: int = 1000
    #: A block's body in bytes, kept under NATS's default max_payload (1 MiB): a block
    #: of 1,000 receipts would not be, and the server would refuse every one of them.
    max_block_bytes: int = 512 * 1024
    #: How long a submission waits for others to share its block. Small: it is
    #: latency added to every submission under light load.
    block_linger_s: float = 0.002
    #: Signature checks below this many are done in-process; above, in worker
    #: processes, because the hand-off costs more than a few checks.
    min_parallel_verify: int = 64
