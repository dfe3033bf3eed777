"""FHIR Bundles the node answers with: search results, histories, batch and transaction
responses.

Pages are cut from the matches the caller may see, recomputed at every request, and the
page token (``_page_token``) is only an offset into them. It grants nothing, so it needs
no MAC: a forged or edited offset names another page of what the caller may see anyway.
Its name stays opaque so that it can carry more later (a cursor) without changing
clients. An offset has a known weakness: a record stored between two requests for pages
shifts the pages after it by one.

A resource is served with the id and version the server knows it by (``meta.versionId``,
``meta.lastUpdated``), as FHIR servers do; the rest of its ``meta`` is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import quote, urlencode

from medledger.errors import UsageError
from medledger.node.fhir.outcome import outcome_of
from medledger.records.fhir_search import Found, InvalidSearch, Query, instant_text, subset
from medledger.records.header import FIRST_VERSION

__all__ = [
    "PAGE_PARAM",
    "EntryResult",
    "batch_response",
    "full_url",
    "history",
    "page_offset",
    "searchset",
    "served",
    "transaction_response",
]

PAGE_PARAM = "_page_token"
_MAX_OFFSET = 10**9


def page_offset(token: str | None) -> int:
    """The offset a page token names (0 without one); raises :class:`InvalidSearch`."""
    if token is None:
        return 0
    if not (token.isascii() and token.isdigit() and len(token) <= 10) or (
        len(token) > 1 and token[0] == "0"
    ):
        raise InvalidSearch(PAGE_PARAM, "not a page token of this server")
    offset = int(token)
    if offset > _MAX_OFFSET:
        raise InvalidSearch(PAGE_PARAM, "not a page token of this server")
    return offset


def _base(base: str) -> str:
    # fullUrl must be absolute, and links are followed as given.
    if not base.startswith(("https://", "http://")) or "?" in base or "#" in base:
        raise UsageError("the FHIR base must be an absolute http(s) URL")
    return base.rstrip("/")


def full_url(base: str, found: Found) -> str:
    return f"{_base(base)}/{found.resource_type}/{found.logical_id}"


def served(found: Found) -> dict[str, Any]:
    """The resource as the server shows it: its logical id, version and time."""
    meta = found.resource.get("meta")
    meta = dict(meta) if isinstance(meta, Mapping) else {}
    meta.update(versionId=found.version_id, lastUpdated=instant_text(found.last_updated_ns))
    return {**found.resource, "id": found.logical_id, "meta": meta}


def _url(base: str, endpoint: str, params: Sequence[tuple[str, str]]) -> str:
    path = f"{_base(base)}/{endpoint}" if endpoint else _base(base)
    return f"{path}?{urlencode(params, quote_via=quote, safe=',|:')}"


def _links(
    link_to: Callable[[int], str], offset: int, count: int, total: int
) -> list[dict[str, str]]:
    links = [{"relation": "self", "url": link_to(offset)}]
    if count == 0:
        return links
    links.append({"relation": "first", "url": link_to(0)})
    if offset > 0:
        links.append({"relation": "previous", "url": link_to(max(0, offset - count))})
    if offset + count < total:
        links.append({"relation": "next", "url": link_to(offset + count)})
    return links


def _with_page(params: list[tuple[str, str]], offset: int) -> list[tuple[str, str]]:
    return [*params, (PAGE_PARAM, str(offset))] if offset else params


def searchset(matches: Sequence[Found], *, query: Query, base: str, offset: int) -> dict[str, Any]:
    """The searchset Bundle of one page: ``matches`` is every match the caller may see,
    in order (``fhir_search.search``), so ``total`` counts them all; the page is the
    query's ``_count`` of them from ``offset``, with links to the pages around it."""
    params = query.params()
    endpoint = query.resource_type or ""
    count = 0 if query.summary_count else query.count

    def link_to(at: int) -> str:
        return _url(base, endpoint, _with_page(params, at))

    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(matches),
        "link": _links(link_to, offset, count, len(matches)),
    }
    page = matches[offset : offset + count]
    if page:
        bundle["entry"] = [_match(found, base, query.elements) for found in page]
    return bundle


def _match(found: Found, base: str, elements: Sequence[str] | None) -> dict[str, Any]:
    resource = served(found)
    if elements is not None:
        resource = subset(resource, elements)
    return {"fullUrl": full_url(base, found), "resource": resource, "search": {"mode": "match"}}


def history(
    versions: Sequence[Found], *, base: str, endpoint: str, count: int, offset: int
) -> dict[str, Any]:
    """A history Bundle of one page of these versions, newest first; ``endpoint`` is what
    was asked (``Observation/x/_history``, ``Observation/_history``, ``_history``).

    Records carry the ids their authors gave them, so every version is, in FHIR's terms,
    a PUT at ``Type/id``: the first created it (201), the others updated it (200).
    """
    ordered = sorted(
        versions,
        key=lambda f: (-f.last_updated_ns, f.resource_type, f.logical_id, f.version_id),
    )

    def link_to(at: int) -> str:
        return _url(base, endpoint, _with_page([("_count", str(count))], at))

    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "history",
        "total": len(ordered),
        "link": _links(link_to, offset, count, len(ordered)),
    }
    page = ordered[offset : offset + count]
    if page:
        bundle["entry"] = [_version(found, base) for found in page]
    return bundle


def _version(found: Found, base: str) -> dict[str, Any]:
    first = found.version_id == str(FIRST_VERSION)
    return {
        "fullUrl": full_url(base, found),
        "resource": served(found),
        "request": {"method": "PUT", "url": f"{found.resource_type}/{found.logical_id}"},
        "response": {
            "status": _status(HTTPStatus.CREATED if first else HTTPStatus.OK),
            "etag": f'W/"{found.version_id}"',
            "lastModified": instant_text(found.last_updated_ns),
        },
    }


def _status(status: int) -> str:
    return f"{status} {HTTPStatus(status).phrase}"


@dataclass(frozen=True)
class EntryResult:
    """What became of one entry of a batch or transaction: its ``response`` element."""

    status: int
    location: str | None = None
    etag: str | None = None
    last_modified_ns: int | None = None
    outcome: Mapping[str, Any] | None = None

    @classmethod
    def stored(cls, found: Found, base: str, *, created: bool) -> EntryResult:
        """A version written: where it is, its version and when."""
        return cls(
            status=HTTPStatus.CREATED if created else HTTPStatus.OK,
            location=f"{full_url(base, found)}/_history/{found.version_id}",
            etag=f'W/"{found.version_id}"',
            last_modified_ns=found.last_updated_ns,
        )

    @classmethod
    def refused(cls, exc: BaseException) -> EntryResult:
        """An entry refused: the status and OperationOutcome of its error."""
        status, outcome = outcome_of(exc)
        return cls(status=status, outcome=outcome)

    def to_json(self) -> dict[str, Any]:
        response: dict[str, Any] = {"status": _status(self.status)}
        if self.location is not None:
            response["location"] = self.location
        if self.etag is not None:
            response["etag"] = self.etag
        if self.last_modified_ns is not None:
            response["lastModified"] = instant_text(self.last_modified_ns)
        if self.outcome is not None:
            response["outcome"] = dict(self.outcome)
        return {"response": response}


def batch_response(results: Sequence[EntryResult]) -> dict[str, Any]:
    """A batch-response Bundle: one entry per request entry, in the same order."""
    return _response_bundle("batch-response", results)


def transaction_response(results: Sequence[EntryResult]) -> dict[str, Any]:
    """A transaction-response Bundle: every entry succeeded (a transaction that failed is
    answered with one OperationOutcome instead, as the whole of it is refused)."""
    if any(r.status >= 400 for r in results):
        raise UsageError("a failed transaction is answered with an OperationOutcome")
    return _response_bundle("transaction-response", results)


def _response_bundle(kind: str, results: Sequence[EntryResult]) -> dict[str, Any]:
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": kind}
    if results:
        bundle["entry"] = [result.to_json() for result in results]
    return bundle
