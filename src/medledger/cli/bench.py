"""``medledger bench``: throughput against this machine's floor, measured in the same run."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated

import typer

from medledger.cli.output import progress

bench_app = typer.Typer(
    no_args_is_help=True, help="Measure throughput against this machine's floor."
)


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
        progress=None if as_json else progress,
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

    result = ingest.run(records=records_, workers=workers, progress=None if as_json else progress)
    print(json.dumps(result, indent=None if as_json else 2))


@bench_app.command("access")
def bench_access(
    reads: Annotated[int, typer.Option(min=10, help="End-to-end reads timed one by one.")] = 100,
    grants: Annotated[int, typer.Option(min=10, help="Grants in flight at once.")] = 2000,
    as_json: Annotated[bool, typer.Option("--json", help="Print only the JSON result.")] = False,
) -> None:
    """Request -> 2-of-3 approvals -> grant -> threshold release -> decrypt of 1 MiB."""
    from medledger.bench import access

    result = access.run(reads=reads, grants=grants, progress=None if as_json else progress)
    print(json.dumps(result, indent=None if as_json else 2))


@bench_app.command("fhir")
def bench_fhir(
    ingest_records: Annotated[
        int, typer.Option("--ingest", min=500, help="Records posted as transaction Bundles.")
    ] = 5000,
    chart: Annotated[int, typer.Option(min=10, help="Records in the chart read whole.")] = 500,
    reads: Annotated[int, typer.Option(min=1, help="Whole-chart reads timed.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print only the JSON result.")] = False,
) -> None:
    """FHIR transaction ingest over HTTP vs direct ingest, and $everything over 3 vaults."""
    from medledger.bench import fhir

    result = fhir.run(ingest_records=ingest_records, chart=chart, reads=reads,
                      progress=None if as_json else progress)  # fmt: skip
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
        rounds=rounds, sdjwt_verifies=sdjwt_verifies, progress=None if as_json else progress
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
        progress=None if as_json else progress,
    )  # fmt: skip
    print(json.dumps(result, indent=None if as_json else 2))


@bench_app.command("cli")
def bench_cli(
    runs: Annotated[int, typer.Option(min=3, help="Runs of each command (median).")] = 9,
    as_json: Annotated[bool, typer.Option("--json", help="Print only the JSON result.")] = False,
) -> None:
    """How soon `medledger --help` and a simple read command answer, vs a bare Python."""
    from medledger.bench import cli

    result = cli.run(runs=runs, progress=None if as_json else progress)
    print(json.dumps(result, indent=None if as_json else 2))
