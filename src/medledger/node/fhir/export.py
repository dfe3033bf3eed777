"""Bulk export jobs (FHIR Bulk Data Access v2): charts read in the background, as NDJSON.

A job reads each patient's chart as ``$everything`` does (charts.py, federation.py):
every vault listed under the token's delegation, every record opened through the
custodians, each leaving its receipts, only what the principal's grants cover and the
token's scopes reach. It keeps what the request asks for (``export_request.py``) in
NDJSON files (``export_files.py``) in a directory of its own under the node's data
directory. A chart that fails, or that a vault left incomplete, is an OperationOutcome
in the manifest's ``error`` files, never a silent gap.

A job, its status and its files are the kick-off's principal's, through the same app:
to any other token they do not exist. Its files are deleted ``export_ttl_s`` after it
finishes, when it is deleted and when the node stops; a participant runs at most
``export_jobs_per_principal`` jobs at once. Jobs live in memory: a restarted node has
none, and removes what its previous run left when it is first asked for an export.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medledger.access.state import GRANT_NS, held_grants
from medledger.crypto.keys import Address
from medledger.errors import MedledgerError
from medledger.ledger.contracts.identity import is_subject
from medledger.ledger.store import LedgerStore
from medledger.node.errors import NotFound, RateLimited
from medledger.node.fhir.bundle import served
from medledger.node.fhir.charts import Charts
from medledger.node.fhir.export_files import ExportFile, NdjsonFiles
from medledger.node.fhir.export_request import ExportRequest
from medledger.node.fhir.outcome import Issue, operation_outcome, outcome_of
from medledger.node.fhir.tokens import Session
from medledger.records.fhir_search import instant_text

__all__ = ["ExportLimits", "Exports", "Job", "TooManyExports", "held_patients"]

log = logging.getLogger(__name__)

EXPORT_DIR = "fhir-exports"
_RETRY_AFTER_S = 10


class TooManyExports(RateLimited):
    """The participant already runs as many bulk exports as the node allows at once."""


@dataclass(frozen=True)
class ExportLimits:
    file_bytes: int
    ttl_s: int
    jobs_per_principal: int
    #: Finished exports whose files a participant keeps: a kick-off past it removes the
    #: oldest, or exports of charts kept in memory could fill the disk at no cost.
    kept_per_principal: int = 4


@dataclass
class Job:
    id: str
    principal: Address
    app: str
    request: ExportRequest
    #: When the export was asked for: what it holds was committed before (its
    #: ``transactionTime``), bar what a vault committed while it ran.
    started_ns: int
    charts: int
    read: int = 0
    output: list[ExportFile] = field(default_factory=list)
    errors: list[ExportFile] = field(default_factory=list)
    finished_ns: int | None = None
    failed: bool = False
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    def of(self, session: Session) -> bool:
        return session.principal == self.principal and session.app == self.app

    @property
    def progress(self) -> str:
        return f"{self.read} of {self.charts} charts read"


def held_patients(store: LedgerStore, holder: Address, now_ns: int) -> list[Address]:
    """Every patient whose chart ``holder`` may read now, sorted: those on whose data it
    holds a live grant (a scan of the grants: an export is rare, and the ledger keeps no
    index by holder), and the holder itself if it is a patient (an owner read)."""
    granted = set()
    for grant_id in store.keys_in(GRANT_NS):
        entry = store.get(GRANT_NS, grant_id)
        if entry is not None and entry.get("requester") == holder:
            granted.add(Address(entry["patient"]))
    readable = {p for p in granted if held_grants(store, holder, p, now_ns)}
    if is_subject(store, holder):
        readable.add(holder)
    return sorted(readable)


class Exports:
    def __init__(self, data_dir: Path, charts: Charts, limits: ExportLimits) -> None:
        self._root = data_dir / EXPORT_DIR
        self._charts = charts
        self._limits = limits
        self._jobs: dict[str, Job] = {}
        # What a previous run of the node left: jobs it no longer knows of.
        shutil.rmtree(self._root, ignore_errors=True)

    def start(self, session: Session, request: ExportRequest, patients: Sequence[Address]) -> Job:
        running = sum(1 for j in self._jobs.values()
                      if j.principal == session.principal and j.finished_ns is None)  # fmt: skip
        if running >= self._limits.jobs_per_principal:
            raise TooManyExports(
                f"{session.principal} runs {running} bulk exports, the most allowed at once",
                _RETRY_AFTER_S,
            )
        self._make_room(session.principal)
        job = Job(secrets.token_hex(16), session.principal, session.app, request,
                  time.time_ns(), len(patients))  # fmt: skip
        self._jobs[job.id] = job
        job.task = asyncio.create_task(self._run(job, session, list(patients)))
        return job

    def _make_room(self, principal: Address) -> None:
        """End the principal's oldest finished jobs past the number kept; each one's task
        removes its files as it ends."""
        finished = sorted((j for j in self._jobs.values()
                           if j.principal == principal and j.finished_ns is not None),
                          key=lambda j: j.finished_ns or 0)  # fmt: skip
        for job in finished[: max(0, len(finished) + 1 - self._limits.kept_per_principal)]:
            self._jobs.pop(job.id, None)
            if job.task is not None:
                job.task.cancel()

    def job(self, session: Session, job_id: str) -> Job:
        """The session's job; NotFound for one that is not (another's is as none)."""
        job = self._jobs.get(job_id)
        if job is None or not job.of(session):
            raise NotFound(f"no bulk export {job_id[:32]} this token may read")
        return job

    def file(self, session: Session, job_id: str, name: str) -> Path:
        job = self.job(session, job_id)
        if not any(f.name == name for f in (*job.output, *job.errors)):
            raise NotFound(f"no file {name[:64]} in bulk export {job_id[:32]}")
        return self._root / job.id / name

    async def delete(self, session: Session, job_id: str) -> None:
        """Cancel the job if it runs, and remove its files."""
        await self._remove(self.job(session, job_id))

    def manifest(self, job: Job, base: str) -> dict[str, Any]:
        """The completed job's manifest; ``base`` is where its files are served from."""

        def listed(files: Sequence[ExportFile]) -> list[dict[str, Any]]:
            return [{"type": f.type, "url": f"{base}/{job.id}/{f.name}", "count": f.count}
                    for f in files]  # fmt: skip

        return {
            "transactionTime": instant_text(job.started_ns),
            "request": job.request.url,
            "requiresAccessToken": True,
            "output": listed(job.output),
            "error": listed(job.errors),
        }

    def expires_ns(self, job: Job) -> int | None:
        return None if job.finished_ns is None else job.finished_ns + self._limits.ttl_s * 10**9

    async def close(self) -> None:
        for job in list(self._jobs.values()):
            await self._remove(job)
        await asyncio.to_thread(shutil.rmtree, self._root, True)

    async def _run(self, job: Job, session: Session, patients: list[Address]) -> None:
        directory = self._root / job.id
        files = await asyncio.to_thread(NdjsonFiles, directory, self._limits.file_bytes)
        try:
            for patient in patients:
                kept, problems = await self._chart(session, patient, job.request)
                await asyncio.to_thread(_write, files, kept, problems)
                job.read += 1
            done = await asyncio.to_thread(files.close)
        except asyncio.CancelledError:
            files.discard()
            raise
        except Exception:
            # Not one chart's failure (those are in the manifest's errors): the job's.
            log.exception("bulk export %s failed", job.id)
            files.discard()
            job.failed = True
            done = []
        job.output = [f for f in done if f.name.split("-")[0] != _ERRORS]
        job.errors = [f for f in done if f.name.split("-")[0] == _ERRORS]
        job.finished_ns = time.time_ns()
        # The session holds the participant's key: not kept while the files wait.
        del session, patients
        try:
            await asyncio.sleep(self._limits.ttl_s)
        finally:
            self._jobs.pop(job.id, None)
            await asyncio.to_thread(shutil.rmtree, directory, True)

    async def _chart(
        self, session: Session, patient: Address, request: ExportRequest
    ) -> tuple[list[dict[str, Any]], list[Issue]]:
        """What the request asks for of one chart, and what went wrong reading it."""
        if session.revoked.is_set():
            return [], [Issue("error", "expired", f"Patient/{patient}: the token was revoked")]
        try:
            chart = await self._charts.chart(session, patient)
        except MedledgerError as exc:
            _, outcome = outcome_of(exc)
            code = outcome["issue"][0]["code"]
            return [], [Issue("error", code, f"Patient/{patient}: {exc}")]
        kept = [served(f) for f in chart.found if request.wants(f)]
        problems = [Issue("warning", "incomplete", f"Patient/{patient}: {why}")
                    for why in chart.unreachable]  # fmt: skip
        return kept, problems

    async def _remove(self, job: Job) -> None:
        self._jobs.pop(job.id, None)
        if job.task is not None and job.task is not asyncio.current_task():
            job.task.cancel()
            await asyncio.gather(job.task, return_exceptions=True)
        await asyncio.to_thread(shutil.rmtree, self._root / job.id, True)


_ERRORS = "errors"


def _write(files: NdjsonFiles, kept: list[dict[str, Any]], problems: list[Issue]) -> None:
    by_type: dict[str, list[dict[str, Any]]] = {}
    for resource in kept:
        by_type.setdefault(str(resource["resourceType"]), []).append(resource)
    for kind, resources in by_type.items():
        files.write(kind, resources)
    if problems:
        files.write(_ERRORS, [operation_outcome([issue]) for issue in problems])
