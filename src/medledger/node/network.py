"""A local consortium on loopback: three NATS servers and three institution nodes.

``medledger network up`` founds the network the first time (keystores under the
passphrase, a genesis), then starts a supervisor process that runs a JetStream
cluster of three ``nats-server`` processes (ledger/ordering/nats_servers.py) and
one ``medledger node run`` process per institution, each with its own data
directory, state database, vault and custodian key. The supervisor writes where
everything listens to ``state.json`` and stops it all, nodes first, when it is
told to (``network down``) or dies. On several machines each institution runs
its own node with the same genesis and connects to all NATS servers: README.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from medledger.crypto.keys import PrivateKey
from medledger.errors import TransportError, UsageError
from medledger.node.identities import PASSPHRASE_ENV, passphrase, write_keystores

if TYPE_CHECKING:
    from medledger.ledger.ordering.nats_servers import LocalNatsCluster

INSTITUTIONS = [("hospital-a", "Hospital A"), ("hospital-b", "Hospital B"), ("insurer", "Insurer")]
NETWORK_ID = 2028
DEFAULT_DIR = Path("medledger-network")
DEFAULT_BASE_PORT = 8701
_STOP_GRACE_S = 15.0

Orderer = Literal["nats", "embedded"]


@dataclass(frozen=True)
class NodeProcess:
    name: str
    url: str
    process: subprocess.Popen[bytes]


class LocalNetwork:
    def __init__(
        self,
        root: Path,
        *,
        base_port: int = DEFAULT_BASE_PORT,
        node_settings: Mapping[str, Any] | None = None,
    ) -> None:
        self.root = root
        self.base_port = base_port
        #: Node settings (config.NodeSettings) every node gets over this network's own.
        self.node_settings = dict(node_settings or {})

    @property
    def genesis_path(self) -> Path:
        return self.root / "genesis.tx"

    @property
    def state_path(self) -> Path:
        return self.root / "state.json"

    def key_path(self, name: str) -> Path:
        return self.root / "keys" / f"{name}.json"

    def log_path(self, name: str) -> Path:
        return self.root / "logs" / f"{name}.log"

    def found(self, *, scrypt_n: int, settings: Mapping[str, Any] | None = None) -> bool:
        """Create the institutions' keystores and the genesis (with ``settings`` for the
        domain contracts, if given), once; True if it did."""
        if self.genesis_path.exists():
            return False
        members = {name: PrivateKey.generate() for name, _ in INSTITUTIONS}
        custodians = {name: PrivateKey.generate() for name, _ in INSTITUTIONS}
        write_keystores({**{self.key_path(n): k for n, k in members.items()},
                         **{self.key_path(f"{n}-custodian"): k for n, k in custodians.items()}},
                        scrypt_n=scrypt_n)  # fmt: skip
        founders = [(n, title, members[n], custodians[n]) for n, title in INSTITUTIONS]
        # Founding and serving need the whole ledger; status and down do not.
        from medledger.ledger.genesis import save_genesis
        from medledger.node.home import founding_genesis

        genesis = founding_genesis(NETWORK_ID, "medledger local network", founders, settings)
        save_genesis(genesis, self.genesis_path)
        return True

    @contextmanager
    def running(self, orderer: Orderer = "nats", *, timeout_s: float = 60.0) -> Iterator[
        list[NodeProcess]
    ]:  # fmt: skip
        """Run the ordering service and every node until the block ends, then stop them."""
        if not self.genesis_path.exists():
            raise UsageError(f"no network at {self.root}: found it first")
        passphrase()  # fail now, not in three node processes
        (self.root / "logs").mkdir(parents=True, exist_ok=True)
        from medledger.ledger.ordering.nats_servers import LocalNatsCluster

        cluster = LocalNatsCluster(self.root / "nats") if orderer == "nats" else None
        nodes: list[NodeProcess] = []
        try:
            if cluster is not None:
                cluster.start(timeout=timeout_s)
            for i, (name, _) in enumerate(INSTITUTIONS):
                port = self.base_port + i
                config = self._config(name, port, orderer, cluster)
                nodes.append(
                    NodeProcess(name, f"http://127.0.0.1:{port}", self._spawn(config, name))
                )
            self._wait_healthy(nodes, timeout_s)
            self._write_state(orderer, nodes, cluster)
            yield nodes
        finally:
            self.state_path.unlink(missing_ok=True)
            _stop([n.process for n in nodes])
            if cluster is not None:
                cluster.stop_all()

    def _config(
        self, name: str, port: int, orderer: Orderer, cluster: LocalNatsCluster | None
    ) -> Path:
        settings: dict[str, Any] = {
            "name": name,
            "data_dir": str(self.root / "nodes" / name),
            "genesis": str(self.genesis_path),
            "member_key": str(self.key_path(name)),
            "custodian_key": str(self.key_path(f"{name}-custodian")),
            "host": "127.0.0.1",
            "port": port,
            # What the node's URL names: every request to it must be signed for this.
            "public_authority": f"127.0.0.1:{port}",
            "orderer": orderer,
            "ordering_path": str(self.root / "ordering.db"),
            "nats_urls": cluster.urls if cluster else [],
            "nats_monitor_urls": cluster.monitor_urls if cluster else [],
            # Health cards name their issuer by an https URL; verifiers here find its key on
            # the ledger, so a local network uses a name that resolves nowhere.
            "issuer_url": f"https://{name}.invalid",
            # A small network with a person at the keyboard: checkpoints soon after each
            # change, so that reads are proven within seconds.
            "checkpoint_interval_s": 2,
            # Every other member's node: the vaults and custodians a FHIR query reaches.
            "peers": [
                f"http://127.0.0.1:{self.base_port + j}"
                for j in range(len(INSTITUTIONS))
                if self.base_port + j != port
            ],
        }
        settings |= self.node_settings
        path = self.root / "nodes" / name / "node.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        # TOML's basic strings and arrays take JSON's string and list syntax.
        path.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in settings.items()))
        return path

    def _spawn(self, config: Path, name: str) -> subprocess.Popen[bytes]:
        with self.log_path(name).open("ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "medledger", "node", "run", "--config", str(config)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, PASSPHRASE_ENV: passphrase()},
            )  # fmt: skip

    def _wait_healthy(self, nodes: list[NodeProcess], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        pending = list(nodes)
        while pending:
            for node in list(pending):
                if node.process.poll() is not None:
                    raise TransportError(
                        f"node {node.name} exited at start; see {self.log_path(node.name)}"
                    )
                if health(node.url) is not None:
                    pending.remove(node)
            if pending and time.monotonic() > deadline:
                names = ", ".join(n.name for n in pending)
                raise TransportError(f"node {names} not up after {timeout_s:.0f} s")
            time.sleep(0.1)

    def _write_state(
        self, orderer: Orderer, nodes: list[NodeProcess], cluster: LocalNatsCluster | None
    ) -> None:
        state = {
            "supervisor": os.getpid(),
            "orderer": orderer,
            "nats": cluster.urls if cluster else [],
            "nodes": {n.name: {"url": n.url, "pid": n.process.pid} for n in nodes},
        }
        partial = self.state_path.with_suffix(".partial")
        partial.write_text(json.dumps(state, indent=2))
        partial.replace(self.state_path)

    def state(self) -> dict[str, Any] | None:
        """What a running supervisor wrote, or None when the network is down."""
        try:
            return dict(json.loads(self.state_path.read_text()))
        except FileNotFoundError:
            return None


def health(url: str) -> dict[str, Any] | None:
    """A node's unauthenticated health answer, or None if it does not answer."""
    import httpx

    try:
        response = httpx.get(f"{url}/v1/health", timeout=2.0)
    except httpx.HTTPError:
        return None
    return dict(response.json()) if response.status_code == 200 else None


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + _STOP_GRACE_S
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def consecutive_free_ports(count: int) -> int:
    """The first of ``count`` consecutive loopback ports that are free now."""
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = int(probe.getsockname()[1])
        if base + count > 65535:
            continue
        taken: list[socket.socket] = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                taken.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in taken:
                sock.close()
    raise OSError(f"no {count} consecutive free loopback ports")
