"""How many requests wait for each patient's approval, in all and by requester.

The counts bound how many requests one patient can be asked to answer, and how many
of them one requester can hold open (genesis settings ``max_open_requests`` and
``max_open_per_requester``). Break-glass requests are never counted.
"""

from __future__ import annotations

from collections.abc import Mapping

from medledger.access.settings import AccessSettings
from medledger.access.state import (
    ASKED_COUNT_NS,
    ASKED_NS,
    OPEN_NS,
    AccessRequest,
    access_request,
    audit_key,
)
from medledger.crypto.keys import Address
from medledger.ledger.contracts.base import StateView, Write


def open_counts(view: StateView, patient: Address) -> dict[str, int]:
    """How many requests wait for the patient's approval: ``""`` in all, and by requester.

    Kept as counts, raised by a request and lowered when it is granted or denied before
    it lapses, so the bound costs two reads. Requests that lapse unanswered are not
    lowered: when the counts reach a limit they are recounted (:func:`recount`)."""
    return dict(view.get(OPEN_NS, patient) or {})


def recount(view: StateView, patient: Address, now_ns: int) -> dict[str, int]:
    """The open requests counted afresh, newest first, back to the first that lapsed: all
    before it lapsed too, since every request lasts as long."""
    counts: dict[str, int] = {}
    for n in range(int(view.get(ASKED_COUNT_NS, patient) or 0) - 1, -1, -1):
        entry = access_request(view, str(view.get(ASKED_NS, audit_key(patient, n))))
        if entry.lapsed(now_ns):
            break
        if entry.status == "pending" and not entry.emergency:
            counts[""] = counts.get("", 0) + 1
            counts[entry.requester] = counts.get(entry.requester, 0) + 1
    return counts


def over_limit(counts: Mapping[str, int], requester: Address, settings: AccessSettings) -> bool:
    return (
        counts.get("", 0) >= settings.max_open_requests
        or counts.get(requester, 0) >= settings.max_open_per_requester
    )


def closed(view: StateView, entry: AccessRequest, now_ns: int) -> list[Write]:
    """One open request fewer, once granted or denied. A break-glass one was never counted,
    and one that lapsed may have been recounted away already (:func:`recount`): denying it
    frees no slot, or its requester would get one more than the limit."""
    if entry.emergency or entry.lapsed(now_ns):
        return []
    patient = entry.patient
    return [Write(OPEN_NS, patient, counted(open_counts(view, patient), entry.requester, -1))]


def counted(counts: Mapping[str, int], requester: str, change: int) -> dict[str, int]:
    changed = dict(counts)
    for key in ("", requester):
        changed[key] = max(0, changed.get(key, 0) + change)
        if not changed[key]:
            del changed[key]
    return changed
