"""``medledger access``: requests, approvals, grants, revocation and the patient's audit.

Clinicians ask (``request``) and read (``records read``); patients see what is asked
of them (``list``), approve or deny, revoke, and audit every read. Request ids may be
shortened to any unique prefix among the requests made of the patient's records.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.table import Table

from medledger.cli.options import (
    DEFAULT_NODE,
    HomeOption,
    HomePatientOption,
    JsonOption,
    KeyOption,
    NodeOption,
    OptionalKeyOption,
    QuietOption,
)
from medledger.cli.output import emit, out, print_table, unique_prefix, utc
from medledger.cli.target import acting, load_key, with_client
from medledger.errors import UsageError

if TYPE_CHECKING:
    from medledger.node.api import Audit, GrantState, RequestState
    from medledger.node.client import NodeClient

T = TypeVar("T")
access_app = typer.Typer(no_args_is_help=True, help="Access requests, approvals and grants.")
RequestArgument = Annotated[str, typer.Argument(help="The request's id (0x and 64 hex digits), "
                                                     "or a unique prefix of it.")]  # fmt: skip
SignedRequestArgument = Annotated[str, typer.Argument(
    help="The request's whole id (0x and 64 hex digits): what you sign names it in full."
)]  # fmt: skip
APPROVAL_TTL_MS = 10 * 60 * 1000


async def _request_id(client: NodeClient, given: str, *, to_sign: bool = False) -> str:
    """The whole id, from a unique prefix among the requests made of the caller's records.

    What the caller signs takes the whole id: the node lists the requests, and could list
    another under the prefix the caller typed."""
    text = given.lower()
    if len(text) == 66:
        return text
    if to_sign:
        raise UsageError(f"give the whole request id (0x and 64 hex digits) to sign, not {given!r}")
    rows = await client.requests_of(client.address)
    prefix = text if text.startswith("0x") else "0x" + text
    return unique_prefix(prefix, (r.request for r in rows), "requests of your records")


@access_app.command("request")
def request(
    *,
    patient: Annotated[str, typer.Option(help="The patient's address.")],
    category: Annotated[list[str], typer.Option(help="A data category (repeatable).")],
    purpose: Annotated[str, typer.Option(help="HL7 PurposeOfUse code.")] = "TREAT",
    duration_s: Annotated[int, typer.Option(min=1, help="How long the grant lasts.")] = 3600,
    emergency: Annotated[bool, typer.Option(help="Break-glass.")] = False,
    key: KeyOption,
    node: NodeOption = DEFAULT_NODE,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Ask for a patient's categories, for a purpose and a duration."""
    from medledger.crypto.keys import to_checksum_address

    payload = {"patient": to_checksum_address(patient), "categories": category,
               "purpose": purpose, "duration_s": duration_s, "emergency": emergency}  # fmt: skip
    state = with_client(node, key, lambda client: client.ask(payload))
    if quiet:
        print(state.request)
    else:
        _emit_state(state, as_json)


def _emit_state(state: RequestState, as_json: bool) -> None:
    emit(state.model_dump(), as_json, f"request {state.request}: {state.status}")


@access_app.command("list")
def list_requests(
    *, key: KeyOption, node: NodeOption = DEFAULT_NODE, as_json: JsonOption = False
) -> None:
    """Every request made of your records, those waiting for your answer first."""
    patient = load_key(key).address

    async def work(client: NodeClient) -> tuple[list[RequestState], dict[str, str]]:
        asked = await client.requests_of(patient)
        names = await asyncio.to_thread(_names, client, {r.requester for r in asked})
        return asked, names

    asked, names = with_client(node, key, work)
    waiting = [r for r in asked if r.status == "pending"]
    ordered = waiting + [r for r in asked if r.status != "pending"]
    if as_json:
        print(json.dumps([r.model_dump() for r in ordered]))
        return
    count = len(waiting)
    out.print(f"{count} request{'s' if count != 1 else ''} waiting for your answer."
              if count else "No request is waiting for your answer.")  # fmt: skip
    for r in ordered:
        out.print(f"{r.request}  {_describe(r, names)}", markup=False)


def _names(client: NodeClient, addresses: set[str]) -> dict[str, str]:
    """Who each address is, as proven at a cosigned checkpoint: "Dr Lee (doctor at
    Hospital B)"; an address the ledger names no one by stays as it is."""
    from medledger.crypto.keys import Address
    from medledger.ledger.contracts.identity import participant_of
    from medledger.ledger.contracts.membership import member_of
    from medledger.node.proven_state import ProvenState

    state = ProvenState(client)
    try:
        names = {}
        for address in addresses:
            person = participant_of(state, Address(address))
            if person is None:
                continue
            member = member_of(state, person.institution)
            at = member.name if member is not None else person.institution
            names[address] = f"{person.name or address} ({person.role} at {at})"
        return names
    finally:
        state.close()


def _describe(s: RequestState, names: dict[str, str] | None = None) -> str:
    where = s.status if s.grant_status is None else f"granted, now {s.grant_status}"
    who = (names or {}).get(s.requester, s.requester)
    return (f"{who} asks for {', '.join(s.categories)} of {s.patient} "
            f"for {s.purpose}, {s.duration_s} s: {where}; approved by "
            f"{', '.join(s.signers) or 'nobody yet'}")  # fmt: skip


@access_app.command("show")
def show(
    request_id: RequestArgument,
    *,
    key: KeyOption,
    node: NodeOption = DEFAULT_NODE,
    as_json: JsonOption = False,
) -> None:
    """Who asks, for what, why, who approved so far, and where it stands."""

    async def work(client: NodeClient) -> tuple[RequestState, dict[str, str]]:
        asked = await client.access_request(await _request_id(client, request_id))
        return asked, await asyncio.to_thread(_names, client, {asked.requester})

    s, names = with_client(node, key, work)
    emit(s.model_dump(), as_json, _describe(s, names))


@access_app.command("approve")
def approve(
    request_id: SignedRequestArgument,
    *,
    key: KeyOption,
    node: NodeOption = DEFAULT_NODE,
    as_json: JsonOption = False,
) -> None:
    """Sign your approval of a request (EIP-712) and have the node relay it."""
    from medledger.access.approval import Approval
    from medledger.crypto.keys import Address
    from medledger.node.api import ApprovalIn

    async def work(client: NodeClient) -> RequestState:
        whole = await _request_id(client, request_id, to_sign=True)
        state = await client.access_request(whole)
        network = (await client.health()).network
        not_after = int(time.time() * 1000) + APPROVAL_TTL_MS
        approval = Approval(network, bytes.fromhex(whole[2:]), Address(state.patient),
                            Address(state.requester), not_after)  # fmt: skip
        return await client.approve(whole, [ApprovalIn(**approval.signed_by(client.key))])

    _emit_state(with_client(node, key, work), as_json)


@access_app.command("deny")
def deny(
    request_id: SignedRequestArgument,
    *,
    key: KeyOption,
    node: NodeOption = DEFAULT_NODE,
    as_json: JsonOption = False,
) -> None:
    """Turn an open request of your records down (as the patient or a guardian)."""

    async def work(client: NodeClient) -> RequestState:
        return await client.deny(await _request_id(client, request_id, to_sign=True))

    _emit_state(with_client(node, key, work), as_json)


@access_app.command("grant")
def grant(
    grant_id: RequestArgument,
    *,
    key: KeyOption,
    node: NodeOption = DEFAULT_NODE,
    as_json: JsonOption = False,
) -> None:
    """A grant's scope, approvers and status (active, expired, revoked, void).

    As the node says, and as proven at a checkpoint the members cosigned."""

    async def work(client: NodeClient) -> tuple[GrantState, dict[str, Any]]:
        whole = await _request_id(client, grant_id)
        said = await client.grant(whole)
        return said, await asyncio.to_thread(_proven_grant, client, whole)

    g, proven = with_client(node, key, work)
    checked = (
        f"proven at checkpoint {proven['checkpoint']}: {proven['status']}"
        if proven["checkpoint"] else "not yet under a checkpoint"
    )  # fmt: skip
    emit({**g.model_dump(), "proven": proven}, as_json,
         f"grant {g.grant}: {g.status} ({checked}); {g.requester} reads "
         f"{', '.join(g.categories)} for {g.purpose}")  # fmt: skip


def _proven_grant(client: NodeClient, grant_id: str) -> dict[str, Any]:
    from medledger.access.errors import NoGrant
    from medledger.access.state import grant_status
    from medledger.ledger.timestamps import NS_PER_MS
    from medledger.node.proven_state import ProvenState

    state = ProvenState(client)
    try:
        head = state.checkpoint().head
        status = grant_status(state, grant_id, head.timestamp_ms * NS_PER_MS)
    except NoGrant:
        return {"checkpoint": None, "status": None}
    finally:
        state.close()
    return {"checkpoint": head.size, "status": status}


@access_app.command("review")
def review(
    grant_id: Annotated[str, typer.Argument(help="The break-glass grant's id.")],
    *,
    finding: Annotated[str, typer.Option(help="justified or unjustified")],
    key: KeyOption,
    node: NodeOption = DEFAULT_NODE,
) -> None:
    """Review a break-glass grant (in the network's reviewer role, having taken no part)."""
    from medledger.access.glass import REVIEW

    payload = {"grant": grant_id, "finding": finding}
    with_client(node, key, lambda c: c.submit(REVIEW, payload))
    out.print(f"break-glass grant {grant_id} reviewed: {finding}")


@access_app.command("revoke")
def revoke(
    grant_id: SignedRequestArgument, *, key: KeyOption, node: NodeOption = DEFAULT_NODE
) -> None:
    """End a grant at once (as the patient or a guardian)."""

    async def work(client: NodeClient) -> str:
        whole = await _request_id(client, grant_id, to_sign=True)
        await client.revoke(whole)
        return whole

    out.print(f"grant {with_client(node, key, work)} revoked")


@access_app.command("audit")
def audit(
    *,
    wait_s: Annotated[
        float, typer.Option(min=0, help="Wait this long for every read to be proven.")
    ] = 0,
    patient: HomePatientOption = None,
    key: OptionalKeyOption = None,
    node: NodeOption = DEFAULT_NODE,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Every read of your records, one row each.

    Who read which record, when, why, under which grant, and its receipts proven into a
    checkpoint; and break-glass grants."""

    async def run() -> Audit:
        async with acting(patient=patient, key=key, node=node, home=home) as target:
            deadline = time.monotonic() + wait_s
            while True:
                found = await target.audit(target.key.address)
                if all(r.proven for r in found.reads) or time.monotonic() >= deadline:
                    return found
                await asyncio.sleep(0.5)

    found = asyncio.run(run())
    if as_json:
        print(json.dumps(found.model_dump()))
        return
    for notice in found.break_glass:
        out.print(f"[red]BREAK-GLASS[/red] {notice.requester} may read "
                  f"{', '.join(notice.categories)} until {utc(notice.expires_ns)} UTC "
                  f"({notice.purpose})")  # fmt: skip
    if not found.reads:
        out.print("No reads of your records.")
        return
    table = Table("when (UTC)", "reader", "record", "category", "purpose", "custodians", "proof")
    for r in found.reads:
        checkpoints = [c.checkpoint for c in r.receipts if c.checkpoint is not None]
        proof = f"in checkpoint {max(checkpoints)}" if r.proven else "not yet"
        flag = " [red]BREAK-GLASS[/red]" if r.emergency else ""
        custodians = len({c.custodian for c in r.receipts})
        released = f"{custodians} of {r.threshold}" + ("" if r.complete else " (partial)")
        table.add_row(utc(r.timestamp_ns), r.reader,
                      f"{r.record_id} v{r.version} {r.resource_type}", r.category,
                      r.purpose + flag, released, proof)  # fmt: skip
    print_table(table)
