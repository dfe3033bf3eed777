"""What a search runs over: one version of a record the caller may read, opened."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from medledger.errors import UsageError

#: The code system of medledger's data categories, as access/consent.py writes them.
DATA_CATEGORY_SYSTEM = "urn:medledger:data-category"
_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


@dataclass(frozen=True)
class Found:
    """One version of a record the caller may read, opened: its resource as
    ``json_numbers.parse_json`` read it, the logical and version ids the server knows it
    by, when that version was stored (ns since the epoch) and its data category."""

    resource: Mapping[str, Any]
    logical_id: str
    version_id: str
    last_updated_ns: int
    category: str

    def __post_init__(self) -> None:
        # Both ids go into URLs (fullUrl, links): a stray character would change them.
        if not (_FHIR_ID.fullmatch(self.logical_id) and _FHIR_ID.fullmatch(self.version_id)):
            raise UsageError("a found resource needs a FHIR id and version id")
        if not isinstance(self.resource.get("resourceType"), str):
            raise UsageError("a found resource needs a resourceType")

    @property
    def resource_type(self) -> str:
        return str(self.resource["resourceType"])
