"""``medledger network up|status|down``: three NATS servers and three node processes on
loopback; a transaction sent to one node is ordered and applied by all three."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import pytest

from medledger.crypto.keystore import decrypt_keystore
from medledger.ledger.contracts import identity
from medledger.ledger.tx import Transaction
from medledger.node.client import NodeClient
from medledger.node.network import consecutive_free_ports, health
from tests.ledger.consortium import key
from tests.node.network import patient_public

PASSPHRASE = "network test passphrase"
pytestmark = pytest.mark.nats


def medledger(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MEDLEDGER_PASSPHRASE": PASSPHRASE}
    command = [sys.executable, "-m", "medledger", *args]
    return subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=180, check=False
    )


def test_up_status_and_down_run_a_consortium_that_agrees(tmp_path: Path) -> None:
    directory = str(tmp_path / "net")
    base = consecutive_free_ports(3)
    up = medledger("network", "up", "--dir", directory, "--base-port", str(base),
                   "--scrypt-n", "1024", "--json")  # fmt: skip
    assert up.returncode == 0, up.stderr
    try:
        state = json.loads(up.stdout)
        assert len(state["nats"]) == 3 and set(state["nodes"]) == {
            "hospital-a",
            "hospital-b",
            "insurer",
        }
        urls = {name: node["url"] for name, node in state["nodes"].items()}

        again = medledger("network", "up", "--dir", directory, "--base-port", str(base))
        assert again.returncode == 2 and "already up" in again.stderr

        # The keystores `up` wrote open with the passphrase.
        document = json.loads((tmp_path / "net" / "keys" / "hospital-b.json").read_text())
        assert decrypt_keystore(document, PASSPHRASE).address
        patient = key("network:patient")

        async def register() -> None:
            async with NodeClient(urls["hospital-b"], patient) as client:
                nonce = (await client.get(f"/v1/ledger/nonces/{patient.address}"))["next_nonce"]
                payload = {"encryption_key": patient_public(patient)}
                tx = Transaction(2028, patient.address, nonce, identity.REGISTER_SUBJECT, payload)
                wire = json.loads(tx.sign(patient).encode())
                await client.post("/v1/ledger/transactions", {"transaction": wire})

        asyncio.run(register())
        deadline = time.monotonic() + 30
        # Every node applies it; the checkpoint the nodes then cosign on their schedule
        # only adds cosignatures, so the three may stand at 2 or a little more, alike.
        while not _agree_beyond(urls.values(), 2):
            assert time.monotonic() < deadline, "every node applies the transaction"
            time.sleep(0.1)

        status = medledger("network", "status", "--dir", directory, "--json")
        assert status.returncode == 0 and json.loads(status.stdout)["up"] is True
    finally:
        down = medledger("network", "down", "--dir", directory)
    assert down.returncode == 0 and "is down" in down.stdout
    assert all(health(url) is None for url in urls.values())
    status = medledger("network", "status", "--dir", directory, "--json")
    assert json.loads(status.stdout) == {"up": False}


def _agree_beyond(urls: Iterable[str], size: int) -> bool:
    """Whether every node answers and they all stand at one log size of at least ``size``."""
    seen = {(health(url) or {}).get("size", -1) for url in urls}
    return len(seen) == 1 and min(seen) >= size
