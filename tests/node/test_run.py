"""``medledger node run`` as a process: configuration by file and environment, keystores,
the API with its OpenAPI document and metrics, JSON logs, a clean stop."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from medledger.crypto.keystore import encrypt_keystore
from medledger.ledger.genesis import save_genesis
from tests.ledger.consortium import key
from tests.node.network import solo_genesis

PASSPHRASE = "correct horse battery staple"
MEMBER, CUSTODIAN = key("run:member"), key("run:custodian")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _home(tmp_path: Path) -> Path:
    save_genesis(solo_genesis(77, MEMBER, CUSTODIAN), tmp_path / "genesis.tx")
    for name, k in (("member", MEMBER), ("custodian", CUSTODIAN)):
        document = encrypt_keystore(k, PASSPHRASE, scrypt_n=1024)
        (tmp_path / f"{name}.json").write_text(json.dumps(document))
    config = tmp_path / "node.toml"
    config.write_text(
        f'name = "solo"\ndata_dir = "{tmp_path / "data"}"\ngenesis = "{tmp_path / "genesis.tx"}"\n'
        f'member_key = "{tmp_path / "member.json"}"\n'
        f'custodian_key = "{tmp_path / "custodian.json"}"\nport = 1\n'
    )
    return config


def _medledger(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "medledger", *args],
        env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_a_node_serves_its_api_openapi_and_metrics_and_logs_json(tmp_path: Path) -> None:
    port = _free_port()
    config = _home(tmp_path)
    env = {"MEDLEDGER_PASSPHRASE": PASSPHRASE, "MEDLEDGER_NODE_PORT": str(port)}
    process = _medledger("node", "run", "--config", str(config), env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.communicate()[1]
            try:
                health = httpx.get(f"{base}/v1/health")
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the node did not come up"
                time.sleep(0.1)
        assert health.json()["name"] == "solo" and health.json()["size"] >= 1
        openapi = httpx.get(f"{base}/openapi.json").json()
        assert {"/v1/records", "/v1/custodian/release", "/v1/audit/{patient}"} <= set(
            openapi["paths"]
        )
        assert httpx.get(f"{base}/v1/ledger/status").status_code == 401
        metrics = httpx.get(f"{base}/metrics").text
        assert 'route="/v1/ledger/status",status="401"' in metrics
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    requests = [line for line in lines if line["logger"] == "medledger.node.http"]
    assert any(
        line.get("route") == "/v1/ledger/status" and line["status"] == 401 for line in requests
    )
    assert PASSPHRASE not in stderr


def test_a_bad_configuration_is_one_line_and_exit_code_2(tmp_path: Path) -> None:
    config = _home(tmp_path)
    config.write_text(config.read_text().replace('name = "solo"', 'name = "Not A Name"'))
    process = _medledger("node", "run", "--config", str(config), env={})
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 2
    assert "node configuration: name" in stderr and len(stderr.strip().splitlines()) == 1
