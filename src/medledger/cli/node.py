"""``medledger node run``: serve one institution's node."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

node_app = typer.Typer(no_args_is_help=True, help="Run an institution's node.")


@node_app.command("run")
def run(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", envvar="MEDLEDGER_NODE_CONFIG",
            help="TOML file; MEDLEDGER_NODE_* variables override it.",
        ),
    ] = None,
) -> None:  # fmt: skip
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
