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


def _signature_errors(raws: Sequence[bytes], limits: LedgerLimits) -> list[str | None]:
    """Runs in a worker: the error text of each transaction, or None if it checks out."""
    results: list[str | None] = []
    for item in decode_all(raws, limits):
        if isinstance(item, TransactionRejected):
            results.append(str(item))
            continue
        try:
            item.verify()
        except TransactionRejected as exc:
            results.append(str(exc))
        else:
            results.append(None)
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

    async def check(self, items: Sequence[SignedTransaction], raws: Sequence[bytes]) -> list[Checked]:
        """Return each item, or the :class:`BadSignature` that rejects it."""
        if len(items) < self._limits.min_parallel_verify or self._workers < 2:
            return [_verified(item) for item in items]
        loop = asyncio.get_running_loop()
        chunk = -(-len(raws) // self._workers)
        futures = [
            loop.run_in_executor(self._executor(), _signature_errors, raws[i : i + chunk], self._limits)
            for i in range(0, len(raws), chunk)
        ]
        errors = [e for part in await asyncio.gather(*futures) for e in part]
        results: list[Checked] = []
        for item, error in zip(items, errors, strict=True):
            if error is None:
                results.append(item)
            else:
                # Re-check in-process: the verdict must come from this process's own code path.
                results.append(_verified(item))
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
