"""``medledger key``, ``patient`` and ``staff``: identities, patients and an institution's staff.

Everyone is a keystore (v3, scrypt) holding a secp256k1 key. A patient registers the
X25519 key their records are sealed to and enrols at institutions whose clinicians
may then write their records; an institution's operator registers and removes staff.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from medledger.cli.options import (
    DEFAULT_NODE,
    HomeOption,
    JsonOption,
    KeyOption,
    NodeOption,
    OptionalKeyOption,
    ScryptOption,
)
from medledger.cli.output import emit, out, print_table
from medledger.cli.target import NodeTarget, acting, load_key, with_client
from medledger.errors import InvalidInput, UsageError

if TYPE_CHECKING:
    from medledger.crypto.keys import Address
    from medledger.ledger.contracts.identity import Participant
    from medledger.node.client import NodeClient

key_app = typer.Typer(no_args_is_help=True, help="Your own keystore.")
patient_app = typer.Typer(no_args_is_help=True, help="Patients: register, enrol, find.")
staff_app = typer.Typer(no_args_is_help=True, help="An institution's staff (operators).")
AddressArgument = Annotated[str, typer.Argument(help="The person's address (0x and 40 hex).")]
IdentifierOption = Annotated[
    list[str],
    typer.Option(
        help="SYSTEM|VALUE, as the institution's records write it (|VALUE if it has no "
        "system); may be given more than once."
    ),
]


@key_app.command("new")
def key_new(path: Path, scrypt_n: ScryptOption = 2**18) -> None:
    """Create a keystore with a fresh key, encrypted under $MEDLEDGER_PASSPHRASE."""
    from medledger.crypto.keys import PrivateKey
    from medledger.node.identities import write_keystore

    key = PrivateKey.generate()
    write_keystore(path, key, scrypt_n=scrypt_n)
    out.print(f"{key.address} in {path}")


@key_app.command("show")
def key_show(path: Path) -> None:
    """The address of a keystore (no passphrase needed)."""
    from medledger.crypto.keys import to_checksum_address
    from medledger.node.identities import read_keystore

    try:
        document = read_keystore(path)
    except FileNotFoundError:
        raise UsageError(f"no keystore at {path}") from None
    print(to_checksum_address("0x" + str(document["address"])))


@patient_app.command("add")
def patient_add(alias: str, home: HomeOption = None, scrypt_n: ScryptOption = 2**18) -> None:
    """In a sandbox home: create a patient's keystore and register them on the ledger."""
    from medledger.node.home import Home

    address = asyncio.run(Home.at(home).add_patient(alias, scrypt_n=scrypt_n))
    out.print(f"Registered patient {alias} as {address}.")


@patient_app.command("register")
def register_patient(*, key: KeyOption, node: NodeOption = DEFAULT_NODE) -> None:
    """Register your key as a patient and enrol at the node's institution.

    Your key is your pseudonym and the key your records are sealed to; enrolling lets
    the institution's clinicians write your records."""
    from medledger.ledger.contracts import identity
    from medledger.node.identities import patient_public_key

    async def register(client: NodeClient) -> str:
        payload = {"encryption_key": "0x" + patient_public_key(client.key).hex()}
        await client.submit(identity.REGISTER_SUBJECT, payload)
        return await _enrol(client)

    institution = with_client(node, key, register)
    out.print(f"registered {load_key(key).address} as a patient, enrolled at {institution}")


@patient_app.command("enrol")
def enrol(*, key: KeyOption, node: NodeOption = DEFAULT_NODE) -> None:
    """Enrol at the node's institution: its clinicians may then write your records."""
    out.print(f"enrolled at {with_client(node, key, _enrol)}")


@patient_app.command("find")
def patient_find(
    *,
    identifier: IdentifierOption,
    key: OptionalKeyOption = None,
    node: NodeOption = DEFAULT_NODE,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Find an institution's patients by the identifiers its systems give them (an MRN).

    At a node (--key, as staff of its institution), or in a sandbox home at its hospital.
    The identifiers are hashed here under the institution's index key; only the hashes
    leave this machine, and none is printed back."""
    from medledger.records.patient_index import parse_identifier

    wanted = [parse_identifier(text) for text in identifier]
    found = asyncio.run(_found(wanted, key, node, home))
    rows = [None if f is None else {"patient": f[0], "enrolled": f[1]} for f in found]
    lines = [f"identifier {n}: " + ("no patient here" if f is None else
             f"{f[0]}" + ("" if f[1] else " (no longer enrolled)"))
             for n, f in enumerate(found, start=1)]  # fmt: skip
    emit(rows, as_json, "\n".join(lines))
    missing = sum(f is None for f in found)
    if missing:
        raise InvalidInput(f"{missing} of {len(found)} identifiers name no patient here")


async def _found(
    wanted: list[tuple[str, str]], key: Path | None, node: str, home: Path | None
) -> list[tuple[Address, bool] | None]:
    """For each identifier, the patient the institution indexed it for, and whether they
    are enrolled there now."""
    from medledger.crypto.keys import Address
    from medledger.records.patient_index import identifier_digest

    if key is not None:
        from medledger.node.client import NodeClient

        async with NodeClient(node, load_key(key)) as client:
            secret = await client.patient_index_key()
            digests = [identifier_digest(secret, i) for i in wanted]
            matches = await client.find_patients(digests)
        return [(Address(m.patient), m.enrolled) if (m := matches.get(d)) else None
                for d in digests]  # fmt: skip
    from medledger.access.care import enrolled_at
    from medledger.node.home import FOUNDERS, Home
    from medledger.records.patient_index import PatientIndex, index_key

    here = Home.at(home)
    institution = here.load_key(FOUNDERS[0][0])
    digests = [identifier_digest(index_key(institution), i) for i in wanted]
    async with here.session() as session:
        with PatientIndex.open(session.institution.parts.vault_url) as index:
            owners = index.owners(digests)
        view, now = session.node.store, session.node.size
        return [(owner, enrolled_at(view, owner, institution.address, now))
                if (owner := owners.get(d)) else None for d in digests]  # fmt: skip


async def _enrol(client: NodeClient) -> str:
    from medledger.access import care

    institution = (await client.status()).member
    await client.submit(care.ENROL, {"institution": institution})
    return institution


@staff_app.command("add")
def staff_add(
    address: AddressArgument,
    *,
    role: Annotated[str, typer.Option(help="A role of the network.")],
    name: Annotated[str | None, typer.Option(help='How people see them, e.g. "Dr Lee".')] = None,
    key: KeyOption,
    node: NodeOption = DEFAULT_NODE,
) -> None:
    """Register a clinician at your institution (your key is the institution's)."""
    from medledger.crypto.keys import to_checksum_address
    from medledger.ledger.contracts import identity

    payload = {"address": to_checksum_address(address), "role": role}
    if name is not None:
        payload["name"] = name
    with_client(node, key, lambda c: c.submit(identity.REGISTER_PARTICIPANT, payload))
    out.print(f"registered {name or payload['address']} ({payload['address']}) as {role}",
              markup=False)  # fmt: skip


@staff_app.command("list")
def staff_list(
    *,
    institution: Annotated[
        str | None, typer.Option(help="A member's address (default: the node's).")
    ] = None,
    key: KeyOption,
    node: NodeOption = DEFAULT_NODE,
    as_json: JsonOption = False,
) -> None:
    """Everyone an institution ever registered, with their name, role and standing.

    As proven at a checkpoint the members cosigned."""
    from medledger.crypto.keys import to_checksum_address
    from medledger.ledger.contracts.identity import staff_of

    async def run() -> tuple[Address, list[Participant]]:
        async with acting(patient=None, key=key, node=node, home=None) as target:
            assert isinstance(target, NodeTarget)
            chosen = to_checksum_address(institution or (await target.client.status()).member)
            return chosen, await asyncio.to_thread(staff_of, target.ledger.store, chosen)

    chosen, staff = asyncio.run(run())
    if as_json:
        print(json.dumps([dataclasses.asdict(p) for p in staff]))
        return
    table = Table("name", "address", "role", "status")
    for person in staff:
        # Someone who moved to another institution is listed here as having left.
        here = person.institution == chosen
        status = "left" if not here else "active" if person.active else "removed"
        # As text, not markup: a name is whatever its institution typed.
        table.add_row(Text(person.name or ""), person.address, person.role, status)
    if staff:
        print_table(table)
    else:
        out.print("No staff registered.")


@staff_app.command("remove")
def staff_remove(
    address: AddressArgument, *, key: KeyOption, node: NodeOption = DEFAULT_NODE
) -> None:
    """End a staff member's role at your institution.

    From now on they can neither write nor read under grants; what they did before stays
    judged as of then."""
    from medledger.crypto.keys import to_checksum_address
    from medledger.ledger.contracts import identity

    payload = {"address": to_checksum_address(address)}
    with_client(node, key, lambda c: c.submit(identity.REVOKE_PARTICIPANT, payload))
    out.print(f"removed {payload['address']} from your staff")
