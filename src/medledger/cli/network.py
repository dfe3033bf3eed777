"""``medledger network up|down|status``: a local consortium on loopback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from medledger.cli.options import JsonOption, ScryptOption
from medledger.cli.output import err, out, print_table
from medledger.errors import TransportError, UsageError
from medledger.node.network import DEFAULT_BASE_PORT, DEFAULT_DIR, LocalNetwork, Orderer, health

network_app = typer.Typer(no_args_is_help=True, help="A local consortium: 3 NATS servers, 3 nodes.")

DirOption = Annotated[Path, typer.Option("--dir", help="Where the network keeps everything.")]
PortOption = Annotated[int, typer.Option(min=1024, max=65000, help="First node's port.")]
OrdererOption = Annotated[str, typer.Option(help="nats (3 JetStream servers) or embedded.")]


@network_app.command("up")
def up(
    *,
    directory: DirOption = DEFAULT_DIR,
    base_port: PortOption = DEFAULT_BASE_PORT,
    orderer: OrdererOption = "nats",
    scrypt_n: ScryptOption = 2**18,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for every node.")] = 90.0,
    as_json: JsonOption = False,
) -> None:
    """Found the network if it is new, start its servers and nodes, and return."""
    if orderer not in ("nats", "embedded"):
        raise UsageError(f"--orderer must be nats or embedded, not {orderer!r}")
    network = LocalNetwork(directory, base_port=base_port)
    state = network.state()
    if state is not None and _alive(int(state["supervisor"])):
        raise UsageError(f"the network at {directory} is already up")
    network.state_path.unlink(missing_ok=True)
    if not network.genesis_path.exists() and not as_json:
        err.print("founding a network of 3 institutions: sealing their 6 keystores (scrypt)")
    if network.found(scrypt_n=scrypt_n) and not as_json:
        out.print(f"founded a network of 3 institutions in {directory}")
    network.log_path("supervisor").parent.mkdir(parents=True, exist_ok=True)
    with network.log_path("supervisor").open("ab") as log:
        supervisor = subprocess.Popen(
            [sys.executable, "-m", "medledger", "network", "supervise", "--dir", str(directory),
             "--base-port", str(base_port), "--orderer", orderer, "--timeout", str(timeout)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # the network outlives this command and its terminal
        )  # fmt: skip
    deadline = time.monotonic() + timeout + 30
    waiting = err.status(
        f"starting {'3 NATS servers and ' if orderer == 'nats' else ''}3 nodes", spinner="dots"
    )
    with waiting:
        state = _wait_for_supervisor(network, supervisor, deadline, timeout)
    _show(state, as_json)


def _wait_for_supervisor(
    network: LocalNetwork, supervisor: subprocess.Popen[bytes], deadline: float, timeout: float
) -> dict[str, Any]:
    while (state := network.state()) is None or state["supervisor"] != supervisor.pid:
        if supervisor.poll() is not None:
            raise TransportError(f"the network did not start; see {network.log_path('supervisor')}")
        if time.monotonic() > deadline:
            supervisor.terminate()
            raise TransportError(f"the network did not start within {timeout:.0f} s")
        time.sleep(0.2)
    return state


@network_app.command("supervise", hidden=True)
def supervise(
    directory: DirOption = DEFAULT_DIR,
    base_port: PortOption = DEFAULT_BASE_PORT,
    orderer: OrdererOption = "nats",
    timeout: float = 90.0,
) -> None:
    """Run the servers and nodes until SIGTERM; started by `network up`."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    chosen: Orderer = "embedded" if orderer == "embedded" else "nats"
    with LocalNetwork(directory, base_port=base_port).running(chosen, timeout_s=timeout):
        while True:
            signal.pause()


@network_app.command("down")
def down(directory: DirOption = DEFAULT_DIR, timeout: float = 60.0) -> None:
    """Stop every node, then the NATS servers; data stays for the next `up`."""
    network = LocalNetwork(directory)
    state = network.state()
    if state is None or not _alive(pid := int(state["supervisor"])):
        network.state_path.unlink(missing_ok=True)
        out.print(f"the network at {directory} is not up")
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            raise TransportError(f"the supervisor {pid} did not stop within {timeout:.0f} s")
        time.sleep(0.2)
    out.print(f"the network at {directory} is down")


@network_app.command("status")
def status(directory: DirOption = DEFAULT_DIR, as_json: JsonOption = False) -> None:
    """Each node's health and log size; exit 4 if the network is up but a node is not."""
    state = LocalNetwork(directory).state()
    if state is None or not _alive(int(state["supervisor"])):
        if as_json:
            print(json.dumps({"up": False}))
        else:
            out.print(f"the network at {directory} is down")
        return
    _show(state, as_json)
    if any(health(node["url"]) is None for node in state["nodes"].values()):
        raise TransportError("a node of the network does not answer")


def _show(state: dict[str, Any], as_json: bool) -> None:
    nodes = {name: {**node, "health": health(node["url"])} for name, node in state["nodes"].items()}
    if as_json:
        print(json.dumps({"up": True, "orderer": state["orderer"], "nats": state["nats"],
                          "nodes": nodes}))  # fmt: skip
        return
    table = Table("node", "url", "pid", "log size")
    for name, node in nodes.items():
        answer = node["health"]
        table.add_row(
            name, node["url"], str(node["pid"]), str(answer["size"]) if answer else "down"
        )
    print_table(table)
    if state["nats"]:
        out.print("NATS: " + ", ".join(state["nats"]))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
