"""Receipts: each custodian's entry on the ledger for the shares it releases to a read.

A custodian appends one before it opens its shares (access/custodian.py): one receipt
for every record of one release, so a query costs each custodian one transaction per
:data:`~medledger.access.release.MAX_RELEASE_RECORDS` records, not one per record. It
carries what lets every node check it alone, so that no custodian can log a read
nobody asked for, or misname what was read:

* each record's header, salt and author signature, from which the node recovers the
  author and recomputes the commitment: the record id, version, type, category and
  author the audit shows are the ones the author signed, and the grant must cover
  them (that each commitment is in a committed batch, each custodian checks in its
  own log before it writes);
* the reader's signed release request (access/release.py) for this grant and exactly
  these commitments (their RFC 6962 root and count), unexpired: the holder of the
  grant asked for these very records. Its digest names the read, so the t receipts
  of one read make one row per record of the patient's audit (access/audit.py).

An owner read (access/owner.py) names no grant: the release must then be the
patient's or a guardian's (or their node's, under their delegation), and the receipt
names them as reader.

A record travels compactly (the ledger caps a transaction at 64 KiB): its fixed-size
fields as one base64 string (:func:`pack_record`), its type and category as text; the
network and the patient are the receipt's own.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from medledger.access.delegation import SignedDelegation, digest_of
from medledger.access.errors import ApprovalExpired, BadApproval, OutOfScope
from medledger.access.owner import PURPOSE as OWNER_PURPOSE
from medledger.access.owner import OwnerRead, reader_of
from medledger.access.release import MAX_RELEASE_RECORDS, OWNER_READ, Release
from medledger.access.state import (
    AUDIT_COUNT_NS,
    AUDIT_NS,
    RECEIPT_NS,
    Grant,
    append,
    holding_grant,
)
from medledger.crypto.errors import InvalidSignature
from medledger.crypto.keys import Address
from medledger.errors import InvalidInput, UsageError
from medledger.ledger.contracts import fields as p
from medledger.ledger.contracts.base import Handler, StateView, TxContext, Write
from medledger.ledger.contracts.identity import participant_of
from medledger.ledger.contracts.membership import member_of, require_member
from medledger.ledger.errors import Conflict, InvalidPayload
from medledger.ledger.timestamps import NS_PER_MS, NS_PER_S
from medledger.records.header import DIGEST_SIZE, RECORD_ID_SIZE, RecordHeader
from medledger.records.sealed import SALT_SIZE, record_commitment

RECEIPT = "access.receipt"
#: ``read/custodian`` -> the receipt that custodian logged for that read.
READ_NS = "access.read"
#: How far ahead a release request may expire: long enough for one read's round trips.
MAX_RELEASE_LIFETIME_NS = 10 * 60 * NS_PER_S
SIGNATURE_SIZE = 65


_FIXED = RECORD_ID_SIZE + 4 + 4 * DIGEST_SIZE + SIGNATURE_SIZE + SALT_SIZE


class Signed(Protocol):
    """A record as its author signed it, with the salt of its commitment."""

    @property
    def header(self) -> RecordHeader: ...

    @property
    def signature(self) -> bytes: ...

    @property
    def salt(self) -> bytes: ...


def pack_record(record: Signed) -> list[str]:
    """A record in a receipt: ``[fixed fields (base64), resourceType, category]``."""
    h = record.header
    fixed = (h.record_id + h.version.to_bytes(4, "big") + h.previous + h.content + h.ciphertext
             + h.keys + record.signature + record.salt)  # fmt: skip
    return [base64.b64encode(fixed).decode(), h.resource_type, h.category]


def unpack_record(
    entry: object, network_id: int, patient: Address
) -> tuple[RecordHeader, bytes, bytes]:
    """The header, author signature and salt of a packed record; InvalidPayload if malformed."""
    if not (isinstance(entry, list) and len(entry) == 3 and all(isinstance(e, str) for e in entry)):
        raise InvalidPayload("records: each is [fields, resourceType, category]")
    try:
        fixed = base64.b64decode(entry[0], validate=True)
    except (binascii.Error, ValueError):
        raise InvalidPayload("records: fields are not base64") from None
    if len(fixed) != _FIXED:
        raise InvalidPayload(f"records: fields must be {_FIXED} bytes")
    cut = iter((RECORD_ID_SIZE, 4, *(DIGEST_SIZE,) * 4, SIGNATURE_SIZE, SALT_SIZE))
    parts, at = [], 0
    for size in cut:
        parts.append(fixed[at : at + size])
        at += size
    record_id, version, previous, content, ciphertext, keys, signature, salt = parts
    try:
        header = RecordHeader(network_id, record_id, int.from_bytes(version, "big"), previous,
                              patient, entry[1], entry[2], content, ciphertext, keys)  # fmt: skip
    except UsageError as exc:
        raise InvalidPayload(f"records: {exc}") from None
    return header, signature, salt


def receipt_payload(
    grant: bytes, *, records: Sequence[Signed], release: Release, asked: bytes,
    delegation: SignedDelegation | None = None,
) -> dict[str, Any]:  # fmt: skip
    """What a custodian submits for the shares it is about to release: the records as
    their authors signed them, the reader's ``release`` with their signature ``asked``,
    and the holder's ``delegation`` when a node asked for them."""
    delegated = {} if delegation is None else {"delegation": delegation.to_json()}
    return {
        **delegated,
        "grant": "0x" + grant.hex(),
        "patient": records[0].header.patient,
        "records": [pack_record(record) for record in records],
        "release": {
            "reader_key": "0x" + release.reader_key.hex(),
            "not_after_ms": release.not_after_ms,
            "signature": "0x" + asked.hex(),
        },
    }


def receipt(ctx: TxContext, view: StateView) -> list[Write]:
    require_member(view, ctx.sender)
    grant_id = p.hex_bytes(ctx.payload, "grant", 32)
    patient = p.address(ctx.payload, "patient")
    grant = None
    if grant_id != OWNER_READ:
        grant = holding_grant(view, "0x" + grant_id.hex(), ctx.timestamp_ns)
        if patient != grant.patient:
            raise OutOfScope(f"grant {grant.grant} is not on this patient's records")
    scope = OwnerRead(patient) if grant is None else grant
    packed = p.field(ctx.payload, "records")
    if not (isinstance(packed, list) and 1 <= len(packed) <= MAX_RELEASE_RECORDS):
        raise InvalidPayload(f"records: a list of 1 to {MAX_RELEASE_RECORDS}")
    delegation = _delegation(ctx)
    read_records = [
        _read_record(ctx, view, scope, entry, delegation=delegation) for entry in packed
    ]
    commitments = [bytes.fromhex(r["record"][2:]) for r in read_records]
    read, signer = _release(ctx, grant_id, commitments, delegation=delegation)
    reader = reader_of(view, grant, patient, signer, delegation, now_ns=ctx.timestamp_ns)
    _require_unexpired(ctx, read)
    read_hex = "0x" + read.digest.hex()
    # One receipt per custodian per read: a custodian cannot pad a read's rows, nor a
    # reader fold a later read into an earlier one by reusing its release.
    once = f"{read_hex}/{ctx.sender}"
    if view.get(READ_NS, once) is not None:
        raise Conflict(f"custodian {ctx.sender} already logged read {read_hex}")
    entry: dict[str, Any] = {
        "receipt": "0x" + ctx.tx_id.hex(),
        "read": read_hex,
        # An owner read is under no grant: the patient or a guardian read.
        "grant": None if grant is None else grant.grant,
        "patient": patient,
        "reader": reader,
        "records": read_records,
        "purpose": OWNER_PURPOSE if grant is None else grant.purpose,
        "custodian": ctx.sender,
        "index": ctx.index,
        "timestamp_ns": ctx.timestamp_ns,
        # A read through a node names the node and the app it served.
        "via": None if delegation is None else delegation.delegation.delegate,
        "app": None if delegation is None else delegation.delegation.app,
        # Every read under break-glass is flagged for review.
        "emergency": grant is not None and grant.emergency,
    }
    return [
        Write(RECEIPT_NS, entry["receipt"], entry),
        Write(READ_NS, once, entry["receipt"]),
        *append(view, AUDIT_NS, AUDIT_COUNT_NS, patient, entry),
    ]


def _delegation(ctx: TxContext) -> SignedDelegation | None:
    if "delegation" not in ctx.payload:
        return None
    try:
        return SignedDelegation.from_json(ctx.payload["delegation"], ctx.network_id)
    except InvalidInput as exc:
        raise InvalidPayload(str(exc)) from None


def _read_record(
    ctx: TxContext, view: StateView, scope: Grant | OwnerRead, packed: object, *,
    delegation: SignedDelegation | None,
) -> dict[str, Any]:  # fmt: skip
    """One record of the receipt, as the audit shows it, once its author's signature and
    the grant's scope (or, for an owner read, the patient) are checked."""
    header, signature, salt = unpack_record(packed, ctx.network_id, scope.patient)
    try:
        author = header.author(signature)
    except InvalidSignature as exc:
        raise InvalidPayload(f"records: {header.label}: {exc}") from None
    # A header altered after signing still recovers an address, just nobody's: only the
    # patient themself, or someone who has held a role on this ledger, writes a record.
    if author != header.patient and participant_of(view, author) is None and (
        member_of(view, author) is None
    ):
        raise InvalidPayload(f"records: {header.label}: not signed by anyone who could write it")
    record = "0x" + record_commitment(salt, header.digest, signature).hex()
    if not scope.covers(header.category, record):
        raise OutOfScope(f"record {header.label} is not covered by grant {scope.grant}")
    if delegation is not None:
        delegation.require_type(header.resource_type, header.label)
    return {
        "record": record,
        "record_id": header.record_id.hex(),
        "version": header.version,
        "resource_type": header.resource_type,
        "author": author,
        "category": header.category,
    }


def _release(
    ctx: TxContext, grant_id: bytes, commitments: Sequence[bytes], *,
    delegation: SignedDelegation | None,
) -> tuple[Release, Address]:  # fmt: skip
    """The signed request for exactly these records under this grant (or owner read) and
    delegation, and who signed it."""
    asked = p.field(ctx.payload, "release")
    if not isinstance(asked, Mapping):
        raise InvalidPayload("release: expected an object")
    release = Release.of(
        ctx.network_id,
        grant_id,
        commitments,
        p.hex_bytes(asked, "reader_key", 32),
        p.integer(asked, "not_after_ms", minimum=0, maximum=2**64 - 1),
        delegation=digest_of(delegation),
    )
    try:
        return release, release.signer(p.hex_bytes(asked, "signature", SIGNATURE_SIZE))
    except InvalidSignature as exc:
        raise BadApproval(f"release request: {exc}") from None


def _require_unexpired(ctx: TxContext, release: Release) -> None:
    if release.not_after_ms * NS_PER_MS < ctx.timestamp_ns:
        raise ApprovalExpired("release request expired")
    if release.not_after_ms * NS_PER_MS > ctx.timestamp_ns + MAX_RELEASE_LIFETIME_NS:
        raise BadApproval("release request lives too long: one read, not a standing order")


HANDLERS: dict[str, Handler] = {RECEIPT: receipt}
