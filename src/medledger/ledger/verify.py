"""Decoding and signature checks of raw transactions, in parallel worker processes.

Signature recovery is the costliest per-transaction step and needs no state, so
it runs outside the state machine on every core; small batches stay in-process
because handing them to a worker costs more than checking them.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

from medledger.ledger.config import LedgerLimits
from medledger.ledger.errors import MalformedTransaction, TransactionRejected
from medledger.ledger.tx import SignedTransaction

Checked = SignedTransaction | TransactionRejected


def decode_all(raws: Sequence[bytes], limits: LedgerLimits) -> list[Checked]:
    decoded: list[Checked] = []
    for raw in raws:
        try:
            decoded.append(SignedTransaction.decode(raw, limits))
        except MalformedTransaction as exc:
            decoded.append(exc)
    return decoded


def _check_in_worker(raws: Sequence[bytes], limits: LedgerLimits) -> list[bytes | None]:
    """Runs in a worker: each transaction's digest if its signature checks out, else None."""
    results: list[bytes | None] = []
    for item in decode_all(raws, limits):
        checked = item if isinstance(item, TransactionRejected) else _verified(item)
        results.append(None if isinstance(checked, TransactionRejected) else checked.tx_id)
    return results


class SignatureVerifier:
    """Checks signatures of many transactions at once, across processes."""

    def __init__(self, limits: LedgerLimits, workers: int | None = None) -> None:
        self._limits = limits
        self._workers = workers if workers is not None else (os.cpu_count() or 1)
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=self._workers)
        return self._pool

    async def check(
        self, items: Sequence[SignedTransaction], raws: Sequence[bytes]
    ) -> list[Checked]:
        """Return each item, or the :class:`BadSignature` that rejects it."""
        if len(items) < self._limits.min_parallel_verify or self._workers < 2:
            return [_verified(item) for item in items]
        loop = asyncio.get_running_loop()
        chunk = -(-len(raws) // self._workers)
        futures = [
            loop.run_in_executor(
                self._executor(), _check_in_worker, raws[i : i + chunk], self._limits
            )
            for i in range(0, len(raws), chunk)
        ]
        digests = [d for part in await asyncio.gather(*futures) for d in part]
        results: list[Checked] = []
        for item, digest in zip(items, digests, strict=True):
            if digest is None:
                # Workers return no exceptions; find out here exactly what is wrong.
                results.append(_verified(item))
            else:
                item.tx.adopt_digest(digest)
                results.append(item)
        return results

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None


def _verified(item: SignedTransaction) -> Checked:
    try:
        item.verify()
    except TransactionRejected as exc:
        return exc
    return item
