"""Content negotiation for the FHIR API: FHIR JSON, and nothing else.

A client names the format with ``_format`` (which wins, for clients that cannot set
headers) or ``Accept``. We serve JSON only; asking for XML (or anything else) alone is
refused with 406, answered as an OperationOutcome (``outcome.py``). Bodies are written
with ``json_text`` so that decimals go out with the digits they were written with.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from medledger.crypto.json_numbers import json_text
from medledger.errors import InvalidInput

__all__ = ["FHIR_JSON", "FORMAT_PARAM", "MEDIA_TYPE", "NotAcceptable", "fhir_body", "negotiate"]

FHIR_JSON = "application/fhir+json"
#: The Content-Type of every FHIR answer.
MEDIA_TYPE = f"{FHIR_JSON}; charset=utf-8"
FORMAT_PARAM = "_format"

# "application/fhir json": a "+" a client left unencoded in the URL arrives as a space.
_JSON_FORMATS = frozenset({"json", "application/json", FHIR_JSON, "application/fhir json"})
_JSON_RANGES = frozenset({FHIR_JSON, "application/json", "application/*", "*/*"})


class NotAcceptable(InvalidInput):
    """The client accepts no format we serve."""


def negotiate(format_param: str | None, accept: str | None) -> str:
    """The media type to answer with, from ``_format`` or else the Accept header; raises
    :class:`NotAcceptable` if the client accepts no JSON."""
    if format_param is not None:
        if format_param.strip().lower() not in _JSON_FORMATS:
            raise NotAcceptable("_format: only json is served (application/fhir+json)")
        return MEDIA_TYPE
    if accept is None or not accept.strip():
        return MEDIA_TYPE
    if any(_acceptable(media_range) for media_range in accept.split(",")):
        return MEDIA_TYPE
    raise NotAcceptable("Accept: only application/fhir+json or application/json is served")


def _acceptable(media_range: str) -> bool:
    kind, *params = (part.strip().lower() for part in media_range.split(";"))
    if kind not in _JSON_RANGES:
        return False
    for param in params:
        name, _, value = param.partition("=")
        if name.strip() == "q":
            try:
                return float(value) > 0
            except ValueError:
                return False
    return True


def fhir_body(resource: Mapping[str, Any]) -> bytes:
    """A resource as the bytes of a FHIR JSON body (UTF-8, decimals as written)."""
    return json_text(resource).encode()
