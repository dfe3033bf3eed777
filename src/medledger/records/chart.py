"""Whose chart a resource goes in: the rules every import applies before anything is sealed.

A chart is one patient's records at an institution's vault, sealed to that patient's
key. Files from elsewhere (another hospital's export, a Bulk Data download, a folder of
examples) often hold more than one person, and a record sealed into the wrong chart is
read by the wrong patient and judged under the wrong patient's policies. So, before an
import seals anything:

* A Bundle that is not a chart (a ``searchset``, ``history``, ``batch-response``,
  ``transaction-response`` or ``message``) refuses its whole file: its entries are
  answers about a server or a query, not one person's records as written.
* Institution-level resources (:data:`SHARED`: who works where, what a medication or a
  questionnaire is, what a code means) belong to no patient: they are not sealed into
  the chart, and the import names and counts them. A Device is one, unless it names a
  patient (an implant).
* A chart holds one Patient resource. Who the chart's patient is, in the files' own
  terms, is: the Patient source the user names (its id or ``fullUrl``); else the
  Patient the chart already holds; else the one Patient resource in the files; else the
  one patient their references name. Files that name several and say nothing of which
  is this chart's are refused whole (:class:`AmbiguousChart`). Another Patient resource,
  even of the same person, is refused: one Patient per chart.
* A resource whose ``subject``, ``patient`` or ``beneficiary`` (its own, or a contained
  resource's) names another patient is refused, naming file, resource and field, never
  a value. References are read as FHIR writes them: ``Patient/123``, an absolute URL
  ending so, either with a ``_history`` suffix; a Bundle entry's ``fullUrl`` (such as
  ``urn:uuid:``); ``#p1`` for a contained resource; a conditional
  ``Patient?identifier=system|value``; and a logical reference by ``identifier`` alone.
  A contained Patient and an identifier are this patient's only if an identifier ties
  them to the chart's patient: one of its Patient resource here, or one the
  institution's index holds for this chart (patient_index.py). What cannot be tied is
  refused, as is a reference no import could resolve. A reference to anything but a
  Patient (a Group, a Device) names no patient.

This guards against mistakes: nothing here stops a clinician who means to file a
record under the wrong patient. The portal applies the same rules in the browser
(``portal/static/js/subject-check.js``), with the lists the node serves; tests hold the
two to the same decisions. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from medledger.errors import InvalidInput, UsageError
from medledger.records.errors import InvalidRecord
from medledger.records.fhir import resource_label
from medledger.records.fhir_sources import Entry, Loaded

__all__ = [
    "ABOUT", "CHART_BUNDLES", "SHARED", "AmbiguousChart", "Chart", "Identifier",
    "SharedResource", "Sorted", "identifiers_named", "sort_chart",
]  # fmt: skip

#: The elements by which R4 resources name the person they are about.
ABOUT = ("subject", "patient", "beneficiary")
#: Bundle types whose entries are records as written: the rest answer a query or a request.
CHART_BUNDLES = frozenset({"document", "collection", "transaction", "batch"})
_SHARED_TYPES = (
    # who and where
    "Organization OrganizationAffiliation Location HealthcareService Endpoint Practitioner",
    "PractitionerRole InsurancePlan Schedule Slot Group",
    # products and substances
    "Medication MedicationKnowledge Substance SubstanceDefinition DeviceDefinition",
    "DeviceMetric BiologicallyDerivedProduct NutritionProduct MedicinalProductDefinition",
    "PackagedProductDefinition AdministrableProductDefinition ManufacturedItemDefinition",
    "Ingredient ClinicalUseDefinition RegulatedAuthorization",
    # definitions and knowledge
    "ActivityDefinition PlanDefinition Questionnaire Measure Library ObservationDefinition",
    "SpecimenDefinition ChargeItemDefinition EventDefinition Evidence EvidenceReport",
    "EvidenceVariable Citation ResearchDefinition ResearchElementDefinition ResearchStudy",
    # payments between institutions
    "PaymentNotice PaymentReconciliation",
    # terminology and conformance
    "CodeSystem ValueSet ConceptMap NamingSystem TerminologyCapabilities CapabilityStatement",
    "StructureDefinition StructureMap ImplementationGuide SearchParameter MessageDefinition",
    "OperationDefinition CompartmentDefinition GraphDefinition ExampleScenario TestScript",
    "TestReport SubscriptionTopic",
)
#: Institution-level resource types: directories, definitions, knowledge, terminology and
#: conformance. None is about one patient.
SHARED = frozenset(" ".join(_SHARED_TYPES).split())

#: An identifier as FHIR writes it: (system, value), the system empty when it has none.
Identifier = tuple[str, str]

_FHIR_ID = r"[A-Za-z0-9\-.]{1,64}"
# A literal reference, relative or absolute, with an optional version.
# \Z, not $: "$" also matches before a final newline, and "Patient/me\n" is no reference.
_LITERAL = re.compile(rf"(?:^|/)([A-Z][A-Za-z]{{1,63}})/({_FHIR_ID})(?:/_history/{_FHIR_ID})?\Z")
_CONDITIONAL = re.compile(r"^Patient\?identifier=([^&|]*)\|([^&]+)$")

ANOTHER = "names another patient than this chart's"
NOT_SHOWN = "names a contained Patient that no identifier ties to this chart's patient"
UNKNOWN_IDENTIFIER = "names a patient by an identifier not known as this chart's patient's"
TAKEN = "is an identifier the institution holds for another patient"
UNRESOLVED = "is no reference this import can resolve"
NO_CONTAINED = "names a contained resource it does not hold"
NO_ENTRY = "names a Bundle entry its file does not hold"


class AmbiguousChart(InvalidInput):
    """The files name several patients and nothing says which is this chart's."""

    def __init__(self, candidates: Sequence[str]) -> None:
        self.candidates = tuple(candidates)
        named = ", ".join(candidates[:6]) + (f" and {len(candidates) - 6} more"
                                              if len(candidates) > 6 else "")  # fmt: skip
        super().__init__(
            f"the files name {len(candidates)} patients ({named}); say which one is this "
            "chart's patient"
        )


@dataclass(frozen=True)
class Chart:
    """What the importing side knows of the chart before an import: the Patient records
    it holds (by the FHIR ids its listing shows), and which of the identifiers the files
    name the institution's index holds for this chart's patient, or for another."""

    patient_ids: frozenset[str] = frozenset()
    has_patient: bool = False
    ours: frozenset[Identifier] = frozenset()
    theirs: frozenset[Identifier] = frozenset()

    @classmethod
    def of(
        cls, patient: str, patient_records: Iterable[str | None],
        owners: Mapping[Identifier, str],
    ) -> Chart:  # fmt: skip
        """A chart from the FHIR ids of its Patient records (None for one without) and
        whom the index holds each identifier for (``patient``: this chart's)."""
        held = list(patient_records)
        return cls(
            patient_ids=frozenset(i for i in held if i is not None),
            has_patient=bool(held),
            ours=frozenset(i for i, owner in owners.items() if owner == patient),
            theirs=frozenset(i for i, owner in owners.items() if owner != patient),
        )


@dataclass(frozen=True)
class SharedResource:
    """An institution-level resource the import did not seal into the chart."""

    source: str
    resource: str


@dataclass
class Sorted:
    """An import's resources, sorted: for the chart, institution-level, refused."""

    records: list[tuple[str, object]] = field(default_factory=list)
    shared: list[SharedResource] = field(default_factory=list)
    refused: list[InvalidRecord] = field(default_factory=list)
    #: The identifiers of the chart's Patient resource as imported: for the index.
    identifiers: list[Identifier] = field(default_factory=list)


@dataclass(frozen=True)
class _Patient:
    entry: Entry
    fhir_id: str | None
    full_url: str | None
    identifiers: frozenset[Identifier]

    @property
    def key(self) -> str:
        """What makes two Patient entries one resource: its id, else the entry itself."""
        return f"id:{self.fhir_id}" if self.fhir_id is not None else f"at:{self.entry.source}"

    @property
    def label(self) -> str:
        return f"Patient/{self.fhir_id}" if self.fhir_id is not None else self.entry.source


@dataclass(frozen=True)
class _Anchor:
    """Who this chart's patient is, in the files' terms."""

    ids: frozenset[str]
    urls: frozenset[str]
    ours: frozenset[Identifier]
    theirs: frozenset[Identifier]
    #: The Patient resource of the files that is the chart's (its key), if any.
    resource: str | None

    def is_patient(self, patient: _Patient) -> bool:
        return (
            (patient.fhir_id is not None and patient.fhir_id in self.ids)
            or (patient.full_url is not None and patient.full_url in self.urls)
            or bool(patient.identifiers & self.ours)
        )


def _identifiers(value: object) -> Iterator[tuple[int, Identifier]]:
    """The identifiers (by position) of a list of FHIR Identifier elements, as far as
    each has a value."""
    for i, item in enumerate(value if isinstance(value, list) else []):
        if isinstance(item, dict) and (tied := _identifier(item)) is not None:
            yield i, tied


def _identifier(item: Mapping[str, Any]) -> Identifier | None:
    system, value = item.get("system", ""), item.get("value")
    if isinstance(system, str) and isinstance(value, str) and value:
        return system, value
    return None


def identifiers_named(files: Iterable[Loaded]) -> set[Identifier]:
    """Every identifier by which the files name a patient: what to ask an index about."""
    named: set[Identifier] = set()
    for loaded in files:
        for entry in loaded.entries:
            obj = entry.resource
            if not isinstance(obj, dict):
                continue
            for resource in (obj, *_contained(obj)):
                if resource.get("resourceType") == "Patient":
                    named.update(i for _, i in _identifiers(resource.get("identifier")))
                for _, ref in _about(resource):
                    named.update(_identifiers_of(ref))
    return named


def _identifiers_of(ref: Mapping[str, Any]) -> Iterator[Identifier]:
    item = ref.get("identifier")
    if isinstance(item, dict) and (tied := _identifier(item)) is not None:
        yield tied
    reference = ref.get("reference")
    if isinstance(reference, str) and (match := _CONDITIONAL.match(reference)):
        yield match.group(1), match.group(2)


def sort_chart(files: Sequence[Loaded], chart: Chart, source_patient: str | None = None) -> Sorted:
    """Sort an import's resources for one patient's chart (see the module's rules).

    ``source_patient`` names the files' Patient (by id or ``fullUrl``) that is this
    chart's patient. Raises :class:`AmbiguousChart` if the files name several patients
    and nothing says which; UsageError if ``source_patient`` names none of them.
    """
    result = Sorted()
    charts = []
    for loaded in files:
        other = next(((label, kind) for label, kind in loaded.bundles
                      if kind not in CHART_BUNDLES), None)  # fmt: skip
        if other is None:
            charts.append(loaded)
        else:
            result.refused.append(InvalidRecord(loaded.origin, other[0], "type",
                                                f"a {other[1]} Bundle is not a chart"))  # fmt: skip
    patients = [_patient(e) for loaded in charts for e in loaded.entries if _is_patient(e.resource)]
    anchor = _anchor(charts, patients, chart, source_patient)
    by_url = {(loaded.origin, e.full_url): e.resource
              for loaded in charts for e in loaded.entries if e.full_url is not None}  # fmt: skip
    judge = _Judge(anchor, patients, by_url)
    for loaded in charts:
        for entry in loaded.entries:
            obj = entry.resource
            if _is_patient(obj):
                refusal = _judge_patient(judge.by_source[entry.source], anchor, chart)
                if refusal is None:
                    result.records.append((entry.source, obj))
                    result.identifiers += [i for _, i in _identifiers(_field(obj, "identifier"))
                                           if i not in result.identifiers]  # fmt: skip
                else:
                    result.refused.append(refusal)
            elif _is_shared(obj):
                label = resource_label(str(_field(obj, "resourceType")), _as_dict(obj))
                result.shared.append(SharedResource(entry.source, label))
            elif (refusal := judge.resource(loaded.origin, entry)) is not None:
                result.refused.append(refusal)
            else:
                result.records.append((entry.source, obj))
    return result


def _judge_patient(patient: _Patient, anchor: _Anchor, chart: Chart) -> InvalidRecord | None:
    obj = _as_dict(patient.entry.resource)
    label = resource_label("Patient", obj)
    source = patient.entry.source
    if not anchor.is_patient(patient):
        return InvalidRecord(source, label, "", "is another patient than this chart's")
    # The chart's own Patient resource, or its next version: nothing else.
    holds = chart.has_patient or bool(chart.patient_ids)
    if patient.fhir_id not in chart.patient_ids and (holds or patient.key != anchor.resource):
        return InvalidRecord(source, label, "", "is a second Patient resource: a chart holds one")
    for i, tied in _identifiers(obj.get("identifier")):
        if tied in anchor.theirs:
            return InvalidRecord(source, label, f"identifier[{i}]", TAKEN)
    return None


def _anchor(
    files: Sequence[Loaded], patients: Sequence[_Patient], chart: Chart, source_patient: str | None
) -> _Anchor:
    ids, urls = set(chart.patient_ids), set()
    distinct = {p.key: p for p in patients}
    if source_patient is not None:
        named = [p for p in distinct.values() if source_patient in (p.fhir_id, p.full_url)]
        if not named and source_patient not in chart.patient_ids | set(_named_ids(files)):
            raise UsageError("the source patient named is no Patient of the files or the chart")
        ids.add(source_patient)
        urls.add(source_patient)
        chosen = named[0] if named else None
    elif chart.patient_ids:
        chosen = None
    elif len(distinct) > 1:
        # Those with an id first: the names a user can give back.
        ordered = sorted(distinct.values(), key=lambda p: p.fhir_id is None)
        raise AmbiguousChart([p.label for p in ordered])
    elif distinct:
        (chosen,) = distinct.values()
    else:
        chosen = None
        implied = sorted(set(_named_ids(files)))
        if len(implied) > 1:
            raise AmbiguousChart([f"Patient/{i}" for i in implied])
        ids.update(implied)
    ours = set(chart.ours)
    # The chosen Patient resource, and the files' versions of the chart's own, tie their
    # ids, fullUrls and identifiers to the chart's patient.
    for tied in distinct.values():
        if tied is chosen or tied.fhir_id in ids or tied.full_url in urls:
            ids.update([tied.fhir_id] if tied.fhir_id is not None else [])
            urls.update([tied.full_url] if tied.full_url is not None else [])
            ours |= tied.identifiers
    resource = None if chosen is None else chosen.key
    return _Anchor(frozenset(ids), frozenset(urls), frozenset(ours), chart.theirs, resource)


def _named_ids(files: Iterable[Loaded]) -> Iterator[str]:
    """The Patient ids the files' literal references name."""
    for loaded in files:
        for entry in loaded.entries:
            obj = entry.resource
            if not isinstance(obj, dict) or _is_patient(obj):
                continue
            for resource in (obj, *_contained(obj)):
                for _, ref in _about(resource):
                    reference = ref.get("reference")
                    match = _LITERAL.search(reference) if isinstance(reference, str) else None
                    if match is not None and match.group(1) == "Patient":
                        yield match.group(2)


class _Judge:
    """Whether each resource is about the chart's patient."""

    def __init__(
        self, anchor: _Anchor, patients: Sequence[_Patient],
        by_url: Mapping[tuple[str, str], object],
    ) -> None:  # fmt: skip
        self.anchor = anchor
        self.by_source = {p.entry.source: p for p in patients}
        self.by_url = by_url
        # The files' Patient resources by their FHIR id, and by the object an entry's
        # fullUrl names.
        self._by_id = {p.fhir_id: p for p in patients if p.fhir_id is not None}
        self._by_object = {id(p.entry.resource): p for p in patients}

    def resource(self, origin: str, entry: Entry) -> InvalidRecord | None:
        """Why a resource is not this chart's, or None."""
        obj = entry.resource
        if not isinstance(obj, dict):
            return None  # validation refuses it, with its reason
        label = resource_label(str(obj.get("resourceType", "Resource")), obj)
        contained = list(_contained_at(obj))
        for prefix, resource in [("", obj), *contained]:
            if prefix and resource.get("resourceType") == "Patient":
                continue  # a contained Patient is judged where it is named
            for path, ref in _about(resource):
                problem = self._reference(origin, obj, ref)
                if problem is not None:
                    where, why = problem
                    return InvalidRecord(entry.source, label, prefix + path + where, why)
        return None

    def _reference(
        self, origin: str, container: Mapping[str, Any], ref: Mapping[str, Any]
    ) -> tuple[str, str] | None:
        """Why a reference does not name the chart's patient: (sub-path, problem), or None
        if it does or names no patient."""
        item = ref.get("identifier")
        tied = _identifier(item) if isinstance(item, dict) else None
        if tied is not None and tied in self.anchor.theirs:
            return ".identifier", ANOTHER
        reference = ref.get("reference")
        if not isinstance(reference, str):
            if tied is None or ref.get("type", "Patient") != "Patient":
                return None  # a display alone, or another kind of thing
            return None if tied in self.anchor.ours else (".identifier", UNKNOWN_IDENTIFIER)
        return self._literal(origin, container, reference)

    def _literal(
        self, origin: str, container: Mapping[str, Any], reference: str
    ) -> tuple[str, str] | None:
        if reference.startswith("#"):
            target = _contained_by_id(container, reference[1:])
            if target is None:
                return (".reference", NO_CONTAINED) if reference != "#" else None
            if target.get("resourceType") != "Patient":
                return None
            held = {i for _, i in _identifiers(target.get("identifier"))}
            if held & self.anchor.theirs:
                return ".reference", ANOTHER
            return None if held & self.anchor.ours else (".reference", NOT_SHOWN)
        if (origin, reference) in self.by_url:
            patient = self._by_object.get(id(self.by_url[origin, reference]))
            return None if patient is None else self._patient(patient)
        if match := _CONDITIONAL.match(reference):
            tied = (match.group(1), match.group(2))
            if tied in self.anchor.theirs:
                return ".reference", ANOTHER
            return None if tied in self.anchor.ours else (".reference", UNKNOWN_IDENTIFIER)
        if reference.startswith("urn:"):
            return ".reference", NO_ENTRY
        match = _LITERAL.search(reference)
        if match is None:
            return ".reference", UNRESOLVED
        if match.group(1) != "Patient" or match.group(2) in self.anchor.ids:
            return None
        named = self._by_id.get(match.group(2))
        return (".reference", ANOTHER) if named is None else self._patient(named)

    def _patient(self, patient: _Patient) -> tuple[str, str] | None:
        return None if self.anchor.is_patient(patient) else (".reference", ANOTHER)


def _about(resource: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Each reference (by path) in the elements naming whom a resource is about."""
    for name in ABOUT:
        value = resource.get(name)
        if isinstance(value, dict):
            yield name, value
        elif isinstance(value, list):
            yield from ((f"{name}[{i}]", v) for i, v in enumerate(value) if isinstance(v, dict))


def _contained(obj: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield from (resource for _, resource in _contained_at(obj))


def _contained_at(obj: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    contained = obj.get("contained")
    for i, item in enumerate(contained if isinstance(contained, list) else []):
        if isinstance(item, dict):
            yield f"contained[{i}].", item


def _contained_by_id(container: Mapping[str, Any], local: str) -> Mapping[str, Any] | None:
    return next((c for c in _contained(container) if c.get("id") == local), None)


def _patient(entry: Entry) -> _Patient:
    obj = _as_dict(entry.resource)
    fhir_id = obj.get("id")
    return _Patient(entry, fhir_id if isinstance(fhir_id, str) else None, entry.full_url,
                    frozenset(i for _, i in _identifiers(obj.get("identifier"))))  # fmt: skip


def _is_patient(obj: object) -> bool:
    return isinstance(obj, dict) and obj.get("resourceType") == "Patient"


def _is_shared(obj: object) -> bool:
    if not isinstance(obj, dict):
        return False
    kind = obj.get("resourceType")
    if not isinstance(kind, str):  # validation refuses it; it must not crash the sorting
        return False
    # A Device that names a patient is theirs (an implant); any other is equipment.
    return kind in SHARED or (kind == "Device" and "patient" not in obj)


def _field(obj: object, name: str) -> object:
    return obj.get(name) if isinstance(obj, dict) else None


def _as_dict(obj: object) -> dict[str, Any]:
    return obj if isinstance(obj, dict) else {}
