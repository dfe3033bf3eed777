"""``medledger init``, ``verify`` and ``ledger``: found a sandbox, check what is stored,
and look at a node's ledger."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from medledger.cli.options import (
    DEFAULT_NODE,
    HomeOption,
    JsonOption,
    KeyOption,
    NodeOption,
    OptionalKeyOption,
    ScryptOption,
)
from medledger.cli.output import emit, out, print_table, progress
from medledger.cli.target import acting, with_client
from medledger.errors import VerificationError

if TYPE_CHECKING:
    from medledger.records.verify_report import VerifyReport

ledger_app = typer.Typer(no_args_is_help=True, help="A node's ledger.")


def init(home: HomeOption = None, scrypt_n: ScryptOption = 2**18) -> None:
    """Found a sandbox network: three institutions, one clinician, an empty vault."""
    from medledger.node.home import CLINICIAN, FOUNDERS, Home

    target = Home.at(home)
    asyncio.run(target.create(scrypt_n=scrypt_n, progress=progress))
    names = ", ".join(name for _, name in FOUNDERS)
    out.print(f"Founded a sandbox network in {target.path}: {names}; clinician {CLINICIAN}.")


def verify(
    *,
    key: OptionalKeyOption = None,
    node: NodeOption = DEFAULT_NODE,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check stored records against the ledger.

    Exit 0 only if all holds. In a home, its whole vault, replayed against the log; at a
    node (--key), every record of yours it holds, each against its proof up to a
    checkpoint the members cosigned."""
    report = asyncio.run(_verify(key, node, home))
    if as_json:
        print(json.dumps(report.to_json()))
    else:
        out.print(f"Checked {report.records} records in {report.batches} batches against "
                  f"checkpoint {report.checkpoint_size} ({report.checkpoint_quorum}).")  # fmt: skip
        if report.problems:
            table = Table("record or batch", "check", "what failed")
            for problem in report.problems:
                table.add_row(problem.subject, problem.check, problem.detail)
            print_table(table)
        else:
            out.print("[green]All records verified.[/green]")
    if not report.ok:
        raise VerificationError(f"verify found {len(report.problems)} problems")


async def _verify(key: Path | None, node: str, home: Path | None) -> VerifyReport:
    from medledger.errors import InvalidInput
    from medledger.records.held import verify_held
    from medledger.records.proof import RecordProof
    from medledger.records.sealed import SealedRecord

    if key is None:
        from medledger.node.home import Home
        from medledger.records.verify import verify_vault

        async with Home.at(home).session() as session:
            return verify_vault(session.store, session.node)
    held: list[tuple[SealedRecord, RecordProof | InvalidInput]] = []
    async with acting(patient=None, key=key, node=node, home=None) as target:
        # Asked first: the node then proves every record up to the log as it stands.
        members, threshold = await target.trusted()
        rows = await target.records(target.key.address, None)
        for n, row in enumerate(rows):
            if n % 100 == 0 and len(rows) > 100:
                progress(f"{n} of {len(rows)} records fetched")
            record, version = row.record_id, row.version
            committed = await target.committed(record, version)
            try:
                proof: RecordProof | InvalidInput = await target.proof(record, version)
            except InvalidInput as exc:
                proof = exc
            held.append((committed.sealed, proof))
    return verify_held(node, held, members, threshold)


@ledger_app.command("status")
def ledger_status(
    *, key: KeyOption, node: NodeOption = DEFAULT_NODE, as_json: JsonOption = False
) -> None:
    """The node's log size, members and latest checkpoint."""
    s = with_client(node, key, lambda c: c.status())
    emit(s.model_dump(), as_json, f"{s.name} ({s.member}): network {s.network}, log size "
         f"{s.size}, checkpoint {s.checkpoint}, {len(s.members)} members")  # fmt: skip
