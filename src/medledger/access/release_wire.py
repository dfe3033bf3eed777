"""The JSON forms of a release request and of a released share, for client and route alike.

A reader's client sends :func:`ask_to_json` to a custodian's node, whose route reads it
back with :func:`ask_from_json`; the shares come back as :func:`share_to_json` and are
read with :func:`share_from_json`. Byte strings travel as 0x hex, the sealed shares as
base64, the records in their committed form (records/wire.py).
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Mapping
from typing import Any

from medledger.access.custodian import ReleaseAsk, ReleasedShares
from medledger.access.delegation import SignedDelegation, digest_of
from medledger.access.release import MAX_RELEASE_RECORDS, Release
from medledger.crypto.hexdata import parse_hex
from medledger.crypto.keys import to_checksum_address
from medledger.errors import InvalidInput
from medledger.records.header import json_uint
from medledger.records.wire import committed_from_json, committed_to_json

SIGNATURE_SIZE = 65


def ask_to_json(ask: ReleaseAsk) -> dict[str, Any]:
    r = ask.release
    return {
        "release": {
            "grant": "0x" + r.grant.hex(),
            "records": "0x" + r.records.hex(),
            "count": r.count,
            "reader_key": "0x" + r.reader_key.hex(),
            "not_after_ms": r.not_after_ms,
            "signature": "0x" + ask.signature.hex(),
        },
        "committed": [committed_to_json(record) for record in ask.records],
        **({} if ask.delegation is None else {"delegation": ask.delegation.to_json()}),
    }


def ask_from_json(obj: Mapping[str, Any], network_id: int) -> ReleaseAsk:
    """A release request for ``network_id``; InvalidInput names what is malformed."""
    try:
        r = obj["release"]
        release = Release(network_id, parse_hex(r["grant"], 32), parse_hex(r["records"], 32),
                          json_uint(r["count"]), parse_hex(r["reader_key"], 32),
                          json_uint(r["not_after_ms"]))  # fmt: skip
        signature = parse_hex(r["signature"], SIGNATURE_SIZE)
        committed = obj["committed"]
        if not isinstance(committed, list) or not 1 <= len(committed) <= MAX_RELEASE_RECORDS:
            raise ValueError(f"committed: a list of 1 to {MAX_RELEASE_RECORDS} records")
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"release request: malformed: {exc}") from None
    records = tuple(committed_from_json(record) for record in committed)
    delegated = obj.get("delegation")
    delegation = None if delegated is None else SignedDelegation.from_json(delegated, network_id)
    # The release names the delegation it was signed under; rebuilt from the one sent, so
    # a release signed under another does not verify.
    release = dataclasses.replace(release, delegation=digest_of(delegation))
    return ReleaseAsk(release, signature, records, delegation)


def share_to_json(shares: ReleasedShares) -> dict[str, Any]:
    return {
        "custodian": shares.custodian,
        "receipt": "0x" + shares.receipt.hex(),
        "sealed": [base64.b64encode(sealed).decode() for sealed in shares.sealed],
    }


def share_from_json(obj: Mapping[str, Any]) -> ReleasedShares:
    try:
        sealed = obj["sealed"]
        if not isinstance(sealed, list):
            raise ValueError("sealed: expected a list")
        shares = tuple(base64.b64decode(str(share), validate=True) for share in sealed)
        return ReleasedShares(to_checksum_address(str(obj["custodian"])),
                              parse_hex(str(obj["receipt"]), 32), shares)  # fmt: skip
    except (KeyError, ValueError) as exc:
        raise InvalidInput(f"released shares: malformed: {exc}") from None
