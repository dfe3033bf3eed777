"""Every NATS server the ledger orders through must sync each write to disk: the
servers this project starts do, and a node refuses to start on any that does not."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from medledger.errors import TransportError, UsageError
from medledger.ledger.genesis import save_genesis
from medledger.ledger.ordering.nats_durability import NatsNotDurable, check_sync_always
from medledger.ledger.ordering.nats_servers import LocalNatsCluster, nats_server_binary
from medledger.node.config import NodeSettings
from medledger.node.home import founding_genesis
from medledger.node.service import NodeKeys, NodeService
from tests.node.network import custodian_key, member_key

# Imported for pytest, which finds the fixture by its name "nats_cluster".
from .nats_fixtures import nats_cluster_fixture  # noqa: F401

pytestmark = pytest.mark.nats

NETWORK_ID = 4242
NAME = "hospital-a"


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@contextmanager
def standalone_server(directory: Path, *, sync_always: bool) -> Iterator[tuple[str, str]]:
    """One JetStream server on 127.0.0.1, configured here and not by LocalNatsCluster;
    yields its client and monitoring URLs."""
    client_port, http_port = free_ports(2)
    jetstream = {"store_dir": str(directory / "jetstream")}
    if sync_always:
        jetstream["sync_interval"] = "always"
    config = {
        "server_name": directory.name,
        "host": "127.0.0.1",
        "port": client_port,
        "http": f"127.0.0.1:{http_port}",
        "jetstream": jetstream,
    }
    directory.mkdir(parents=True)
    (directory / "server.conf").write_text(json.dumps(config))
    monitor = f"http://127.0.0.1:{http_port}"
    with (directory / "server.log").open("wb") as log:
        process = subprocess.Popen(
            [nats_server_binary(), "--config", str(directory / "server.conf")],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, (directory / "server.log").read_text()
            try:
                if httpx.get(f"{monitor}/healthz", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "nats-server did not become healthy"
            time.sleep(0.05)
        yield f"nats://127.0.0.1:{client_port}", monitor
    finally:
        process.terminate()
        process.wait(timeout=10)


def nats_node(root: Path, nats_urls: list[str], nats_monitor_urls: list[str]) -> NodeService:
    founders = [(NAME, "Hospital A", member_key(NAME), custodian_key(NAME))]
    save_genesis(founding_genesis(NETWORK_ID, "durability test", founders), root / "genesis.tx")
    settings = NodeSettings(
        name=NAME,
        data_dir=root / NAME,
        genesis=root / "genesis.tx",
        member_key=root / "unused",
        custodian_key=root / "unused",
        orderer="nats",
        nats_urls=nats_urls,
        nats_monitor_urls=nats_monitor_urls,
    )
    return NodeService(settings, NodeKeys(member_key(NAME), custodian_key(NAME)))


def test_local_cluster_servers_sync_always_and_every_one_is_checked(
    nats_cluster: LocalNatsCluster,
) -> None:
    for url in nats_cluster.monitor_urls:
        jsz = httpx.get(f"{url}/jsz", timeout=5.0).json()
        assert jsz["config"]["sync_always"] is True, url

    asyncio.run(check_sync_always(nats_cluster.monitor_urls))

    with pytest.raises(NatsNotDurable, match="reach 2 of the cluster's 3 servers"):
        asyncio.run(check_sync_always(nats_cluster.monitor_urls[:2]))
    doubled = [nats_cluster.monitor_urls[0]] * 3
    with pytest.raises(NatsNotDurable, match="reach 1 of the cluster's 3 servers"):
        asyncio.run(check_sync_always(doubled))


def test_a_cluster_under_a_relative_directory_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with LocalNatsCluster(Path("network") / "nats", size=1) as cluster:
        jsz = httpx.get(f"{cluster.monitor_urls[0]}/jsz", timeout=5.0).json()
    assert jsz["config"]["store_dir"].startswith(str(tmp_path / "network" / "nats"))


def test_a_node_refuses_to_start_on_a_server_that_does_not_sync_always(tmp_path: Path) -> None:
    with standalone_server(tmp_path / "syncing", sync_always=True) as (_, monitor):
        asyncio.run(check_sync_always([monitor]))

    with standalone_server(tmp_path / "lazy", sync_always=False) as (url, monitor):
        node = nats_node(tmp_path, [url], [monitor])
        with pytest.raises(NatsNotDurable) as refused:
            asyncio.run(node.start())
        assert monitor in str(refused.value)
        assert "sync_interval: always" in str(refused.value)
        assert not node.running
        # Refused before connecting: nothing was created on the server.
        assert httpx.get(f"{monitor}/jsz", timeout=5.0).json()["streams"] == 0


def test_a_node_with_nats_but_no_monitoring_urls_refuses_to_start(tmp_path: Path) -> None:
    node = nats_node(tmp_path, ["nats://127.0.0.1:4222"], [])
    with pytest.raises(UsageError, match="nats_monitor_urls"):
        asyncio.run(node.start())

    with pytest.raises(NatsNotDurable, match="no NATS monitoring URL"):
        asyncio.run(check_sync_always([]))


def test_an_unreachable_monitoring_endpoint_is_a_transport_error() -> None:
    (port,) = free_ports(1)
    url = f"http://127.0.0.1:{port}"
    with pytest.raises(TransportError, match=f"{url}/jsz unreachable"):
        asyncio.run(check_sync_always([url]))
