"""Charts as the FHIR API serves them: opened records as FHIR resources, kept briefly.

A record is served under the server's ids: its record id (32 hex digits) as logical id,
its version as ``meta.versionId``, its commit time as ``meta.lastUpdated``, and its
source as ``meta.source`` (the node that keeps it, with the id the author's system gave
it). The chart's patient is ``Patient/<pseudonym>``: the newest Patient record of the
chart is served under that id, and the chart's references to its patient (``subject``,
``patient``, ``beneficiary``) name it, as importing refuses references to anyone else.

Reading a chart asks the custodians for every record in it, and each release leaves
receipts: a session's chart is kept for :data:`CHART_TTL_S` seconds, in memory, so that
a client paging through a search or reading what it just found does not read it again.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from medledger.crypto.keys import Address
from medledger.node.fhir.federation import Chart, Federation, Opened
from medledger.node.fhir.tokens import Session
from medledger.records.fhir_search import Found
from medledger.records.header import RecordHeader

__all__ = ["CHART_TTL_S", "Charts", "ServedChart", "serve", "served_found"]

CHART_TTL_S = 60
_MAX_CHARTS = 256
_ABOUT = ("subject", "patient", "beneficiary")


@dataclass(frozen=True)
class ServedChart:
    patient: Address
    found: tuple[Found, ...]
    unreachable: tuple[str, ...]
    #: The record served as ``Patient/<pseudonym>``, if the chart has a Patient.
    patient_record: bytes | None = None


@dataclass(frozen=True)
class _Kept:
    until_ns: int
    grants: frozenset[str]
    chart: ServedChart


class Charts:
    def __init__(self, federation: Federation, base_url: str) -> None:
        self._federation = federation
        self._base = base_url
        # Keyed by the session's own delegation signature, which no other session has;
        # kept with the grants it was read under, which must still hold to serve it.
        self._kept: dict[tuple[bytes, Address], _Kept] = {}

    async def chart(self, session: Session, patient: Address) -> ServedChart:
        kept = self._live(session, patient)
        if kept is not None:
            return kept
        now = time.monotonic_ns()
        grants = self._federation.grants(session, patient)
        chart = _served(await self._federation.chart(session, patient), self._base)
        if len(self._kept) >= _MAX_CHARTS:
            self._kept = {k: v for k, v in self._kept.items() if v.until_ns > now}
            if len(self._kept) >= _MAX_CHARTS:
                self._kept.clear()
        key = (session.delegation.signature, patient)
        self._kept[key] = _Kept(now + CHART_TTL_S * 10**9, grants, chart)
        return chart

    def _live(self, session: Session, patient: Address) -> ServedChart | None:
        """The session's kept chart of the patient, if it is fresh and every grant it was
        read under still holds (a revocation takes effect at once)."""
        kept = self._kept.get((session.delegation.signature, patient))
        if kept is None or kept.until_ns <= time.monotonic_ns():
            return None
        if self._federation.grants(session, patient) != kept.grants:
            return None
        return kept.chart

    def _kept_record(self, session: Session, record_id: bytes) -> Found | None:
        logical_id = record_id.hex()
        for (signature, patient), kept in list(self._kept.items()):
            if signature != session.delegation.signature:
                continue
            found = next((f for f in kept.chart.found if f.logical_id == logical_id), None)
            if found is not None and self._live(session, patient) is not None:
                return found
        return None

    async def close(self) -> None:
        await self._federation.close()

    def forget(self, patient: Address) -> None:
        """Drop every kept chart of ``patient``: a write changed what each shows."""
        self._kept = {k: v for k, v in self._kept.items() if k[1] != patient}

    async def provenance(
        self, session: Session, record_id: bytes, version: int | None = None
    ) -> Found | None:
        return await self._federation.provenance(session, record_id, version)

    async def record(
        self, session: Session, record_id: bytes, version: int | None = None
    ) -> Found | None:
        """A record version; the latest is served from a kept chart that holds it, so
        reading what a search just found does not read it again."""
        if version is None:
            kept = self._kept_record(session, record_id)
            if kept is not None:
                return kept
        opened = await self._federation.record(session, record_id, version)
        if opened is None:
            return None
        return served_found(opened, opened.record.sealed.header.patient, self._base)

    async def history(self, session: Session, record_id: bytes) -> list[Found]:
        return [
            served_found(opened, opened.record.sealed.header.patient, self._base)
            for opened in await self._federation.history(session, record_id)
        ]


def _served(chart: Chart, base: str) -> ServedChart:
    patients = [o for o in chart.records if o.record.sealed.header.resource_type == "Patient"]
    newest = max(patients, key=lambda o: o.committed_ns, default=None)
    found = tuple(
        served_found(o, chart.patient, base, as_patient=o is newest) for o in chart.records
    )
    record = None if newest is None else newest.record.sealed.header.record_id
    return ServedChart(chart.patient, found, chart.unreachable, record)


def served_found(
    opened: Opened, patient: Address, base: str, *, as_patient: bool = False
) -> Found:
    vault = base.removesuffix("/fhir") if opened.vault == "local" else opened.vault
    return serve(opened.record.sealed.header, opened.body, opened.committed_ns, vault, patient,
                 as_patient=as_patient)  # fmt: skip


def serve(
    header: RecordHeader, body: Mapping[str, Any], committed_ns: int, vault_url: str,
    patient: Address, *, as_patient: bool = False,
) -> Found:  # fmt: skip
    """A record version as the API serves it (see the module's docstring)."""
    served: dict[str, Any] = dict(body)
    source = served.get("id")
    vault = vault_url.rstrip("/")
    meta = dict(served["meta"]) if isinstance(served.get("meta"), dict) else {}
    meta["source"] = f"{vault}#{header.resource_type}/{source}" if source else vault
    served["meta"] = meta
    for element in _ABOUT:
        if _names_a_patient(served.get(element)):
            served[element] = {**served[element], "reference": f"Patient/{patient}"}
    logical_id = patient if as_patient else header.record_id.hex()
    return Found(served, logical_id, str(header.version), committed_ns, header.category)


def _names_a_patient(value: object) -> bool:
    reference = value.get("reference") if isinstance(value, dict) else None
    return isinstance(reference, str) and (
        reference.startswith("Patient/") or "/Patient/" in reference
    )
