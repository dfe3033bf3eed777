"""The ``medledger`` command line.

Thin by design: every command calls into the library, and every error goes
through one handler that prints one clear line and exits non-zero.
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from typing import Annotated

import typer
from rich.console import Console

from medledger.cli import credentials, network, node, policies, records, remote
from medledger.errors import InvalidInput, MedledgerError, TransportError, UsageError

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="Health records over a consortium ledger."
)
bench_app = typer.Typer(
    no_args_is_help=True, help="Measure throughput against this machine's floor."
)
app.add_typer(bench_app, name="bench")
app.add_typer(records.patient_app, name="patient")
app.add_typer(records.records_app, name="records")
app.add_typer(policies.policy_app, name="policy")
app.add_typer(node.node_app, name="node")
app.add_typer(network.network_app, name="network")
app.add_typer(remote.key_app, name="key")
app.add_typer(remote.ledger_app, name="ledger")
app.add_typer(remote.access_app, name="access")
app.add_typer(remote.staff_app, name="staff")
app.add_typer(credentials.credentials_app, name="credentials")
remote.ledger_app.command("check")(node.check)
records.patient_app.command("register")(remote.register_patient)
records.patient_app.command("enrol")(remote.enrol)
records.records_app.command("push")(remote.push)
records.records_app.command("mine")(remote.mine)
records.records_app.command("open")(remote.open_record)
records.records_app.command("read")(remote.read)
app.command("init")(records.init)
app.command("verify")(records.verify)
app.command("audit")(records.audit)
# soft_wrap: an error stays one line however narrow the terminal, so scripts can grep it.
err = Console(stderr=True, soft_wrap=True)

EXIT_CODES: dict[type[MedledgerError], int] = {InvalidInput: 3, TransportError: 4, UsageError: 2}


class Backend(StrEnum):
    embedded = "embedded"
    nats = "nats"


@bench_app.command("ledger")
def bench_ledger(
    backend: Annotated[Backend, typer.Option(help="Ordering backend.")] = Backend.embedded,
    tx: Annotated[int, typer.Option(min=100, help="Transactions to submit.")] = 20_000,
    state_entries: Annotated[
        int, typer.Option(min=1000, help="Entries of the in-memory state tree proven.")
    ] = 1_000_000,
    as_json: Annotated[bool, typer.Option("--json", help="Print only the JSON result.")] = False,
) -> None:
    """Signed transactions per second, verified, applied and durably committed."""
    from medledger.bench import ledger

    result = ledger.run(
        backend=backend.value,
        tx=tx,
        state_entries=state_entries,
        progress=None if as_json else _progress,
    )
    print(json.dumps(result, indent=None if as_json else 2))


@bench_app.command("ingest")
def bench_ingest(
    records_: Annotated[int, typer.Option("--records", min=100, help="Records to write.")] = 20_000,
    workers: Annotated[int | None, typer.Option(min=1, help="Default: one per core.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print only the JSON result.")] = False,
) -> None:
    """FHIR records per second: validated, sealed for 3 custodians, stored and committed."""
    from medledger.bench import ingest

    result = ingest.run(records=records_, workers=workers, progress=None if as_json else _progress)
    print(json.dumps(result, indent=None if as_json else 2))


@bench_app.command("access")
def bench_access(
    reads: Annotated[int, typer.Option(min=10, help="End-to-end reads timed one by one.")] = 100,
    grants: Annotated[int, typer.Option(min=10, help="Grants in flight at once.")] = 2000,
    as_json: Annotated[bool, typer.Option("--json", help="Print only the JSON result.")] = False,
) -> None:
    """Request -> 2-of-3 approvals -> grant -> threshold release -> decrypt of 1 MiB."""
    from medledger.bench import access

    result = access.run(reads=reads, grants=grants, progress=None if as_json else _progress)
    print(json.dumps(result, indent=None if as_json else 2))


@bench_app.command("credentials")
def bench_credentials(
    rounds: Annotated[int, typer.Option(min=5, help="AnonCreds prove/verify rounds.")] = 20,
    sdjwt_verifies: Annotated[int, typer.Option(min=100, help="SD-JWT verifications.")] = 2000,
    as_json: Annotated[bool, typer.Option("--json", help="Print only the JSON result.")] = False,
) -> None:
    """AnonCreds prove/verify (2 predicates, revocation) and SD-JWT verify, vs bare libraries."""
    from medledger.bench import credentials

    result = credentials.run(
        rounds=rounds, sdjwt_verifies=sdjwt_verifies, progress=None if as_json else _progress
    )
    print(json.dumps(result, indent=None if as_json else 2))


@bench_app.command("node")
def bench_node(
    reads: Annotated[int, typer.Option(min=10, help="Record reads.")] = 2000,
    approvals: Annotated[int, typer.Option(min=10, help="Approvals relayed and granted.")] = 400,
    concurrency: Annotated[int, typer.Option(min=1, max=256, help="Requests in flight.")] = 16,
    as_json: Annotated[bool, typer.Option("--json", help="Print only the JSON result.")] = False,
) -> None:
    """Load on one node's API: signed record reads and approvals per second, p50, p99."""
    from medledger.bench import node

    result = node.run(
        reads=reads, approvals=approvals, concurrency=concurrency,
        progress=None if as_json else _progress,
    )  # fmt: skip
    print(json.dumps(result, indent=None if as_json else 2))


@app.command("demo")
def demo() -> None:
    """Tell the story of a consortium ledger, step by step, checking each step."""
    from medledger.demo import run_demo

    run_demo(Console())


def _progress(message: str) -> None:
    err.print(f"[dim]… {message}[/dim]")


def main() -> None:
    try:
        app()
    except MedledgerError as exc:
        code = next((c for cls, c in EXIT_CODES.items() if isinstance(exc, cls)), 1)
        err.print(f"[red]error:[/red] {exc}")
        sys.exit(code)
