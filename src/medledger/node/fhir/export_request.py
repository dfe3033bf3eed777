"""A bulk export's kick-off request (FHIR Bulk Data Access v2, the async pattern), parsed.

The client must ask for the async pattern (``Prefer: respond-async``). ``_type`` narrows
the resource types (a comma list; repeated, the lists add up), ``_since`` keeps what
was committed at or after an instant, and ``_outputFormat`` may name NDJSON only. Any
other parameter is refused, never ignored: an export that quietly covered more than
asked would be read as the answer to the question asked.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from medledger.node.fhir.capability import Operation
from medledger.records.fhir import is_resource_type
from medledger.records.fhir_search import Found, InvalidSearch

__all__ = ["EXPORT_OPERATIONS", "NDJSON", "ExportRequest", "InvalidExport"]

NDJSON = "application/fhir+ndjson"
# "application/fhir ndjson": a "+" a client left unencoded in the URL arrives as a space.
_OUTPUT_FORMATS = frozenset({NDJSON, "application/ndjson", "ndjson", "application/fhir ndjson"})
_FORMAT = "_format"  # content negotiation of the kick-off's own answers (content.py)
_BULK = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/"
#: The operations a CapabilityStatement declares, by resource type.
EXPORT_OPERATIONS = {
    "Patient": (Operation("export", _BULK + "patient-export"),),
    "Group": (Operation("export", _BULK + "group-export"),),
}
_INSTANT = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d{1,9})?(Z|[+-]\d\d:\d\d)")


class InvalidExport(InvalidSearch):
    """A kick-off request this server does not run: no ``Prefer: respond-async``, an
    output format other than NDJSON, an unknown type or parameter, a malformed _since."""


@dataclass(frozen=True)
class ExportRequest:
    #: The kick-off URL as the client made it (the manifest's ``request``).
    url: str
    #: The resource types asked for; None: every type.
    types: frozenset[str] | None
    #: Only resources committed at or after this time (ns since the epoch).
    since_ns: int | None

    @classmethod
    def parse(
        cls, url: str, params: Sequence[tuple[str, str]], prefer: str | None
    ) -> ExportRequest:
        asked = {p.strip().lower() for p in (prefer or "").split(",")}
        if "respond-async" not in asked:
            raise InvalidExport("", "a bulk export needs the header Prefer: respond-async")
        types: set[str] | None = None
        since: int | None = None
        for name, value in params:
            if name == "_type":
                types = (types or set()) | _types(value)
            elif name == "_since":
                if since is not None:
                    raise InvalidExport(name, "given once at most")
                since = _instant_ns(value)
            elif name == "_outputFormat":
                if value.strip().lower() not in _OUTPUT_FORMATS:
                    raise InvalidExport(name, f"only {NDJSON} is written")
            elif name != _FORMAT:
                raise InvalidExport(name, "not a bulk export parameter this server implements")
        return cls(url, None if types is None else frozenset(types), since)

    def wants(self, found: Found) -> bool:
        """Whether a resource the token may read belongs in this export."""
        if self.types is not None and found.resource_type not in self.types:
            return False
        return self.since_ns is None or found.last_updated_ns >= self.since_ns


def _types(value: str) -> set[str]:
    named = {t.strip() for t in value.split(",")}
    unknown = sorted(t for t in named if not is_resource_type(t))
    if unknown:
        raise InvalidExport("_type", f"not R4 resource types: {', '.join(unknown)[:200]}")
    return named


def _instant_ns(value: str) -> int:
    """A FHIR instant (a time with its zone) as ns since the epoch."""
    match = _INSTANT.fullmatch(value.strip())
    if match is None:
        raise InvalidExport("_since", "an instant with its zone: YYYY-MM-DDThh:mm:ss[.fff]Z")
    seconds, fraction, zone = match.groups()
    try:
        moment = datetime.fromisoformat(seconds + zone)
    except ValueError:
        raise InvalidExport("_since", "not a date and time that exists") from None
    return int(moment.timestamp()) * 10**9 + int((fraction or ".").ljust(10, "0")[1:])
