"""Commands that talk to a node: for clinicians, patients and operators.

Each takes the node's URL (``--node`` or ``$MEDLEDGER_NODE_URL``) and the caller's
keystore (``--key`` or ``$MEDLEDGER_KEY``, opened with ``$MEDLEDGER_PASSPHRASE``);
every request is signed with that key. Records are sealed on this machine before
they leave it, and read under a grant through the custodians of every node named.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from medledger.access import care, glass
from medledger.access.approval import Approval
from medledger.access.contract import REQUEST, REVOKE
from medledger.access.errors import NoGrant
from medledger.access.reader import read_record
from medledger.access.state import NS_PER_MS, grant_status
from medledger.cli.options import JsonOption, ScryptOption
from medledger.crypto.keys import PrivateKey, to_checksum_address
from medledger.crypto.keystore import decrypt_keystore
from medledger.errors import InvalidInput, UsageError
from medledger.ledger.contracts import identity
from medledger.node.client import NodeClient, ProvenState, RemoteCustodian, upload_records
from medledger.node.home import (
    PATIENT_LABEL,
    encryption_key,
    passphrase,
    patient_public_key,
    read_keystore,
    write_keystore,
)
from medledger.records.fhir import load_sources
from medledger.records.sealed import open_as_patient
from medledger.records.wire import committed_from_json

out = Console()
err = Console(stderr=True)
T = TypeVar("T")

key_app = typer.Typer(no_args_is_help=True, help="Your own keystore.")
ledger_app = typer.Typer(no_args_is_help=True, help="A node's ledger.")
access_app = typer.Typer(no_args_is_help=True, help="Access requests, approvals and grants.")
staff_app = typer.Typer(no_args_is_help=True, help="An institution's staff (operators).")

NodeOption = Annotated[
    str, typer.Option("--node", envvar="MEDLEDGER_NODE_URL", help="The node's URL.")
]
KeyOption = Annotated[
    Path,
    typer.Option("--key", envvar="MEDLEDGER_KEY", help="Your keystore ($MEDLEDGER_PASSPHRASE)."),
]
DEFAULT_NODE = "http://127.0.0.1:8701"
APPROVAL_TTL_MS = 10 * 60 * 1000


def load_key(path: Path) -> PrivateKey:
    try:
        document = read_keystore(path)
    except FileNotFoundError:
        raise UsageError(f"no keystore at {path}") from None
    return decrypt_keystore(document, passphrase())


def _with_client(node: str, key: Path, work: Callable[[NodeClient], Awaitable[T]]) -> T:
    async def run() -> T:
        async with NodeClient(node, load_key(key)) as client:
            return await work(client)

    return asyncio.run(run())


def _emit(data: Any, as_json: bool, text: str) -> None:
    if as_json:
        print(json.dumps(data))
    else:
        out.print(text)


# -- key ---------------------------------------------------------------------------


@key_app.command("new")
def key_new(path: Path, scrypt_n: ScryptOption = 2**18) -> None:
    """Create a keystore with a fresh key, encrypted under $MEDLEDGER_PASSPHRASE."""
    key = PrivateKey.generate()
    write_keystore(path, key, scrypt_n=scrypt_n)
    out.print(f"{key.address} in {path}")


@key_app.command("show")
def key_show(path: Path) -> None:
    """The address of a keystore (no passphrase needed)."""
    try:
        document = read_keystore(path)
    except FileNotFoundError:
        raise UsageError(f"no keystore at {path}") from None
    print(to_checksum_address("0x" + str(document["address"])))


# -- ledger and identities -------------------------------------------------------------


@ledger_app.command("status")
def ledger_status(
    *, key: KeyOption, node: NodeOption = DEFAULT_NODE, as_json: JsonOption = False
) -> None:
    """The node's log size, members and latest checkpoint."""
    s = _with_client(node, key, lambda c: c.get("/v1/ledger/status"))
    _emit(s, as_json, f"{s['name']} ({s['member']}): network {s['network']}, log size "
          f"{s['size']}, checkpoint {s['checkpoint']}, {len(s['members'])} members")  # fmt: skip


def register_patient(*, key: KeyOption, node: NodeOption = DEFAULT_NODE) -> None:
    """Register your key as a patient (your pseudonym and the key records are sealed to)
    and enrol at the node's institution, so that its clinicians may write your records."""

    async def work(client: NodeClient) -> str:
        payload = {"encryption_key": "0x" + patient_public_key(client.key).hex()}
        tx = await client.transaction(identity.REGISTER_SUBJECT, payload)
        await client.post("/v1/ledger/transactions", {"transaction": tx})
        return await _enrol(client)

    institution = _with_client(node, key, work)
    out.print(f"registered {load_key(key).address} as a patient, enrolled at {institution}")


def enrol(*, key: KeyOption, node: NodeOption = DEFAULT_NODE) -> None:
    """Enrol at the node's institution: its clinicians may then write your records."""
    institution = _with_client(node, key, _enrol)
    out.print(f"enrolled at {institution}")


async def _enrol(client: NodeClient) -> str:
    institution = str((await client.get("/v1/ledger/status"))["member"])
    tx = await client.transaction(care.ENROL, {"institution": institution})
    await client.post("/v1/ledger/transactions", {"transaction": tx})
    return institution


@staff_app.command("add")
def staff_add(
    address: str, *, role: Annotated[str, typer.Option(help="A role of the network.")],
    key: KeyOption, node: NodeOption = DEFAULT_NODE,
) -> None:  # fmt: skip
    """Register a clinician at your institution (your key is the institution's)."""
    payload = {"address": to_checksum_address(address), "role": role}

    async def work(client: NodeClient) -> Any:
        tx = await client.transaction(identity.REGISTER_PARTICIPANT, payload)
        return await client.post("/v1/ledger/transactions", {"transaction": tx})

    _with_client(node, key, work)
    out.print(f"registered {payload['address']} as {role}")


# -- records ---------------------------------------------------------------------------


def push(
    paths: list[Path], *, patient: Annotated[str, typer.Option(help="The patient's address.")],
    key: KeyOption, node: NodeOption = DEFAULT_NODE, as_json: JsonOption = False,
) -> None:  # fmt: skip
    """Validate and seal FHIR files here, signed by you, and have the node commit them."""
    sources: list[tuple[str, bytes]] = []
    rejected: list[InvalidInput] = []
    for item in load_sources(paths):
        if isinstance(item, InvalidInput):
            rejected.append(item)
        else:
            sources.append((item[0], json.dumps(item[1]).encode()))
    address = to_checksum_address(patient)
    with Progress(TextColumn("sealing and committing"), BarColumn(), MofNCompleteColumn(),
                  console=err, disable=as_json) as bar:  # fmt: skip
        task = bar.add_task("push", total=len(sources))
        written, invalid = _with_client(node, key, lambda c: upload_records(
            c, address, sources, lambda done: bar.update(task, completed=done)))  # fmt: skip
    rejected += invalid
    result = {"written": written, "rejected": [str(r) for r in rejected]}
    _emit(result, as_json, f"committed {len(written)} records; rejected {len(rejected)}")
    if not as_json:
        for problem in rejected:
            out.print(f"  [red]rejected[/red] {problem}")
    if rejected:
        raise typer.Exit(3)


def mine(*, key: KeyOption, node: NodeOption = DEFAULT_NODE, as_json: JsonOption = False) -> None:
    """Your records at this node (as a patient)."""
    patient = load_key(key).address
    rows = _with_client(node, key, lambda c: c.get("/v1/records", {"patient": patient}))
    if as_json:
        print(json.dumps(rows))
        return
    table = Table("record", "version", "type", "category", "author")
    for r in rows:
        table.add_row(
            r["record_id"], str(r["version"]), r["resource_type"], r["category"], r["author"]
        )
    out.print(table)


def open_record(record: str, *, key: KeyOption, node: NodeOption = DEFAULT_NODE) -> None:
    """Decrypt one of your own records with your key and print its FHIR JSON."""
    fetched = _with_client(node, key, lambda c: c.get(f"/v1/records/{record}"))
    sealed = committed_from_json(fetched).sealed
    print(open_as_patient(sealed, encryption_key(load_key(key), PATIENT_LABEL)).decode())


def read(
    record: str, *, grant: Annotated[str, typer.Option(help="Your grant's id.")],
    custodians: Annotated[list[str], typer.Option("--custodian", help="Each node's URL.")],
    key: KeyOption, node: NodeOption = DEFAULT_NODE,
) -> None:  # fmt: skip
    """Read a record under a grant: its node serves the ciphertext, t custodians release
    key shares (each after a receipt on the ledger); print its FHIR JSON."""
    reader = load_key(key)

    async def work() -> bytes:
        clients = [NodeClient(url, reader) for url in custodians]
        try:
            async with NodeClient(node, reader) as vault:
                fetched = await vault.get(f"/v1/records/{record}", {"grant": grant})
            statuses = [await c.get("/v1/ledger/status") for c in clients]
            remote = [
                RemoteCustodian(c, s["member"]) for c, s in zip(clients, statuses, strict=True)
            ]
            threshold = int(statuses[0]["custodian_threshold"])
            return await read_record(reader, bytes.fromhex(grant[2:]), committed_from_json(fetched),
                                     custodians=remote, threshold=threshold)  # fmt: skip
        finally:
            for client in clients:
                await client.close()

    print(asyncio.run(work()).decode())


# -- access ----------------------------------------------------------------------------


@access_app.command("request")
def request(
    *, patient: Annotated[str, typer.Option(help="The patient's address.")],
    category: Annotated[list[str], typer.Option(help="A data category (repeatable).")],
    purpose: Annotated[str, typer.Option(help="HL7 PurposeOfUse code.")] = "TREAT",
    duration_s: Annotated[int, typer.Option(min=1, help="How long the grant lasts.")] = 3600,
    emergency: Annotated[bool, typer.Option(help="Break-glass.")] = False,
    key: KeyOption, node: NodeOption = DEFAULT_NODE, as_json: JsonOption = False,
) -> None:  # fmt: skip
    """Ask for a patient's categories, for a purpose and a duration."""
    payload = {"patient": to_checksum_address(patient), "categories": category,
               "purpose": purpose, "duration_s": duration_s, "emergency": emergency}  # fmt: skip

    async def work(client: NodeClient) -> Any:
        tx = await client.transaction(REQUEST, payload)
        return await client.post("/v1/access/requests", {"transaction": tx})

    state = _with_client(node, key, work)
    _emit(state, as_json, f"request {state['request']}: {state['status']}")


@access_app.command("show")
def show(request_id: str, *, key: KeyOption, node: NodeOption = DEFAULT_NODE,
         as_json: JsonOption = False) -> None:  # fmt: skip
    """Who asks, for what, why, and who approved so far."""
    s = _with_client(node, key, lambda c: c.get(f"/v1/access/requests/{request_id}"))
    _emit(s, as_json, f"{s['requester']} asks for {', '.join(s['categories'])} of {s['patient']} "
          f"for {s['purpose']}, {s['duration_s']} s: {s['status']}; approved by "
          f"{', '.join(s['signers']) or 'nobody yet'}")  # fmt: skip


@access_app.command("approve")
def approve(request_id: str, *, key: KeyOption, node: NodeOption = DEFAULT_NODE,
            as_json: JsonOption = False) -> None:  # fmt: skip
    """Sign your approval of a request (EIP-712) and have the node relay it."""

    async def work(client: NodeClient) -> Any:
        state = await client.get(f"/v1/access/requests/{request_id}")
        network = int((await client.get("/v1/health"))["network"])
        not_after = int(time.time() * 1000) + APPROVAL_TTL_MS
        request = bytes.fromhex(request_id[2:])
        approval = Approval(network, request, state["patient"], state["requester"], not_after)
        body = {"approvals": [approval.signed_by(client.key)]}
        return await client.post(f"/v1/access/requests/{request_id}/approvals", body)

    state = _with_client(node, key, work)
    _emit(state, as_json, f"request {request_id}: {state['status']}")


@access_app.command("grant")
def grant(grant_id: str, *, key: KeyOption, node: NodeOption = DEFAULT_NODE,
          as_json: JsonOption = False) -> None:  # fmt: skip
    """A grant's scope, approvers and status (active, expired, revoked), as the node says
    and as proven at the latest checkpoint the members cosigned."""

    async def work(client: NodeClient) -> Any:
        said = await client.get(f"/v1/access/grants/{grant_id}")
        return {**said, "proven": await asyncio.to_thread(_proven_grant, client, grant_id)}

    g = _with_client(node, key, work)
    proven = g["proven"]
    checked = (
        f"proven at checkpoint {proven['checkpoint']}: {proven['status']}"
        if proven["checkpoint"] else "not yet under a checkpoint"
    )  # fmt: skip
    _emit(g, as_json, f"grant {grant_id}: {g['status']} ({checked}); {g['requester']} reads "
          f"{', '.join(g['categories'])} for {g['purpose']}")  # fmt: skip


def _proven_grant(client: NodeClient, grant_id: str) -> dict[str, Any]:
    state = ProvenState(client)
    try:
        head = state.checkpoint().head
        status = grant_status(state, grant_id.lower(), head.timestamp_ms * NS_PER_MS)
    except NoGrant:
        return {"checkpoint": None, "status": None}
    finally:
        state.close()
    return {"checkpoint": head.size, "status": status}


@access_app.command("review")
def review(
    grant_id: str, *, finding: Annotated[str, typer.Option(help="justified or unjustified")],
    key: KeyOption, node: NodeOption = DEFAULT_NODE,
) -> None:  # fmt: skip
    """Review a break-glass grant (in the network's reviewer role, having taken no part)."""

    async def work(client: NodeClient) -> Any:
        tx = await client.transaction(glass.REVIEW, {"grant": grant_id, "finding": finding})
        return await client.post("/v1/ledger/transactions", {"transaction": tx})

    _with_client(node, key, work)
    out.print(f"break-glass grant {grant_id} reviewed: {finding}")


@access_app.command("revoke")
def revoke(grant_id: str, *, key: KeyOption, node: NodeOption = DEFAULT_NODE) -> None:
    """End a grant at once (as the patient or a guardian)."""

    async def work(client: NodeClient) -> Any:
        tx = await client.transaction(REVOKE, {"grant": grant_id})
        return await client.post(f"/v1/access/grants/{grant_id}/revoke", {"transaction": tx})

    _with_client(node, key, work)
    out.print(f"grant {grant_id} revoked")


@access_app.command("audit")
def audit(*, key: KeyOption, node: NodeOption = DEFAULT_NODE, as_json: JsonOption = False) -> None:
    """Every read of your records, with its receipt's proof, and break-glass grants."""
    patient = load_key(key).address
    a = _with_client(node, key, lambda c: c.get(f"/v1/audit/{patient}"))
    if as_json:
        print(json.dumps(a))
        return
    table = Table("when (log entry)", "reader", "record", "category", "purpose", "proof")
    for r in a["reads"]:
        proven = f"checkpoint {r['checkpoint']}" if r["checkpoint"] else "not yet"
        flag = " [red]break-glass[/red]" if r["emergency"] else ""
        table.add_row(str(r["index"]), r["reader"], r["record"][:18] + "…", r["category"],
                      r["purpose"] + flag, proven)  # fmt: skip
    out.print(table if a["reads"] else "No reads of your records.")
    for notice in a["break_glass"]:
        out.print(f"[red]break-glass[/red] grant {notice['grant']} to {notice['requester']}")
