"""How soon the command line answers: ``medledger --help`` and a simple read command.

Each is a fresh process, as a person at a shell starts it, timed wall-clock; the
floor is a bare ``python -c pass`` of the same interpreter in the same run, so the
figures can be compared across machines. The read command is ``key show``: it opens
a keystore file but needs no passphrase and no node.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from medledger.crypto.keys import PrivateKey
from medledger.crypto.keystore import encrypt_keystore

TARGET_MS = 500.0


def _median_ms(command: Sequence[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, timeout=60)
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 1)


def run(*, runs: int = 9, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    say = progress or (lambda _: None)
    medledger = [sys.executable, "-m", "medledger"]
    with tempfile.TemporaryDirectory() as tmp:
        keystore = Path(tmp) / "key.json"
        keystore.write_text(
            json.dumps(encrypt_keystore(PrivateKey.generate(), "bench", scrypt_n=2**10))
        )
        # One untimed run of each compiles what is new; a person's second command finds it so.
        subprocess.run([*medledger, "--help"], check=True, capture_output=True, timeout=60)
        say(f"timing {runs} runs of each command")
        floor = _median_ms([sys.executable, "-c", "pass"], runs)
        help_ms = _median_ms([*medledger, "--help"], runs)
        read_ms = _median_ms([*medledger, "key", "show", str(keystore)], runs)
    start = max(help_ms, read_ms)
    return {
        "bench": "cli",
        "runs": runs,
        "help_ms": help_ms,
        "read_ms": read_ms,
        "cli_start_ms": start,
        "floor_python_ms": floor,
        "ratio_to_floor": round(start / floor, 1) if floor else None,
        "target_ms": TARGET_MS,
        "meets_target": start < TARGET_MS,
    }
