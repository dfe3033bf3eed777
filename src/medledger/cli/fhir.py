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
apps_app = typer.Typer(no_args_is_help=True, help="Apps a node's users launch (SMART App Launch).")
fhir_app.add_typer(apps_app, name="app")


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
    _refuse_taken(client_id, settings.data_dir, as_app=False)
    ClientRegistry(settings.data_dir).add(client)
    out.print(f"client {client_id} reads as {client.principal} at node {settings.name}")


@client_app.command("list")
def client_list(config: ConfigOption = None) -> None:
    """The clients registered at this node."""
    from medledger.node.config import load_settings
    from medledger.node.fhir.clients import ClientRegistry

    for client_id in ClientRegistry(load_settings(config).data_dir).client_ids():
        print(client_id)


@apps_app.command("add")
def app_add(
    client_id: Annotated[str, typer.Argument(help="The client id the app authorizes as.")],
    redirect_uri: Annotated[
        list[str],
        typer.Option(help="Where codes may be sent, compared whole (repeat for several)."),
    ],
    name: Annotated[str | None, typer.Option(help="What the consent page calls the app.")] = None,
    config: ConfigOption = None,
) -> None:
    """Register a public app (no secret, PKCE) that this node's users may authorize
    (replacing one registered under the same id)."""
    from medledger.node.config import load_settings
    from medledger.node.fhir.apps import AppRegistry, PublicApp

    settings = load_settings(config)
    app = PublicApp(client_id, tuple(redirect_uri), name or client_id)
    _refuse_taken(client_id, settings.data_dir, as_app=True)
    AppRegistry(settings.data_dir).add(app)
    uris = ", ".join(app.redirect_uris)
    out.print(f"app {client_id} redirects to {uris} at node {settings.name}")


@apps_app.command("list")
def app_list(config: ConfigOption = None) -> None:
    """The apps registered at this node, with their redirect URIs."""
    from medledger.node.config import load_settings
    from medledger.node.fhir.apps import AppRegistry

    for app in AppRegistry(load_settings(config).data_dir).apps():
        print("\t".join([app.client_id, app.name, *app.redirect_uris]))


def _refuse_taken(client_id: str, data_dir: Path, *, as_app: bool) -> None:
    """One client id names one client: an app sharing a system's id would be taken for
    it (its export jobs, its tokens' app in receipts)."""
    from medledger.errors import UsageError
    from medledger.node.fhir.apps import AppRegistry
    from medledger.node.fhir.clients import ClientRegistry

    taken = (ClientRegistry(data_dir).get(client_id) is not None if as_app
             else AppRegistry(data_dir).get(client_id) is not None)  # fmt: skip
    if taken:
        other = "a Backend Services client" if as_app else "an app"
        raise UsageError(f"{client_id} is already registered here as {other}")


group_app = typer.Typer(no_args_is_help=True, help="Groups of patients a node's systems export.")
fhir_app.add_typer(group_app, name="group")


@group_app.command("add")
def group_add(
    name: Annotated[str, typer.Argument(help="The Group's id: Group/NAME/$export.")],
    patient: Annotated[
        list[str], typer.Option(help="A member's pseudonym (0x...); repeat for each.")
    ],
    config: ConfigOption = None,
) -> None:
    """Keep a named list of patients at this node (replacing one of the same name). It
    gives no access: an export covers only the members a token's grants cover."""
    from medledger.node.config import load_settings
    from medledger.node.fhir.groups import Group, GroupRegistry

    settings = load_settings(config)
    group = Group.of(name, patient)
    GroupRegistry(settings.data_dir).add(group)
    out.print(f"group {name}: {len(group.members)} patients at node {settings.name}")


@group_app.command("list")
def group_list(config: ConfigOption = None) -> None:
    """The groups kept at this node, with their members."""
    from medledger.node.config import load_settings
    from medledger.node.fhir.groups import GroupRegistry

    for group in GroupRegistry(load_settings(config).data_dir).groups():
        print("\t".join([group.name, *group.members]))
