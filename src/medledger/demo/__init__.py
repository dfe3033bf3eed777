"""``make demo``: the consortium ledger's story, told step by step, every step checked.

Three institutions found a network on the embedded defaults, register their
staff, a patient joins under a pseudonym, an insurer is admitted by 2 of 3
votes, forged and replayed transactions bounce, records are written and read; a
doctor at hospital B reads a lab result once the patient and the attending
doctor approved (2 of 3), through custodians that log a receipt first; the
patient's audit shows it; a revoked grant releases nothing; a break-glass read
is flagged; a tampered record is caught; the insurer learns "HbA1c below 6.5 %"
from a zero-knowledge proof; and the log is checkpointed, proven and compared
across nodes. Exits non-zero if any check fails.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from rich.console import Console

from medledger.demo.story import Story


def run_demo(console: Console) -> None:
    console.print("[bold]medledger[/bold]: a consortium ledger for personal health data\n")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="medledger-demo-") as tmp:
        asyncio.run(Story(console, Path(tmp)).run())
    console.print(f"\n[green]All checks passed[/green] in {time.perf_counter() - started:.1f} s.")
