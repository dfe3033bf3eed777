"""Every limit and tunable of the ledger, in one place."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LedgerLimits:
    """Bounds on untrusted input and batching. Defaults suit a 2-core node."""

    max_tx_bytes: int = 64 * 1024
    max_type_length: int = 64
    max_block_txs: int = 1000
    #: How long a submission waits for others to share its block. Small: it is
    #: latency added to every submission under light load.
    block_linger_s: float = 0.002
    #: Signature checks below this many are done in-process; above, in worker
    #: processes, because the hand-off costs more than a few checks.
    min_parallel_verify: int = 64
