"""``medledger records``: write, list, open, read under a grant, and prove health records.

Each command acts in a sandbox home (``--patient ALIAS``) or at a node (``--key``,
``--node``); see target.py. ``import`` writes a whole folder into a home's vault;
``push`` seals files on this machine, signed by the clinician, for a node to commit.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Awaitable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from medledger.cli.options import (
    DEFAULT_NODE,
    HomeOption,
    HomePatientOption,
    JsonOption,
    KeyOption,
    NodeOption,
    OptionalKeyOption,
    PatientOption,
    QuietOption,
    VersionOption,
)
from medledger.cli.output import emit, err, out, print_table, unique_prefix
from medledger.cli.target import Target, acting, load_key, record_bytes
from medledger.errors import InvalidInput, UsageError

if TYPE_CHECKING:
    from medledger.node.api import RecordSummary
    from medledger.node.client import NodeClient
    from medledger.node.uploads import ChartUpload
    from medledger.records.chart import SharedResource
    from medledger.records.errors import InvalidRecord
    from medledger.records.fhir_sources import Skipped
    from medledger.records.importer import ChartReport

T = TypeVar("T")

records_app = typer.Typer(no_args_is_help=True, help="Health records.")

RecordArgument = Annotated[str, typer.Argument(help="Record id (32 hex digits, or a prefix).")]
GrantOption = Annotated[str | None, typer.Option(help="A grant of yours covering the records.")]
# Below this many resources, starting worker processes costs more than it saves.
PARALLEL_FROM = 512


def _bar(quiet: bool, what: str = "sealing and committing") -> Progress:
    return Progress(TextColumn(what), BarColumn(), MofNCompleteColumn(), console=err,
                    disable=quiet, transient=True)  # fmt: skip


SourcePatientOption = Annotated[
    str | None,
    typer.Option(help="Which Patient of the files is this chart's patient: its id or fullUrl."),
]


@records_app.command("import")
def records_import(
    paths: Annotated[list[Path], typer.Argument(help="FHIR JSON and NDJSON files and folders.")],
    *,
    patient: PatientOption,
    author: Annotated[str, typer.Option(help="The home's clinician who signs.")] = "dr-lee",
    source_patient: SourcePatientOption = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """In a sandbox home: validate, seal, store and commit FHIR resources for a patient.

    Only what is about the patient goes in their chart: resources about another patient
    are refused, institution-level ones (practitioners, organizations, medications, ...)
    are named and left out."""
    done, checkpoint = asyncio.run(
        _import(home, patient, author, paths, source_patient=source_patient, quiet=as_json)
    )
    report = done.report
    rejected = [_rejection(r) for r in report.rejected]
    written = [{"source": w.source, "record_id": w.record_id.hex(), "version": w.version,
                "resource_type": w.resource_type} for w in report.written]  # fmt: skip
    result = {"written": written, "rejected": rejected, "batches": report.batches,
              "checkpoint": checkpoint, **_set_aside(done.shared, done.skipped),
              "indexed": done.indexed}  # fmt: skip
    emit(result, as_json, f"Imported {len(written)} records for {patient} in "
         f"{len(report.batches)} batches; checkpoint at log size {checkpoint}.")  # fmt: skip
    if not as_json:
        _print_set_aside(done.shared, done.skipped)
        for line in rejected:
            field = f".{line['field']}" if line["field"] else ""
            out.print(Text.assemble(("rejected", "red"), f" {line['source']}: {line['resource']}"
                                    f"{field}: {line['problem']}"))  # fmt: skip
    if rejected:
        raise InvalidInput(f"{len(rejected)} resources rejected ({len(written)} written)")


async def _import(
    home: Path | None, alias: str, author_name: str, paths: list[Path], *,
    source_patient: str | None, quiet: bool,
) -> tuple[ChartReport, int | None]:  # fmt: skip
    from medledger.node.home import FOUNDERS, Home
    from medledger.records.errors import InvalidRecord
    from medledger.records.fhir_sources import Loaded, read_files
    from medledger.records.importer import import_chart
    from medledger.records.patient_index import PatientIndex, index_key
    from medledger.records.pipeline import SealingPool
    from medledger.records.recipients import patient_key, sealing_context

    here = Home.at(home)
    patient = here.address_of(here.patient_name(alias))
    items = list(read_files(paths))
    total = sum(len(i.entries) if isinstance(i, Loaded) else isinstance(i, InvalidRecord)
                for i in items)  # fmt: skip
    async with here.session(writer=FOUNDERS[0][0]) as session:
        node, writer = session.node, session.institution.writer
        institution = session.institution.parts.member
        assert writer is not None and institution is not None, "a session with a writer key"
        context = sealing_context(node, here.load_key(author_name))
        pool = SealingPool(context, workers=None if total >= PARALLEL_FROM else 1)
        # The sandbox's institution keeps its patient index beside its vault, as a node does.
        index = PatientIndex.open(session.institution.parts.vault_url)
        try:
            with _bar(quiet) as bar:
                task = bar.add_task("import", total=total)
                done = await _chart_mistake(import_chart(
                    writer, pool, patient, patient_key(node, patient), items, index=index,
                    index_key=index_key(institution), source_patient=source_patient,
                    progress=lambda n: bar.update(task, completed=n),
                ))  # fmt: skip
        finally:
            index.close()
            pool.close()
        checkpoint = await session.checkpoint() if done.report.batches else None
    return done, checkpoint


async def _chart_mistake(work: Awaitable[T]) -> T:
    """Await ``work``. Files that name several patients are answered by an option of the
    command: that refusal is told as misuse, naming the option."""
    from medledger.records.chart import AmbiguousChart

    try:
        return await work
    except AmbiguousChart as exc:
        raise UsageError(f"{exc} with --source-patient (its id or fullUrl)") from None


def _rejection(error: InvalidRecord) -> dict[str, str]:
    return {"source": error.source, "resource": error.resource, "field": error.field,
            "problem": error.problem}  # fmt: skip


def _set_aside(shared: list[SharedResource], skipped: list[Skipped]) -> dict[str, Any]:
    """What an import named without writing it, as JSON."""
    return {"shared": [{"source": r.source, "resource": r.resource} for r in shared],
            "skipped": [{"source": f.source, "problem": f.problem} for f in skipped]}  # fmt: skip


def _print_set_aside(shared: list[SharedResource], skipped: list[Skipped]) -> None:
    # As text, not markup: file names and resource ids come from the files.
    if shared:
        kinds = Counter(r.resource.split("/")[0] for r in shared)
        counted = ", ".join(f"{kind} {n}" for kind, n in sorted(kinds.items()))
        out.print(f"{len(shared)} institution-level resources not sealed into the chart "
                  f"({counted}):", markup=False)  # fmt: skip
        for r in shared:
            out.print(f"  shared {r.source}: {r.resource}", markup=False)
    for f in skipped:
        out.print(f"skipped {f.source}: {f.problem}", markup=False)


@records_app.command("push")
def push(
    paths: Annotated[list[Path], typer.Argument(help="FHIR JSON and NDJSON files and folders.")],
    *,
    patient: Annotated[str, typer.Option(help="The patient's address.")],
    key: KeyOption,
    node: NodeOption = DEFAULT_NODE,
    source_patient: SourcePatientOption = None,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """At a node: validate and seal FHIR files here, signed by you, and have it commit them.

    The chart rules of ``import`` apply; as staff of the node's institution, the chart's
    Patient's identifiers go to its patient index as keyed hashes."""
    from medledger.crypto.keys import to_checksum_address
    from medledger.node.client import NodeClient
    from medledger.node.uploads import upload_chart
    from medledger.records.fhir_sources import Loaded, read_files

    items = list(read_files(paths))
    total = sum(len(i.entries) for i in items if isinstance(i, Loaded))
    address = to_checksum_address(patient)

    async def work() -> ChartUpload:
        async with NodeClient(node, load_key(key)) as client:
            with _bar(as_json or quiet) as bar:
                task = bar.add_task("push", total=total)
                return await _chart_mistake(upload_chart(
                    client, address, items, source_patient=source_patient,
                    progress=lambda n: bar.update(task, completed=n),
                ))  # fmt: skip

    done = asyncio.run(work())
    written, rejected = done.written, done.rejected
    if quiet:
        print("\n".join(w.record_id for w in written))
    else:
        result = {"written": [w.model_dump() for w in written],
                  "rejected": [str(r) for r in rejected],
                  **_set_aside(done.shared, done.skipped), "indexed": done.indexed}  # fmt: skip
        emit(result, as_json, f"committed {len(written)} records; rejected {len(rejected)}")
        if not as_json:
            _print_set_aside(done.shared, done.skipped)
            for w in written:
                out.print(f"  {w.record_id} v{w.version}")
            for problem in rejected:
                out.print(Text.assemble("  ", ("rejected", "red"), f" {problem}"))
    if rejected:
        raise typer.Exit(3)


@records_app.command("list")
def records_list(
    *,
    of: Annotated[
        str | None, typer.Option(help="At a node: the patient's address (default: yours).")
    ] = None,
    grant: GrantOption = None,
    patient: HomePatientOption = None,
    key: OptionalKeyOption = None,
    node: NodeOption = DEFAULT_NODE,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Every record version you may see of a patient, oldest first (metadata only).

    Yours, your patients' at your institution, or those a grant of yours covers."""

    async def run() -> list[RecordSummary]:
        async with acting(patient=patient, key=key, node=node, home=home) as target:
            return await target.records(_patient(target, of), grant)

    rows = asyncio.run(run())
    if as_json:
        print(json.dumps([r.model_dump() for r in rows]))
        return
    table = Table("record", "version", "type", "category", "author")
    for r in rows:
        table.add_row(r.record_id, str(r.version), r.resource_type, r.category, r.author)
    if rows:
        print_table(table)
    else:
        out.print("No records.")


def _patient(target: Target, of: str | None) -> Any:
    from medledger.crypto.keys import to_checksum_address

    return target.key.address if of is None else to_checksum_address(of)


async def resolve_record(target: Target, record: str, grant: str | None = None) -> str:
    """A record id from a unique prefix of it, among the records the caller may list."""
    if len(record) == 32:
        return record_bytes(record).hex()
    if not record or any(c not in "0123456789abcdef" for c in record.lower()):
        raise UsageError(f"record id {record!r} is not hex")
    rows = await target.records(target.key.address, grant)
    return unique_prefix(record, (r.record_id for r in rows), "records of yours")


@records_app.command("show")
def records_show(
    record: RecordArgument,
    *,
    version: VersionOption = None,
    patient: HomePatientOption = None,
    key: OptionalKeyOption = None,
    node: NodeOption = DEFAULT_NODE,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Decrypt one of the patient's own records and print its FHIR JSON.

    Opened with the patient's key, after its author's signature is checked."""
    from medledger.crypto.json_numbers import json_text, parse_json
    from medledger.node.identities import PATIENT_LABEL, encryption_key
    from medledger.records.sealed import open_as_patient

    async def run() -> dict[str, Any]:
        async with acting(patient=patient, key=key, node=node, home=home) as target:
            record_id = await resolve_record(target, record)
            sealed = (await target.committed(record_id, version)).sealed
        if sealed.header.patient != target.key.address:
            raise UsageError(f"record {record_id} belongs to another patient")
        author = sealed.check()
        canonical = open_as_patient(sealed, encryption_key(target.key, PATIENT_LABEL))
        header = sealed.header
        return {"record_id": record_id, "version": header.version,
                "resource_type": header.resource_type, "category": header.category,
                "author": author, "resource": parse_json(canonical)}  # fmt: skip

    shown = asyncio.run(run())
    if as_json:
        print(json_text(shown))
        return
    err.print(f"{shown['resource_type']} record {shown['record_id']} v{shown['version']} "
              f"({shown['category']}), signed by {shown['author']}")  # fmt: skip
    print(json_text(shown["resource"], indent=True))


@records_app.command("read")
def read(
    record: RecordArgument,
    *,
    grant: Annotated[str, typer.Option(help="Your grant's id.")],
    custodians: Annotated[list[str], typer.Option("--custodian", help="Each node's URL.")],
    key: KeyOption,
    node: NodeOption = DEFAULT_NODE,
) -> None:
    """Read a record under a grant and print its FHIR JSON.

    The node serves the ciphertext, t custodians release key shares (each after a
    receipt on the ledger)."""
    from medledger.access.reader import read_record
    from medledger.crypto.keys import Address
    from medledger.node.client import NodeClient, RemoteCustodian

    reader = load_key(key)

    async def work() -> bytes:
        clients = [NodeClient(url, reader) for url in custodians]
        try:
            async with NodeClient(node, reader) as vault:
                whole = len(record) == 32
                record_id = record if whole else await _under_grant(vault, record, grant)
                committed = await vault.record(record_id, grant=grant)
            statuses = [await c.status() for c in clients]
            remote = [RemoteCustodian(c, Address(s.member))
                      for c, s in zip(clients, statuses, strict=True)]  # fmt: skip
            return await read_record(reader, bytes.fromhex(grant[2:]), committed,
                                     custodians=remote,
                                     threshold=statuses[0].custodian_threshold)  # fmt: skip
        finally:
            for client in clients:
                await client.close()

    print(asyncio.run(work()).decode())


async def _under_grant(client: NodeClient, prefix: str, grant: str) -> str:
    """The record a prefix names among those the grant covers at this node."""
    from medledger.crypto.keys import Address

    patient = Address((await client.grant(grant)).patient)
    rows = await client.records(patient, grant)
    return unique_prefix(prefix, (r.record_id for r in rows), "records under this grant")


@records_app.command("proof")
def records_proof(
    record: RecordArgument,
    *,
    version: VersionOption = None,
    patient: HomePatientOption = None,
    key: OptionalKeyOption = None,
    node: NodeOption = DEFAULT_NODE,
    home: HomeOption = None,
) -> None:
    """Print a record's proof (JSON), from its signed header up to the latest checkpoint.

    Anyone can check it without a node."""

    async def run() -> dict[str, Any]:
        async with acting(patient=patient, key=key, node=node, home=home) as target:
            whole = await resolve_record(target, record)
            # Trusting first has the node cosign a checkpoint up to the log as it stands.
            await target.trusted()
            return (await target.proof(whole, version)).to_json()

    print(json.dumps(asyncio.run(run())))


@records_app.command("check-proof")
def records_check_proof(
    path: Annotated[Path, typer.Argument(help="A proof printed by `records proof`.")],
    *,
    patient: HomePatientOption = None,
    key: OptionalKeyOption = None,
    node: NodeOption = DEFAULT_NODE,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check a record proof against the network's members and checkpoint threshold.

    The members and threshold are those genesis founded, and as later checkpoints
    proved them."""
    from medledger.records.proof import RecordProof

    try:
        proof = RecordProof.from_json(json.loads(path.read_text()))
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot read the proof {path.name}: {exc}") from None

    async def run() -> str:
        async with acting(patient=patient, key=key, node=node, home=home) as target:
            members, threshold = await target.trusted()
        return proof.verify(members, threshold)

    author = asyncio.run(run())
    result = {"ok": True, "record": proof.header.label, "author": author}
    emit(result, as_json, f"Record {proof.header.label} by {author} is in checkpoint "
         f"{proof.checkpoint.head.size}, cosigned by the consortium.")  # fmt: skip
