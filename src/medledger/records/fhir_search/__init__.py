"""FHIR R4 search over resources already opened in memory.

A node answers a FHIR search over the records a caller may read once they are decrypted:
there is no index to ask, so a search is a filter and a sort over :class:`Found` items.
:func:`parse_query` turns a URL's parameters into a typed :class:`Query` and refuses
what it does not support rather than ignore it, since a search that drops a criterion
returns records nobody asked for; :func:`matches` and :func:`search` apply it. A
repeated parameter is an AND, comma-separated values an OR; a known parameter with an
empty value is ignored, as the specification says. Refusals are :class:`InvalidSearch`
(a value is malformed) or :class:`UnsupportedSearch` (a parameter, modifier or prefix
we do not implement); they name the parameter, never its value, which may describe a
patient.

| parameter | type | matched against |
|---|---|---|
| `_id` | token | the logical id |
| `_lastUpdated` | date | when this version was stored (``Found.last_updated_ns``) |
| `date`, `authoredon`, `onset-date`, `recorded-date` | date | the elements tabled in ``dates.py`` |
| `code` | token | the codings of the elements listed in ``tokens.py`` (`:text`: their texts) |
| `category` | token | the codings (or codes) of the top-level `category`; the data category |
| `identifier` | token | the top-level `identifier` (system and value) |
| `subtype` | token | AuditEvent.subtype (AuditEvent only) |
| `patient`, `subject` | reference | nothing here: see :attr:`Query.patients` |
| `_type` | | the resource types searched (in a search across types only) |
| `_count`, `_sort` | | the page size (bounded); `_lastUpdated` or `date`, `-` descending |
| `_summary`, `_elements` | | `count` (or `false`); the top-level elements returned |

A record's data category (``Found.category``) is a `category` code under
:data:`DATA_CATEGORY_SYSTEM`, or under no system. A record's chart is known from the
ledger, not from the resource, so the caller keeps only the records of the patients a
query names (``Patient/[id]`` or ``[id]``).

The search is cut by what each part does: the item searched (``found.py``), the
refusals (``errors.py``), the walk to an element (``paths.py``), date and token values
and the elements each parameter reads (``dates.py``, ``tokens.py``), one criterion each
(``clauses.py``), the parsed query (``query.py``), applying it (``matching.py``) and
what a CapabilityStatement declares (``parameters.py``).
"""

from __future__ import annotations

from medledger.records.fhir_search.dates import DateValue, Span, instant_text
from medledger.records.fhir_search.errors import InvalidSearch, UnsupportedSearch
from medledger.records.fhir_search.found import DATA_CATEGORY_SYSTEM, Found
from medledger.records.fhir_search.matching import SUBSETTED, matches, search, subset
from medledger.records.fhir_search.parameters import Parameter, parameters_for
from medledger.records.fhir_search.query import (
    DEFAULT_LIMITS,
    Query,
    SearchLimits,
    SortKey,
    parse_query,
)
from medledger.records.fhir_search.tokens import Token

__all__ = [
    "DATA_CATEGORY_SYSTEM",
    "DEFAULT_LIMITS",
    "SUBSETTED",
    "DateValue",
    "Found",
    "InvalidSearch",
    "Parameter",
    "Query",
    "SearchLimits",
    "SortKey",
    "Span",
    "Token",
    "UnsupportedSearch",
    "instant_text",
    "matches",
    "parameters_for",
    "parse_query",
    "search",
    "subset",
]
