"""The JSON forms of a release request and of a released share, for client and route alike.

A reader's client sends :func:`ask_to_json` to a custodian's node, whose route reads it
back with :func:`ask_from_json`; the share comes back as :func:`share_to_json` and is
read with :func:`share_from_json`. Byte strings travel as 0x hex, the sealed share as
base64, the record in its committed form (records/wire.py).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from medledger.access.custodian import ReleaseAsk, ReleasedShare
from medledger.access.release import Release
from medledger.crypto.hexdata import parse_hex
from medledger.crypto.keys import to_checksum_address
from medledger.errors import InvalidInput
from medledger.records.wire import committed_from_json, committed_to_json

SIGNATURE_SIZE = 65


def ask_to_json(ask: ReleaseAsk) -> dict[str, Any]:
    r = ask.release
    return {
        "release": {
            "grant": "0x" + r.grant.hex(),
            "record": "0x" + r.record.hex(),
            "reader_key": "0x" + r.reader_key.hex(),
            "not_after_ms": r.not_after_ms,
            "signature": "0x" + ask.signature.hex(),
        },
        "committed": committed_to_json(ask.record),
    }


def ask_from_json(obj: Mapping[str, Any], network_id: int) -> ReleaseAsk:
    """A release request for ``network_id``; InvalidInput names what is malformed."""
    try:
        r = obj["release"]
        release = Release(network_id, parse_hex(r["grant"], 32), parse_hex(r["record"], 32),
                          parse_hex(r["reader_key"], 32), int(r["not_after_ms"]))  # fmt: skip
        signature = parse_hex(r["signature"], SIGNATURE_SIZE)
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"release request: malformed: {exc}") from None
    return ReleaseAsk(release, signature, committed_from_json(obj["committed"]))


def share_to_json(share: ReleasedShare) -> dict[str, str]:
    return {
        "custodian": share.custodian,
        "receipt": "0x" + share.receipt.hex(),
        "sealed": base64.b64encode(share.sealed).decode(),
    }


def share_from_json(obj: Mapping[str, Any]) -> ReleasedShare:
    try:
        return ReleasedShare(to_checksum_address(str(obj["custodian"])),
                             parse_hex(str(obj["receipt"]), 32),
                             base64.b64decode(str(obj["sealed"]), validate=True))  # fmt: skip
    except (KeyError, ValueError) as exc:
        raise InvalidInput(f"released share: malformed: {exc}") from None
