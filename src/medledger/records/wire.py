"""JSON forms of records as they travel between clients, nodes and custodians.

Bytes are 0x-hex, except ciphertexts and wrapped keys, which are base64 (they
are the bulk of a record). Parsing checks every field and raises
:class:`InvalidInput` naming the field; nothing half-parsed is returned.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from medledger.crypto.hexdata import parse_hex
from medledger.records.header import RecordHeader, json_text, json_uint, parse_json
from medledger.records.proof import CommittedRecord
from medledger.records.sealed import SealedRecord, WrappedKeys


def sealed_to_json(sealed: SealedRecord) -> dict[str, Any]:
    return {
        "header": sealed.header.to_json(),
        "signature": "0x" + sealed.signature.hex(),
        "salt": "0x" + sealed.salt.hex(),
        "keys": base64.b64encode(sealed.keys.encoded).decode(),
        "ciphertext": base64.b64encode(sealed.ciphertext).decode(),
    }


def sealed_from_json(obj: Mapping[str, Any]) -> SealedRecord:
    def parse() -> SealedRecord:
        return SealedRecord(
            header=RecordHeader.from_json(obj["header"]),
            signature=parse_hex(obj["signature"]),
            ciphertext=_base64(obj["ciphertext"]),
            keys=WrappedKeys.decode(_base64(obj["keys"])),
            salt=parse_hex(obj["salt"]),
        )

    return parse_json("sealed record", parse)


def committed_to_json(record: CommittedRecord) -> dict[str, Any]:
    return {
        "sealed": sealed_to_json(record.sealed),
        "position": record.position,
        "batchPath": ["0x" + p.hex() for p in record.batch_path],
        "logIndex": record.log_index,
    }


def committed_from_json(obj: Mapping[str, Any]) -> CommittedRecord:
    def parse() -> CommittedRecord:
        return CommittedRecord(
            sealed=sealed_from_json(obj["sealed"]),
            position=json_uint(obj["position"]),
            batch_path=tuple(parse_hex(p) for p in _list(obj["batchPath"])),
            log_index=json_uint(obj["logIndex"]),
        )

    return parse_json("committed record", parse)


def _list(value: object) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError("expected a list")
    return value


def _base64(value: object) -> bytes:
    return base64.b64decode(json_text(value), validate=True)
