"""The ``medledger`` command line.

Thin by design: every command calls into the library, and every error goes
through one handler that prints one clear line and exits non-zero.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from medledger.cli import (
    access,
    bench,
    consortium,
    credentials,
    fhir,
    ledger,
    network,
    node,
    people,
    policies,
    records,
)
from medledger.cli.output import err
from medledger.errors import InvalidInput, MedledgerError, TransportError, UsageError

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="Health records over a consortium ledger."
)
app.command("init")(ledger.init)
app.command("verify")(ledger.verify)
app.add_typer(records.records_app, name="records")
app.add_typer(access.access_app, name="access")
app.add_typer(policies.policy_app, name="policy")
app.add_typer(people.patient_app, name="patient")
app.add_typer(people.staff_app, name="staff")
app.add_typer(people.key_app, name="key")
app.add_typer(ledger.ledger_app, name="ledger")
app.add_typer(consortium.institution_app, name="institution")
app.add_typer(consortium.genesis_app, name="genesis")
app.add_typer(consortium.members_app, name="members")
app.add_typer(credentials.credentials_app, name="credentials")
app.add_typer(node.node_app, name="node")
app.add_typer(network.network_app, name="network")
app.add_typer(fhir.fhir_app, name="fhir")
app.add_typer(bench.bench_app, name="bench")
ledger.ledger_app.command("check")(node.check)

EXIT_CODES: dict[type[MedledgerError], int] = {InvalidInput: 3, TransportError: 4, UsageError: 2}


@app.command("demo")
def demo() -> None:
    """Tell the story of a consortium ledger, step by step, checking each step."""
    from medledger.demo import run_demo

    run_demo(Console())


def main() -> None:
    try:
        app()
    except MedledgerError as exc:
        code = next((c for cls, c in EXIT_CODES.items() if isinstance(exc, cls)), 1)
        err.print(f"[red]error:[/red] {exc}")
        sys.exit(code)
