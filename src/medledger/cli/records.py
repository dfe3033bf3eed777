"""``medledger init``, ``patient``, ``records`` and ``verify``: the vault from the shell."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from medledger.access import care
from medledger.access.audit import AuditEntry, audit_log, break_glass_notices
from medledger.cli.options import HomeOption, JsonOption, PatientOption, ScryptOption
from medledger.errors import InvalidInput, UsageError, VerificationError
from medledger.node.home import CLINICIAN, FOUNDERS, PATIENT_LABEL, Home, encryption_key
from medledger.records.contract import batch_state
from medledger.records.errors import InvalidRecord
from medledger.records.fhir import load_sources
from medledger.records.importer import import_sources
from medledger.records.pipeline import SealingPool
from medledger.records.proof import RecordProof, prove
from medledger.records.recipients import patient_key, sealing_context
from medledger.records.sealed import open_as_patient
from medledger.records.store import StoredRecord
from medledger.records.verify import verify_vault
from medledger.records.writer import RecordWriter, WriteReport

out = Console()
err = Console(stderr=True)
patient_app = typer.Typer(no_args_is_help=True, help="Patients of this home.")
records_app = typer.Typer(no_args_is_help=True, help="Health records in this home's vault.")

# Below this many resources, starting worker processes costs more than it saves.
PARALLEL_FROM = 512


def init(home: HomeOption = None, scrypt_n: ScryptOption = 2**18) -> None:
    """Found a sandbox network: three institutions, one clinician, an empty vault."""
    target = Home.at(home)
    asyncio.run(target.create(scrypt_n=scrypt_n))
    names = ", ".join(name for _, name in FOUNDERS)
    out.print(f"Founded a sandbox network in {target.path}: {names}; clinician {CLINICIAN}.")


@patient_app.command("add")
def patient_add(alias: str, home: HomeOption = None, scrypt_n: ScryptOption = 2**18) -> None:
    """Create a patient's keystore and register them on the ledger under a pseudonym."""
    address = asyncio.run(Home.at(home).add_patient(alias, scrypt_n=scrypt_n))
    out.print(f"Registered patient {alias} as {address}.")


@records_app.command("import")
def records_import(
    paths: Annotated[list[Path], typer.Argument(help="FHIR JSON files and folders.")],
    patient: PatientOption,
    author: Annotated[str, typer.Option(help="The clinician who signs.")] = CLINICIAN,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Validate, seal, store and commit FHIR resources for a patient."""
    here = Home.at(home)
    report, checkpoint = asyncio.run(_import(here, patient, author, paths, as_json))
    rejected = [_rejection(r) for r in report.rejected]
    if as_json:
        print(json.dumps(_import_json(report, rejected, checkpoint)))
    else:
        out.print(
            f"Imported {len(report.written)} records for {patient} in "
            f"{len(report.batches)} batches; checkpoint at log size {checkpoint}."
        )
        for line in rejected:
            out.print(
                f"[red]rejected[/red] {line['source']}: {line['resource']}.{line['field']}: "
                f"{line['problem']}"
            )
    if rejected:
        written = len(report.written)
        raise InvalidInput(f"{len(rejected)} resources rejected ({written} written)")


async def _import(
    home: Home, alias: str, author_name: str, paths: list[Path], quiet: bool
) -> tuple[WriteReport, int | None]:
    patient = home.address_of(home.patient_name(alias))
    sources = list(load_sources(paths))
    async with home.session(writer=FOUNDERS[0][0]) as session:
        node = session.node
        assert node.key is not None
        writer = RecordWriter(session.store, node, node.key, authoring=care.check_author)
        await writer.recover()
        context = sealing_context(node, home.load_key(author_name))
        pool = SealingPool(context, workers=None if len(sources) >= PARALLEL_FROM else 1)
        try:
            with _progress(quiet) as bar:
                task = bar.add_task("sealing and committing", total=len(sources))
                report = await import_sources(
                    writer,
                    pool,
                    patient,
                    patient_key(node, patient),
                    sources,
                    progress=lambda done: bar.update(task, completed=done),
                )
        finally:
            pool.close()
        checkpoint = await session.checkpoint() if report.batches else None
    return report, checkpoint


def _progress(quiet: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err,
        disable=quiet,
        transient=True,
    )


def _rejection(error: InvalidRecord) -> dict[str, str]:
    return {
        "source": error.source,
        "resource": error.resource,
        "field": error.field,
        "problem": error.problem,
    }


def _import_json(
    report: WriteReport, rejected: list[dict[str, str]], checkpoint: int | None
) -> dict[str, Any]:
    return {
        "written": [
            {
                "source": w.source,
                "record": w.record_id.hex(),
                "version": w.version,
                "resourceType": w.resource_type,
            }
            for w in report.written
        ],
        "rejected": rejected,
        "batches": report.batches,
        "checkpoint": checkpoint,
    }


@records_app.command("list")
def records_list(
    patient: PatientOption,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Every record version of a patient, oldest first (metadata only)."""
    here = Home.at(home)
    rows = asyncio.run(_list(here, patient))
    if as_json:
        print(json.dumps(rows))
        return
    table = Table("record", "version", "type", "category", "committed")
    for row in rows:
        table.add_row(
            row["record"],
            str(row["version"]),
            row["resourceType"],
            row["category"],
            row["committed"] or "",
        )
    out.print(table)


async def _list(home: Home, alias: str) -> list[dict[str, Any]]:
    patient = home.address_of(home.patient_name(alias))
    async with home.session() as session:
        vault = "0x" + session.store.vault_id.hex()
        return [
            _summary(r, batch_state(session.node.store, vault, r.batch))
            for r in session.store.for_patient(patient)
        ]


def _summary(stored: StoredRecord, batch: Any) -> dict[str, Any]:
    header = stored.sealed.header
    committed = None
    if batch is not None:
        committed = datetime.fromtimestamp(batch["timestamp_ns"] / 1e9, UTC).isoformat()
    return {
        "record": header.record_id.hex(),
        "version": header.version,
        "resourceType": header.resource_type,
        "category": header.category,
        "author": stored.author,
        "committed": committed,
    }


@records_app.command("show")
def records_show(
    record: Annotated[str, typer.Argument(help="Record id (32 hex digits).")],
    patient: Annotated[str, typer.Option(help="The patient's alias; their key decrypts.")],
    version: Annotated[int | None, typer.Option(min=1, help="Default: the latest.")] = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Decrypt one record with the patient's key, after checking its signature."""
    here = Home.at(home)
    shown = asyncio.run(_show(here, patient, record, version))
    if as_json:
        print(json.dumps(shown))
        return
    out.print(
        f"{shown['resourceType']} record {shown['record']} v{shown['version']} "
        f"({shown['category']}), signed by {shown['author']}"
    )
    out.print_json(data=shown["resource"])


async def _show(home: Home, alias: str, record: str, version: int | None) -> dict[str, Any]:
    record_id = _record_id(record)
    patient_key_pair = home.load_key(home.patient_name(alias))
    async with home.session() as session:
        stored = session.store.get(record_id, version)
        sealed = stored.sealed
        if sealed.header.patient != patient_key_pair.address:
            raise UsageError(f"record {record} belongs to another patient")
        author = sealed.check()
        canonical = open_as_patient(sealed, encryption_key(patient_key_pair, PATIENT_LABEL))
    summary = _summary(stored, None)
    summary.pop("committed")
    return {**summary, "author": author, "resource": json.loads(canonical)}


@records_app.command("proof")
def records_proof(
    record: Annotated[str, typer.Argument(help="Record id (32 hex digits).")],
    version: Annotated[int | None, typer.Option(min=1, help="Default: the latest.")] = None,
    home: HomeOption = None,
) -> None:
    """Print a record's proof (JSON), from its signed header up to the latest checkpoint."""
    here = Home.at(home)

    async def run() -> dict[str, Any]:
        async with here.session() as session:
            stored = session.store.get(_record_id(record), version)
            vault = "0x" + session.store.vault_id.hex()
            return prove(stored, vault, session.node).to_json()

    print(json.dumps(asyncio.run(run())))


@records_app.command("check-proof")
def records_check_proof(
    path: Annotated[Path, typer.Argument(help="A proof printed by `records proof`.")],
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check a record proof against this network's members and checkpoint threshold."""
    try:
        proof = RecordProof.from_json(json.loads(path.read_text()))
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot read the proof {path.name}: {exc}") from None
    here = Home.at(home)

    async def run() -> str:
        async with here.session() as session:
            threshold = int(session.node.network_config()["checkpoint_threshold"])
            return proof.verify(session.node.members(), threshold)

    author = asyncio.run(run())
    result = {"ok": True, "record": proof.header.label, "author": author}
    if as_json:
        print(json.dumps(result))
    else:
        out.print(
            f"Record {proof.header.label} by {author} is in checkpoint "
            f"{proof.checkpoint.head.size}, cosigned by the consortium."
        )


def _record_id(record: str) -> bytes:
    try:
        return bytes.fromhex(record)
    except ValueError:
        raise UsageError(f"record id {record!r} is not hex") from None


def audit(
    patient: PatientOption,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Every read of a patient's records: who, what, when, why, under which grant, proven."""
    here = Home.at(home)
    address = here.address_of(here.patient_name(patient))

    async def run() -> tuple[list[AuditEntry], list[dict[str, Any]]]:
        async with here.session() as session:
            notices = break_glass_notices(session.node.store, address)
            return audit_log(session.node, address), notices

    entries, notices = asyncio.run(run())
    if as_json:
        print(json.dumps({"reads": [e.to_json() for e in entries], "break_glass": notices}))
        return
    for notice in notices:
        until = datetime.fromtimestamp(notice["expires_ns"] / 1e9, UTC).strftime("%Y-%m-%d %H:%M")
        out.print(
            f"[red]BREAK-GLASS[/red] {_short(notice['requester'])} may read "
            f"{', '.join(notice['categories'])} until {until} UTC ({notice['purpose']})"
        )
    table = Table("when (UTC)", "reader", "record", "category", "purpose", "custodian", "proof")
    for e in entries:
        when = datetime.fromtimestamp(e.timestamp_ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S")
        proof = f"in {e.checkpoint_size}" if e.checkpoint_size else "pending"
        flag = " [red]BREAK-GLASS[/red]" if e.emergency else ""
        table.add_row(when, _short(e.reader), _short(e.record), e.category, e.purpose + flag,
                      _short(e.custodian), proof)  # fmt: skip
    out.print(table if entries else f"No reads of {patient}'s records.")


def _short(hex_value: str) -> str:
    return hex_value[:6] + "…" + hex_value[-4:]


def verify(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """Check every stored record against the ledger; exit 0 only if all holds."""
    here = Home.at(home)

    async def run() -> Any:
        async with here.session() as session:
            return verify_vault(session.store, session.node)

    report = asyncio.run(run())
    if as_json:
        print(json.dumps(report.to_json()))
    else:
        out.print(
            f"Checked {report.records} records in {report.batches} batches against "
            f"checkpoint {report.checkpoint_size} ({report.checkpoint_quorum})."
        )
        if report.problems:
            table = Table("record or batch", "check", "what failed")
            for problem in report.problems:
                table.add_row(problem.subject, problem.check, problem.detail)
            out.print(table)
        else:
            out.print("[green]All records verified.[/green]")
    if not report.ok:
        raise VerificationError(f"verify found {len(report.problems)} problems")
