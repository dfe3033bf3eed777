"""``medledger fhir``: the clients a node's FHIR API serves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from medledger.cli.node import ConfigOption
from medledger.cli.output import out

fhir_app = typer.Typer(no_args_is_help=True, help="A node's FHIR API and its clients.")
client_app = typer.Typer(no_args_is_help=True, help="Clients of a node's FHIR API.")
fhir_app.add_typer(client_app, name="client")


@client_app.command("add")
def client_add(
    client_id: Annotated[str, typer.Argument(help="The client id the system authenticates as.")],
    jwks: Annotated[Path, typer.Option(help="The client's public keys: a JWK Set (JSON).")],
    principal_key: Annotated[
        Path,
        typer.Option(
            help="Keystore of the participant whose grants the client reads under "
            "(sealed with the node's passphrase)."
        ),
    ],
    config: ConfigOption = None,
) -> None:
    """Register a system as a SMART Backend Services client of this node (replacing one
    registered under the same id). The node reads the registry at every token request."""
    from medledger.errors import UsageError
    from medledger.node.config import load_settings
    from medledger.node.fhir.clients import BackendClient, ClientRegistry
    from medledger.node.identities import passphrase, read_keystore

    settings = load_settings(config)
    try:
        key_set = json.loads(jwks.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"--jwks: not a readable JSON file ({type(exc).__name__})") from None
    keystore = read_keystore(principal_key)
    client = BackendClient(client_id, key_set, keystore)
    client.principal_key(passphrase())  # refuse a keystore the node could not open
    ClientRegistry(settings.data_dir).add(client)
    out.print(f"client {client_id} reads as {client.principal} at node {settings.name}")


@client_app.command("list")
def client_list(config: ConfigOption = None) -> None:
    """The clients registered at this node."""
    from medledger.node.config import load_settings
    from medledger.node.fhir.clients import ClientRegistry

    for client_id in ClientRegistry(load_settings(config).data_dir).client_ids():
        print(client_id)
