"""Date parameters: the range a FHIR date covers, the elements each parameter reads,
and the prefixes that compare a searched range with a resource's.

Date parameters take the prefixes ``eq``, ``ne``, ``lt``, ``le``, ``gt``, ``ge``, ``sa``
and ``eb``; ``ap`` is refused, since its margin depends on the time of the search and
two nodes would answer it differently.

The date elements, from the R4 (4.0.1) search parameter definitions: ``date`` is
``clinical-date`` except on MedicationRequest (``medications-date``); R4 gives Condition
no ``date``, so its dates are searched with its own parameters. Elements of a type with
no date (Procedure.performedString, performedAge and performedRange,
Immunization.occurrenceString) are not searched.

| parameter | resource | element | R4 definition |
|---|---|---|---|
| `date` | AllergyIntolerance | recordedDate | clinical-date |
| `date` | AuditEvent | recorded | AuditEvent-date |
| `date` | CarePlan, CareTeam, Encounter, EpisodeOfCare, Flag | period | clinical-date |
| `date` | ClinicalImpression, Composition, FamilyMemberHistory, List | date | clinical-date |
| `date` | Consent | dateTime | clinical-date |
| `date` | DiagnosticReport | effective[x] (dateTime, Period) | clinical-date |
| `date` | Immunization | occurrence[x] (dateTime) | clinical-date |
| `date` | Observation | effective[x] (dateTime, Period, Timing, instant) | clinical-date |
| `date` | Procedure | performed[x] (dateTime, Period) | clinical-date |
| `date` | RiskAssessment | occurrence[x] (dateTime) | clinical-date |
| `date` | SupplyRequest | authoredOn | clinical-date |
| `date` | MedicationRequest | dosageInstruction.timing.event | medications-date |
| `authoredon` | MedicationRequest | authoredOn | MedicationRequest-authoredon |
| `onset-date` | Condition | onset[x] (dateTime, Period) | Condition-onset-date |
| `recorded-date` | Condition | recordedDate | Condition-recorded-date |

Dates compare as ranges (R4 search, "date"): a value covers every instant its precision
allows (``2020`` is the whole year, a dateTime to the second is that second, a Period
runs from its start's first instant to its end's last, open where a bound is missing,
a Timing from its first event or bound to its last), and so does the searched value.
With S the searched range and T the resource's: ``eq`` means S contains T, ``ne`` that
it does not, ``gt`` that T reaches past S's end, ``lt`` that T begins before S does,
``ge``/``le`` either of those or ``eq``, ``sa`` that T begins at or after S's end, ``eb``
that T ends at or before S's start. A value without a time zone (a date, or a search
value written without one) is read in UTC, so every node answers a query alike. A
resource matches a parameter when one of its values does; one with no value never does.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal

from medledger.records.fhir_search.errors import InvalidSearch, UnsupportedSearch
from medledger.records.fhir_search.found import Found
from medledger.records.fhir_search.paths import _choice, _Element, _element_values, _Kind, _plain

_NS = 1_000_000_000
_DAY_NS = 86_400 * _NS
_EPOCH_DAY = date(1970, 1, 1).toordinal()
# Beyond any instant a FHIR date can write (year 9999 is about 2.5e20 ns).
_NEG_INF = -(1 << 80)
_POS_INF = 1 << 80

_DATE_TEXT = re.compile(
    r"(?P<year>[0-9]{4})(?:-(?P<month>[0-9]{2})(?:-(?P<day>[0-9]{2})"
    r"(?:T(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2})(?::(?P<second>[0-9]{2})"
    r"(?:\.(?P<fraction>[0-9]{1,32}))?)?(?P<zone>Z|[+-][0-9]{2}:[0-9]{2})?)?)?)?"
)


@dataclass(frozen=True)
class Span:
    """The instants a date value covers: ``low <= t < high``, in ns since the epoch."""

    low: int
    high: int


def _day_span(first_day: int, end_day: int) -> Span:
    return Span((first_day - _EPOCH_DAY) * _DAY_NS, (end_day - _EPOCH_DAY) * _DAY_NS)


def _zone_ns(zone: str | None) -> int | None:
    if zone is None or zone == "Z":
        return 0
    hours, minutes = int(zone[1:3]), int(zone[4:6])
    if minutes > 59 or hours > 14 or (hours == 14 and minutes):
        return None
    offset = (hours * 3600 + minutes * 60) * _NS
    return -offset if zone[0] == "-" else offset


def _span(text: str) -> Span | None:
    """The range a FHIR date, dateTime or instant covers; None if it is not one.

    Minute precision and a missing zone are taken too (search values may use both).
    """
    parsed = _DATE_TEXT.fullmatch(text)
    if parsed is None or parsed["year"] == "0000":
        return None
    year = int(parsed["year"])
    if parsed["month"] is None:
        return _day_span(date(year, 1, 1).toordinal(), date(year, 12, 31).toordinal() + 1)
    month = int(parsed["month"])
    if not 1 <= month <= 12:
        return None
    if parsed["day"] is None:
        first = date(year, month, 1).toordinal()
        return _day_span(first, first + calendar.monthrange(year, month)[1])
    try:
        day = date(year, month, int(parsed["day"])).toordinal()
    except ValueError:
        return None
    if parsed["hour"] is None:
        return _day_span(day, day + 1)
    hour, minute, second = int(parsed["hour"]), int(parsed["minute"]), int(parsed["second"] or 0)
    offset = _zone_ns(parsed["zone"])
    if hour > 23 or minute > 59 or second > 60 or offset is None:  # 60: a leap second
        return None
    fraction = (parsed["fraction"] or "")[:9]  # finer than a nanosecond: its nanosecond
    width = 60 * _NS if parsed["second"] is None else 10 ** (9 - len(fraction))
    start = (day - _EPOCH_DAY) * _DAY_NS + (hour * 3600 + minute * 60 + second) * _NS
    start += int(fraction.ljust(9, "0")) if fraction else 0
    return Span(start - offset, start - offset + width)


def instant_text(ns: int) -> str:
    """A FHIR instant (UTC) for ns since the epoch, to the nanosecond where it has one."""
    seconds, nanos = divmod(ns, _NS)
    text = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{nanos:09d}".rstrip("0").rstrip(".") + "Z"


_I, _P, _T = _Kind.INSTANT, _Kind.PERIOD, _Kind.TIMING
_DATE_ELEMENTS: Mapping[str, Mapping[str, tuple[_Element, ...]]] = {
    "date": {
        "AllergyIntolerance": (_plain("recordedDate"),),
        "AuditEvent": (_plain("recorded"),),
        "CarePlan": (_plain("period", _P),),
        "CareTeam": (_plain("period", _P),),
        "ClinicalImpression": (_plain("date"),),
        "Composition": (_plain("date"),),
        "Consent": (_plain("dateTime"),),
        "DiagnosticReport": (_choice("effective", _I, _P),),
        "Encounter": (_plain("period", _P),),
        "EpisodeOfCare": (_plain("period", _P),),
        "FamilyMemberHistory": (_plain("date"),),
        "Flag": (_plain("period", _P),),
        "Immunization": (_choice("occurrence", _I),),
        "List": (_plain("date"),),
        "MedicationRequest": (_plain("dosageInstruction.timing.event"),),
        "Observation": (_choice("effective", _I, _P, _T),),
        "Procedure": (_choice("performed", _I, _P),),
        "RiskAssessment": (_choice("occurrence", _I),),
        "SupplyRequest": (_plain("authoredOn"),),
    },
    "authoredon": {"MedicationRequest": (_plain("authoredOn"),)},
    "onset-date": {"Condition": (_choice("onset", _I, _P),)},
    "recorded-date": {"Condition": (_plain("recordedDate"),)},
}


def _period_span(period: Any) -> Span | None:
    if not isinstance(period, Mapping):
        return None
    start, end = period.get("start"), period.get("end")
    if start is None and end is None:
        return None
    low = _span(start) if isinstance(start, str) else None
    high = _span(end) if isinstance(end, str) else None
    if (start is not None and low is None) or (end is not None and high is None):
        return None  # a bound we cannot read: better no value than a wrong one
    return Span(low.low if low else _NEG_INF, high.high if high else _POS_INF)


def _timing_span(timing: Any) -> Span | None:
    if not isinstance(timing, Mapping):
        return None
    events = timing.get("event")
    spans = [_span(e) if isinstance(e, str) else None for e in events or ()]
    repeat = timing.get("repeat")
    if isinstance(repeat, Mapping) and "boundsPeriod" in repeat:
        spans.append(_period_span(repeat["boundsPeriod"]))
    if not spans or None in spans:
        return None
    known = [s for s in spans if s is not None]
    return Span(min(s.low for s in known), max(s.high for s in known))


def _value_span(value: Any, kind: _Kind) -> Span | None:
    if kind is _Kind.PERIOD:
        return _period_span(value)
    if kind is _Kind.TIMING:
        return _timing_span(value)
    return _span(value) if isinstance(value, str) else None


def _date_spans(found: Found, parameter: str) -> list[Span]:
    if parameter == "_lastUpdated":
        return [Span(found.last_updated_ns, found.last_updated_ns + 1)]
    elements = _DATE_ELEMENTS[parameter].get(found.resource_type, ())
    spans = (
        _value_span(value, kind)
        for element in elements
        for value, kind in _element_values(found.resource, element)
    )
    return [span for span in spans if span is not None]


Prefix = Literal["eq", "ne", "lt", "le", "gt", "ge", "sa", "eb"]
_PREFIXES: Mapping[str, Prefix] = {
    "eq": "eq", "ne": "ne", "lt": "lt", "le": "le", "gt": "gt", "ge": "ge", "sa": "sa", "eb": "eb",
}  # fmt: skip


@dataclass(frozen=True)
class DateValue:
    """One value of a date parameter: its prefix and the range it covers."""

    prefix: Prefix
    span: Span

    def holds(self, target: Span) -> bool:
        s, t = self.span, target
        contains = s.low <= t.low and t.high <= s.high
        rules: dict[str, bool] = {
            "eq": contains,
            "ne": not contains,
            "gt": t.high > s.high,
            "lt": t.low < s.low,
            "ge": t.high > s.high or contains,
            "le": t.low < s.low or contains,
            "sa": t.low >= s.high,
            "eb": t.high <= s.low,
        }
        return rules[self.prefix]


def _date_value(parameter: str, text: str) -> DateValue:
    prefix: Prefix = "eq"
    if text[:2].isalpha():
        if text[:2] == "ap":
            raise UnsupportedSearch(parameter, "the prefix ap is not supported")
        if text[:2] not in _PREFIXES:
            raise InvalidSearch(parameter, "unknown prefix")
        prefix, text = _PREFIXES[text[:2]], text[2:]
    # An unencoded "+" in a URL arrives as a space: "T10:00:00 01:00" meant "+01:00".
    if re.fullmatch(r".*T[0-9:.]+ [0-9]{2}:[0-9]{2}", text):
        text = text.replace(" ", "+")
    span = _span(text)
    if span is None:
        raise InvalidSearch(parameter, "not a FHIR date, dateTime or instant")
    return DateValue(prefix, span)
