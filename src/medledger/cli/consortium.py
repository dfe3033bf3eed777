"""``medledger institution``, ``genesis`` and ``members``: a consortium across machines.

Each institution makes its keys on its own machine (``institution init``) and hands
the others only its card: id, name, ledger address and custodian public key. One
founder signs the genesis from every founder's card (``genesis create``) and shares
the file; each institution runs its node on it. Later members are admitted or removed
by the members' votes (``members admit``, ``remove``, ``vote``), and anyone registered
reads the member list as proven at a cosigned checkpoint (``members list``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from medledger.cli.options import DEFAULT_NODE, JsonOption, KeyOption, NodeOption, ScryptOption
from medledger.cli.output import emit, out, print_table
from medledger.cli.target import acting, load_key, with_client
from medledger.errors import InvalidInput, UsageError

if TYPE_CHECKING:
    from medledger.ledger.genesis import Founder
    from medledger.node.client import NodeClient

institution_app = typer.Typer(no_args_is_help=True, help="Your institution's keys and card.")
genesis_app = typer.Typer(no_args_is_help=True, help="A consortium's founding transaction.")
members_app = typer.Typer(no_args_is_help=True, help="The consortium's members and their votes.")
CardArgument = Annotated[Path, typer.Argument(help="An institution's card (JSON).")]


@institution_app.command("init")
def institution_init(
    ident: Annotated[str, typer.Argument(help="A short id, e.g. hospital-a.")],
    *,
    name: Annotated[str, typer.Option(help='Its name, e.g. "Hospital A".')],
    directory: Annotated[Path, typer.Option("--dir", help="Where to write.")] = Path(),
    scrypt_n: ScryptOption = 2**18,
) -> None:
    """Make your institution's ledger and custodian keys, and the card to give the others."""
    from medledger.crypto.keys import PrivateKey
    from medledger.ledger.genesis import Founder
    from medledger.node.identities import custodian_public_key, write_keystore

    card_path = directory / f"{ident}.card.json"
    if card_path.exists():
        raise UsageError(f"{card_path} already exists")
    member, custodian = PrivateKey.generate(), PrivateKey.generate()
    write_keystore(directory / "keys" / f"{ident}.json", member, scrypt_n=scrypt_n)
    write_keystore(directory / "keys" / f"{ident}-custodian.json", custodian, scrypt_n=scrypt_n)
    card = Founder(ident, name, member.address, custodian_public_key(custodian))
    _read_card_fields(card.to_json(), card_path.name)
    card_path.write_text(json.dumps(card.to_json(), indent=2) + "\n")
    out.print(f"{name}: ledger key {member.address}; keystores in {directory / 'keys'}; "
              f"give the others {card_path}")  # fmt: skip


def _read_card(path: Path) -> Founder:
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot read the card {path.name}: {exc}") from None
    return _read_card_fields(document, path.name)


def _read_card_fields(document: Any, where: str) -> Founder:
    """A card, checked as genesis and an admission will check it."""
    from medledger.crypto.hexdata import parse_hex
    from medledger.crypto.keys import to_checksum_address
    from medledger.ledger.genesis import Founder

    if not isinstance(document, dict) or set(document) != {"id", "name", "address",
                                                           "custodian_key"}:  # fmt: skip
        raise InvalidInput(f"{where}: a card has exactly id, name, address and custodian_key")
    try:
        return Founder(str(document["id"]), str(document["name"]),
                       to_checksum_address(str(document["address"])),
                       parse_hex(str(document["custodian_key"]), 32))  # fmt: skip
    except (InvalidInput, ValueError) as exc:
        raise InvalidInput(f"{where}: {exc}") from None


@genesis_app.command("create")
def genesis_create(
    *,
    founders: Annotated[list[Path], typer.Option("--founder", help="A founder's card.")],
    key: Annotated[Path, typer.Option("--key", help="Your ledger keystore: you sign.")],
    network_id: Annotated[int, typer.Option(min=1, help="The network's chain id.")],
    name: Annotated[str, typer.Option(help="The consortium's name.")],
    vote_threshold: Annotated[int | None, typer.Option(help="Default: a majority.")] = None,
    checkpoint_threshold: Annotated[int | None, typer.Option(help="Default: a majority.")] = None,
    out_path: Annotated[Path, typer.Option("--out", help="The genesis file.")] = Path("genesis.tx"),
) -> None:
    """Sign a consortium's genesis from its founders' cards (yours among them)."""
    from medledger.ledger.genesis import build_genesis, save_genesis
    from medledger.node.home import ROLES
    from medledger.protocol import contract_set

    cards = [_read_card(path) for path in founders]
    majority = len(cards) // 2 + 1
    if out_path.exists():
        raise UsageError(f"{out_path} already exists")
    genesis = build_genesis(
        network_id=network_id, name=name, founders=cards, signer=load_key(key),
        vote_threshold=vote_threshold or majority,
        checkpoint_threshold=checkpoint_threshold or majority, roles=ROLES,
        protocol=contract_set().protocol(),
    )  # fmt: skip
    save_genesis(genesis, out_path)
    out.print(f"genesis 0x{genesis.tx_id.hex()} of {name} ({len(cards)} founders) in {out_path}")


@genesis_app.command("show")
def genesis_show(
    path: Annotated[Path, typer.Argument(help="A genesis file.")] = Path("genesis.tx"),
    as_json: JsonOption = False,
) -> None:
    """What a genesis founds: its network, members and thresholds (its signature checked)."""
    from medledger.ledger.genesis import load_genesis

    genesis = load_genesis(path)
    payload = genesis.tx.payload
    shown = {
        "genesis": "0x" + genesis.tx_id.hex(), "network": genesis.tx.network_id,
        "name": payload["name"], "members": payload["members"],
        "vote_threshold": payload["vote_threshold"],
        "checkpoint_threshold": payload["checkpoint_threshold"],
        "protocol": payload["protocol"]["version"],
    }  # fmt: skip
    members = ", ".join(f"{m['name']} ({m['address']})" for m in payload["members"])
    emit(shown, as_json, f"{shown['name']}, network {shown['network']}, genesis "
         f"{shown['genesis']} ({shown['protocol']}): {members}; votes need "
         f"{shown['vote_threshold']}, checkpoints {shown['checkpoint_threshold']}")  # fmt: skip


@members_app.command("list")
def members_list(
    *, key: KeyOption, node: NodeOption = DEFAULT_NODE, as_json: JsonOption = False
) -> None:
    """The consortium's members, as proven at a checkpoint the members cosigned."""
    from medledger.ledger.contracts.membership import member_list

    async def run() -> list[Any]:
        async with acting(patient=None, key=key, node=node, home=None) as target:
            return await asyncio.to_thread(member_list, target.ledger.store)

    members = asyncio.run(run())
    if as_json:
        print(json.dumps([dataclasses.asdict(m) for m in members]))
        return
    table = Table("id", "name", "address", "member since (log entry)")
    for m in members:
        table.add_row(m.id, Text(m.name), m.address, str(m.since))
    print_table(table)


def _propose_or_vote(node: str, key: Path, tx_type: str, payload: dict[str, Any]) -> str:
    async def submit(client: NodeClient) -> str:
        return (await client.submit(tx_type, payload)).tx_id

    return with_client(node, key, submit)


@members_app.command("admit")
def members_admit(card: CardArgument, *, key: KeyOption, node: NodeOption = DEFAULT_NODE) -> None:
    """Propose admitting the institution a card names (your vote counts).

    Print the proposal's id for the other members to vote on."""
    from medledger.ledger.contracts.membership import PROPOSE

    member = _read_card(card).to_json()
    proposal = _propose_or_vote(node, key, PROPOSE, {"action": "admit", "member": member})
    out.print(f"proposal {proposal}: admit {member['name']} ({member['address']})")


@members_app.command("remove")
def members_remove(
    address: Annotated[str, typer.Argument(help="The member's ledger address.")],
    *,
    key: KeyOption,
    node: NodeOption = DEFAULT_NODE,
) -> None:
    """Propose removing a member (your vote counts); print the proposal's id."""
    from medledger.crypto.keys import to_checksum_address
    from medledger.ledger.contracts.membership import PROPOSE

    payload = {"action": "remove", "address": to_checksum_address(address)}
    out.print(f"proposal {_propose_or_vote(node, key, PROPOSE, payload)}: remove {address}")


@members_app.command("vote")
def members_vote(
    proposal: Annotated[str, typer.Argument(help="The proposal's id.")],
    *,
    key: KeyOption,
    node: NodeOption = DEFAULT_NODE,
) -> None:
    """Vote for a proposal; it takes effect once the vote threshold is reached."""
    from medledger.ledger.contracts.membership import VOTE, proposal_status

    _propose_or_vote(node, key, VOTE, {"proposal": proposal.lower()})

    async def status() -> tuple[str, int] | None:
        async with acting(patient=None, key=key, node=node, home=None) as target:
            return await asyncio.to_thread(proposal_status, target.ledger.store, proposal.lower())

    where, votes = asyncio.run(status()) or ("unknown", 0)
    out.print(f"voted for proposal {proposal}: {where}, {votes} votes")
