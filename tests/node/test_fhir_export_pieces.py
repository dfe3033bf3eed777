"""Bulk export's pieces in process: the kick-off's parameters, the NDJSON files, the jobs
(their bound, cancellation, expiry and failed charts, against charts read from a stand-in)
and the Groups a node keeps. The export over real nodes: test_fhir_export.py."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any, cast

import pytest

from medledger.access.delegation import Delegation, SignedDelegation
from medledger.crypto.json_numbers import parse_json
from medledger.crypto.keys import Address
from medledger.errors import TransportError, UsageError
from medledger.node.errors import NotFound
from medledger.node.fhir.charts import Charts, ServedChart
from medledger.node.fhir.export import EXPORT_DIR, ExportLimits, Exports, TooManyExports
from medledger.node.fhir.export_files import NdjsonFiles
from medledger.node.fhir.export_request import ExportRequest, InvalidExport
from medledger.node.fhir.groups import Group, GroupRegistry
from medledger.node.fhir.tokens import Session
from medledger.records.fhir_search import Found
from tests.ledger.consortium import key

HOLDER, MEMBER = key("export:holder"), key("export:member")
PATIENTS = [Address(key(f"export:patient-{n}").address) for n in range(3)]
ASYNC = "respond-async"
JAN_1_NS = 1_767_225_600 * 10**9  # 2026-01-01T00:00:00Z


def _session(app: str = "ehr", holder: Any = HOLDER) -> Session:
    delegation = Delegation.of_types(3131, MEMBER.address, app, None,
                                     int(time.time() * 1000) + 3_600_000)  # fmt: skip
    return Session(holder.address, app, "system/*.rs", SignedDelegation.sign(delegation, holder),
                   time.time_ns() + 300 * 10**9)  # fmt: skip


def _lab(n: int, at_ns: int = JAN_1_NS) -> Found:
    resource = parse_json('{"resourceType": "Observation", "status": "final", '
                          '"valueQuantity": {"value": 7.20}}')  # fmt: skip
    return Found(resource, f"{n:032x}", "1", at_ns, "labs")


class _Charts:
    """Charts as the federation would serve them; ``gate`` holds every read until set."""

    def __init__(self, found: tuple[Found, ...] = (), unreachable: tuple[str, ...] = ()) -> None:
        self.found, self.unreachable = found, unreachable
        self.gate = asyncio.Event()
        self.gate.set()
        self.failing: set[Address] = set()

    async def chart(self, session: Session, patient: Address) -> ServedChart:
        await self.gate.wait()
        if patient in self.failing:
            raise TransportError("no custodian answered")
        return ServedChart(patient, self.found, self.unreachable)


def _exports(tmp_path: Path, charts: _Charts, *, ttl_s: int = 60, jobs: int = 1) -> Exports:
    return Exports(tmp_path, cast(Charts, charts), ExportLimits(1024, ttl_s, jobs))


def _request(**params: str) -> ExportRequest:
    return ExportRequest.parse("https://node/fhir/Patient/$export", list(params.items()), ASYNC)


async def _finished(exports: Exports, session: Session, job_id: str) -> None:
    for _ in range(200):
        if exports.job(session, job_id).finished_ns is not None:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the job did not finish")


@pytest.mark.parametrize(
    ("params", "prefer", "named"),
    [
        ([], None, "Prefer"),
        ([], "handling=lenient", "Prefer"),
        ([("_outputFormat", "application/json")], ASYNC, "_outputFormat"),
        ([("_type", "Observation,Bogus")], ASYNC, "_type"),
        ([("_since", "2026-01-01")], ASYNC, "_since"),
        ([("_since", "2026-13-01T00:00:00Z")], ASYNC, "_since"),
        ([("_since", "2026-01-01T00:00:00Z"), ("_since", "2026-01-02T00:00:00Z")], ASYNC,
         "_since"),
        ([("patient", "Patient/x")], ASYNC, "patient"),
        ([("_elements", "id")], ASYNC, "_elements"),
    ],
)  # fmt: skip
def test_kick_off_parameters_that_are_refused(
    params: list[tuple[str, str]], prefer: str | None, named: str
) -> None:
    with pytest.raises(InvalidExport) as refused:
        ExportRequest.parse("u", params, prefer)
    assert named in str(refused.value)


def test_kick_off_parameters_that_are_read() -> None:
    asked = ExportRequest.parse(
        "u", [("_type", "Observation, Condition"), ("_type", "Patient"),
              ("_since", "2026-01-01T01:00:00.5+01:00"),
              ("_outputFormat", "application/fhir ndjson"), ("_format", "json")],
        "respond-async, handling=strict",
    )  # fmt: skip
    assert asked.types == {"Observation", "Condition", "Patient"}
    assert asked.since_ns == JAN_1_NS + 500_000_000
    assert asked.wants(_lab(1, JAN_1_NS + 500_000_000))
    assert not asked.wants(_lab(1, JAN_1_NS + 499_999_999))
    assert not ExportRequest("u", frozenset({"Condition"}), None).wants(_lab(1))
    assert ExportRequest.parse("u", [], ASYNC).types is None


def test_files_split_past_the_bound_and_appear_only_whole(tmp_path: Path) -> None:
    files = NdjsonFiles(tmp_path, max_bytes=200)  # a line is some 80 bytes
    labs = [dict(_lab(n).resource) for n in range(5)]
    files.write("Observation", labs[:2])
    assert [p.name for p in tmp_path.iterdir()] == ["Observation-1.ndjson.partial"]
    files.write("Observation", labs[2:])
    done = files.close()
    assert [(f.name, f.count) for f in done] == [("Observation-1.ndjson", 3),
                                                 ("Observation-2.ndjson", 2)]  # fmt: skip
    assert not list(tmp_path.glob("*.partial"))
    lines = (tmp_path / "Observation-1.ndjson").read_text().splitlines()
    assert len(lines) == 3 and '"value":7.20' in lines[0]
    assert len((tmp_path / "Observation-1.ndjson").read_bytes()) >= 200
    with pytest.raises(UsageError):
        files.write("../escape", labs)


def test_a_job_reads_each_chart_and_reports_what_failed(tmp_path: Path) -> None:
    async def scenario() -> None:
        charts = _Charts((_lab(1), _lab(2)), unreachable=("no answer from the vault at x",))
        charts.failing.add(PATIENTS[1])
        exports, session = _exports(tmp_path, charts), _session()
        job = exports.start(session, _request(), PATIENTS[:2])
        await _finished(exports, session, job.id)
        assert job.progress == "2 of 2 charts read"
        manifest = exports.manifest(job, "https://node/fhir/_export")
        assert manifest["output"] == [{"type": "Observation", "count": 2,
                                       "url": f"https://node/fhir/_export/{job.id}/"
                                       "Observation-1.ndjson"}]  # fmt: skip
        (errors,) = manifest["error"]
        assert errors["type"] == "OperationOutcome" and errors["count"] == 2
        path = exports.file(session, job.id, errors["url"].rsplit("/", 1)[1])
        issues = [json.loads(line)["issue"][0] for line in path.read_text().splitlines()]
        assert [(i["severity"], i["code"]) for i in issues] == [("warning", "incomplete"),
                                                                ("error", "transient")]
        assert PATIENTS[1] in issues[1]["diagnostics"]
        with pytest.raises(NotFound):
            exports.file(session, job.id, "../../fhir-clients.json")
        await exports.close()

    asyncio.run(scenario())


def test_jobs_at_once_are_bounded_and_belong_to_their_session(tmp_path: Path) -> None:
    async def scenario() -> None:
        charts = _Charts((_lab(1),))
        charts.gate.clear()
        exports, session = _exports(tmp_path, charts, jobs=1), _session()
        job = exports.start(session, _request(), PATIENTS)
        await asyncio.sleep(0.05)
        assert job.finished_ns is None and job.progress == "0 of 3 charts read"
        for same_principal in (_session(), _session(app="another")):
            with pytest.raises(TooManyExports) as refused:
                exports.start(same_principal, _request(), PATIENTS)
            assert refused.value.retry_after_s > 0
        exports.start(_session(holder=key("export:other")), _request(), PATIENTS)
        for stranger in (_session(app="another"), _session(holder=key("export:stranger"))):
            with pytest.raises(NotFound):
                exports.job(stranger, job.id)
        charts.gate.set()
        await _finished(exports, session, job.id)
        exports.start(session, _request(), PATIENTS)  # one finished: room for the next
        await exports.close()
        assert not (tmp_path / EXPORT_DIR).exists()

    asyncio.run(scenario())


def test_a_deleted_job_stops_and_leaves_no_file(tmp_path: Path) -> None:
    async def scenario() -> None:
        charts = _Charts((_lab(1),))
        exports, session = _exports(tmp_path, charts), _session()
        job = exports.start(session, _request(), PATIENTS[:1])
        await _finished(exports, session, job.id)
        charts.gate.clear()
        running = exports.start(session, _request(), PATIENTS)
        await asyncio.sleep(0.05)
        for deleted in (job, running):
            await exports.delete(session, deleted.id)
            assert not (tmp_path / EXPORT_DIR / deleted.id).exists()
            with pytest.raises(NotFound):
                exports.job(session, deleted.id)
        assert running.task is not None and running.task.cancelled()
        await exports.close()

    asyncio.run(scenario())


def test_a_finished_job_expires_with_its_files(tmp_path: Path) -> None:
    async def scenario() -> None:
        exports, session = _exports(tmp_path, _Charts((_lab(1),)), ttl_s=1), _session()
        job = exports.start(session, _request(), PATIENTS[:1])
        await _finished(exports, session, job.id)
        assert (tmp_path / EXPORT_DIR / job.id / "Observation-1.ndjson").exists()
        expires = exports.expires_ns(job)
        assert expires is not None and job.finished_ns is not None
        assert expires - job.finished_ns == 10**9
        await asyncio.sleep(1.3)
        assert not (tmp_path / EXPORT_DIR / job.id).exists()
        with pytest.raises(NotFound):
            exports.job(session, job.id)
        await exports.close()

    asyncio.run(scenario())


def test_a_node_removes_what_its_previous_run_left(tmp_path: Path) -> None:
    left = tmp_path / EXPORT_DIR / ("ab" * 16)
    left.mkdir(parents=True)
    (left / "Observation-1.ndjson").write_text("{}\n")
    _exports(tmp_path, _Charts())
    assert not (tmp_path / EXPORT_DIR).exists()


@pytest.mark.parametrize(
    ("name", "members", "problem"),
    [("a b", [PATIENTS[0]], "group name"), ("ab" * 16, [PATIENTS[0]], "record id"),
     ("x" * 65, [PATIENTS[0]], "group name"), ("cohort", [], "at least one"),
     ("cohort", ["0x1234"], "pseudonym")],
)  # fmt: skip
def test_groups_that_are_refused(name: str, members: list[str], problem: str) -> None:
    with pytest.raises(UsageError) as refused:
        Group.of(name, members)
    assert problem in str(refused.value)


def test_a_group_is_kept_and_shows_only_readable_members(tmp_path: Path) -> None:
    registry = GroupRegistry(tmp_path)
    registry.add(Group.of("cohort", [PATIENTS[0].lower(), PATIENTS[1], PATIENTS[0]]))
    group = registry.get("cohort")
    assert group is not None and group.members == (PATIENTS[0], PATIENTS[1])
    assert registry.get("other") is None
    resource = group.resource([PATIENTS[1], PATIENTS[2]])
    assert resource["quantity"] == 1
    assert resource["member"] == [{"entity": {"reference": f"Patient/{PATIENTS[1]}"}}]
    assert "member" not in group.resource([])
    assert [g.name for g in registry.groups()] == ["cohort"]
