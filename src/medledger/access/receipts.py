"""Receipts: each custodian's entry on the ledger for the share it releases to a read.

A custodian appends one before it opens its share (access/custodian.py), and it
carries what lets every node check it alone, so that no custodian can log a read
nobody asked for, or misname what was read:

* the record's header, salt and author signature, from which the node recovers the
  author and recomputes the commitment: the record id, version, type, category and
  author the audit shows are the ones the author signed, and the grant must cover
  them (that the commitment is in a committed batch, each custodian checks in its
  own log before it writes);
* the reader's signed release request (access/release.py) for this grant and this
  commitment, unexpired: the holder of the grant asked for this very record. Its
  digest names the read, so the t receipts of one read make one row of the
  patient's audit (access/audit.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from medledger.access.errors import ApprovalExpired, BadApproval, OutOfScope
from medledger.access.release import Release
from medledger.access.state import (
    AUDIT_COUNT_NS,
    AUDIT_NS,
    RECEIPT_NS,
    append,
    holding_grant,
)
from medledger.crypto.errors import InvalidSignature
from medledger.errors import InvalidInput
from medledger.ledger.contracts import fields as p
from medledger.ledger.contracts.base import Handler, StateView, TxContext, Write
from medledger.ledger.contracts.identity import participant_of
from medledger.ledger.contracts.membership import member_of, require_member
from medledger.ledger.errors import Conflict, InvalidPayload
from medledger.ledger.timestamps import NS_PER_MS, NS_PER_S
from medledger.records.header import RecordHeader
from medledger.records.sealed import SALT_SIZE, record_commitment

RECEIPT = "access.receipt"
#: ``read/custodian`` -> the receipt that custodian logged for that read.
READ_NS = "access.read"
#: How far ahead a release request may expire: long enough for one read's round trips.
MAX_RELEASE_LIFETIME_NS = 10 * 60 * NS_PER_S
SIGNATURE_SIZE = 65


def receipt_payload(
    grant: bytes, *, header: RecordHeader, signature: bytes, salt: bytes, release: Release,
    asked: bytes,
) -> dict[str, Any]:  # fmt: skip
    """What a custodian submits for the share it is about to release: the record as its
    author signed it (``signature`` over ``header``, ``salt`` of the commitment), and the
    reader's ``release`` with their signature ``asked``."""
    return {
        "grant": "0x" + grant.hex(),
        "header": header.to_json(),
        "signature": "0x" + signature.hex(),
        "salt": "0x" + salt.hex(),
        "release": {
            "reader_key": "0x" + release.reader_key.hex(),
            "not_after_ms": release.not_after_ms,
            "signature": "0x" + asked.hex(),
        },
    }


def receipt(ctx: TxContext, view: StateView) -> list[Write]:
    require_member(view, ctx.sender)
    grant_key = "0x" + p.hex_bytes(ctx.payload, "grant", 32).hex()
    header = _header(ctx.payload)
    if header.network_id != ctx.network_id:
        raise InvalidPayload("header: a record of another network")
    salt = p.hex_bytes(ctx.payload, "salt", SALT_SIZE)
    signature = p.hex_bytes(ctx.payload, "signature", SIGNATURE_SIZE)
    try:
        author = header.author(signature)
    except InvalidSignature as exc:
        raise InvalidPayload(f"header: {exc}") from None
    # A header altered after signing still recovers an address, just nobody's: only the
    # patient themself, or someone who has held a role on this ledger, writes a record.
    if author != header.patient and participant_of(view, author) is None and (
        member_of(view, author) is None
    ):
        raise InvalidPayload("header: not signed by anyone who could write a record")
    commitment = record_commitment(salt, header.digest, signature)
    record = "0x" + commitment.hex()
    grant = holding_grant(view, grant_key, ctx.timestamp_ns)
    if header.patient != grant.patient or not grant.covers(header.category, record):
        raise OutOfScope(f"record {header.label} is not covered by grant {grant_key}")
    read = _release(ctx, grant_key, commitment, grant.requester)
    read_hex = "0x" + read.digest.hex()
    # One receipt per custodian per read: a custodian cannot pad a read's row, nor a
    # reader fold a later read into an earlier one by reusing its release.
    once = f"{read_hex}/{ctx.sender}"
    if view.get(READ_NS, once) is not None:
        raise Conflict(f"custodian {ctx.sender} already logged read {read_hex}")
    entry: dict[str, Any] = {
        "receipt": "0x" + ctx.tx_id.hex(),
        "read": read_hex,
        "grant": grant_key,
        "reader": grant.requester,
        "record": record,
        "record_id": header.record_id.hex(),
        "version": header.version,
        "resource_type": header.resource_type,
        "author": author,
        "category": header.category,
        "purpose": grant.purpose,
        "custodian": ctx.sender,
        "index": ctx.index,
        "timestamp_ns": ctx.timestamp_ns,
        # Every read under break-glass is flagged for review.
        "emergency": grant.emergency,
    }
    return [
        Write(RECEIPT_NS, entry["receipt"], entry),
        Write(READ_NS, once, entry["receipt"]),
        *append(view, AUDIT_NS, AUDIT_COUNT_NS, grant.patient, entry),
    ]


def _header(payload: Mapping[str, Any]) -> RecordHeader:
    document = p.field(payload, "header")
    if not isinstance(document, Mapping):
        raise InvalidPayload("header: expected an object")
    try:
        return RecordHeader.from_json(document)
    except InvalidInput as exc:
        raise InvalidPayload(str(exc)) from None


def _release(ctx: TxContext, grant_key: str, commitment: bytes, holder: str) -> Release:
    """The grant holder's signed, unexpired request for this record."""
    asked = p.field(ctx.payload, "release")
    if not isinstance(asked, Mapping):
        raise InvalidPayload("release: expected an object")
    release = Release(
        ctx.network_id,
        bytes.fromhex(grant_key[2:]),
        commitment,
        p.hex_bytes(asked, "reader_key", 32),
        p.integer(asked, "not_after_ms", minimum=0, maximum=2**64 - 1),
    )
    try:
        reader = release.signer(p.hex_bytes(asked, "signature", SIGNATURE_SIZE))
    except InvalidSignature as exc:
        raise BadApproval(f"release request: {exc}") from None
    if reader != holder:
        raise BadApproval("release request not signed by the grant's holder")
    if release.not_after_ms * NS_PER_MS < ctx.timestamp_ns:
        raise ApprovalExpired("release request expired")
    if release.not_after_ms * NS_PER_MS > ctx.timestamp_ns + MAX_RELEASE_LIFETIME_NS:
        raise BadApproval("release request lives too long: one read, not a standing order")
    return release


HANDLERS: dict[str, Handler] = {RECEIPT: receipt}
