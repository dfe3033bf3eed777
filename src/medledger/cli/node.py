"""``medledger node run``: serve one institution's node."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from medledger.cli.options import JsonOption

node_app = typer.Typer(no_args_is_help=True, help="Run an institution's node.")

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", envvar="MEDLEDGER_NODE_CONFIG",
        help="TOML file; MEDLEDGER_NODE_* variables override it.",
    ),
]  # fmt: skip


@node_app.command("run")
def run(config: ConfigOption = None) -> None:
    """Serve the node's API until interrupted (keystores open with $MEDLEDGER_PASSPHRASE)."""
    import uvicorn

    from medledger.node.app import create_app
    from medledger.node.config import load_settings
    from medledger.node.logs import configure
    from medledger.node.service import NodeKeys, NodeService

    settings = load_settings(config)
    configure(settings.log_level)
    service = NodeService(settings, NodeKeys.load(settings))
    uvicorn.run(
        create_app(service),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        limit_concurrency=1024,
    )


def check(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Replay the node's log and compare its store with the replay (exit 3 if they differ).

    Reads the node's state database, which may be in use: the node need not stop."""
    from medledger.ledger.genesis import load_genesis
    from medledger.ledger.selfcheck import check_store
    from medledger.ledger.store import LedgerStore
    from medledger.node.config import load_settings
    from medledger.protocol import contract_set

    settings = load_settings(config)
    store = LedgerStore.open(settings.state_database)
    try:
        report = check_store(store, load_genesis(settings.genesis), contract_set())
    finally:
        store.close()
    if as_json:
        print(json.dumps(report.to_json()))
    else:
        verdict = "matches" if report.ok else "does NOT match"
        print(f"{report.entries} log entries in {report.blocks} blocks: the store {verdict} "
              "a replay of the log")  # fmt: skip
        for problem in report.problems:
            print(f"  {problem}")
    if not report.ok:
        raise typer.Exit(3)
