"""A record's Provenance: who wrote it, their signature, and its place on the ledger.

Every record has one Provenance per version (``Provenance/<record id>-<version>``),
built from what the vault and the ledger hold, without opening the record: the
author's address as the agent, the EIP-712 signature over the record's header (its
typed data beside it, so that any EIP-712 library can recover the signer), when the
batch holding it was committed, the record's commitment as the entity, and, once a
cosigned checkpoint covers the batch, the whole proof up to that checkpoint: the JSON
``medledger records check-proof`` checks, standalone, against the members' keys.
Whoever may read a record may read its Provenance (and a token's scopes must reach
both Provenance and the record's type).
"""

from __future__ import annotations

import base64
import json
from typing import Any

from medledger.records.fhir_search import Found, instant_text
from medledger.records.proof import CommittedRecord, RecordProof

__all__ = ["PROOF_EXTENSION", "TYPED_DATA_EXTENSION", "provenance_found"]

#: The record's proof up to a cosigned checkpoint (JSON, base64 in an Attachment).
PROOF_EXTENSION = "urn:medledger:fhir:record-proof"
#: The header the author signed, as EIP-712 typed data (JSON).
TYPED_DATA_EXTENSION = "urn:medledger:fhir:signed-header"
_PARTICIPANT = "urn:medledger:participant"
_COMMITMENT = "urn:medledger:record-commitment"
_AUTHOR_SIGNATURE = {
    "system": "urn:iso-astm:E1762-95:2013",
    "code": "1.2.840.10065.1.12.1.1",
    "display": "Author's Signature",
}


def provenance_found(
    record: CommittedRecord, *, author: str, committed_ns: int, proof: RecordProof | None
) -> Found:
    """The Provenance of one record version, as the API serves it."""
    header, signature, commitment = record.sealed.header, record.sealed.signature, record.commitment
    who = {"identifier": {"system": _PARTICIPANT, "value": author}}
    recorded = instant_text(committed_ns)
    target = f"{header.resource_type}/{header.record_id.hex()}/_history/{header.version}"
    extensions: list[dict[str, Any]] = [{
        "url": TYPED_DATA_EXTENSION,
        "valueString": json.dumps(header.typed_data(), separators=(",", ":")),
    }]  # fmt: skip
    if proof is not None:
        data = base64.b64encode(json.dumps(proof.to_json()).encode()).decode()
        extensions.append({
            "url": PROOF_EXTENSION,
            "valueAttachment": {"contentType": "application/json", "data": data},
        })  # fmt: skip
    resource: dict[str, Any] = {
        "resourceType": "Provenance",
        "target": [{"reference": target}],
        "recorded": recorded,
        "agent": [{
            "type": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                "code": "author"}]},
            "who": who,
        }],
        "entity": [{"role": "source",
                    "what": {"identifier": {"system": _COMMITMENT,
                                            "value": "0x" + commitment.hex()}}}],
        "signature": [{
            "type": [_AUTHOR_SIGNATURE], "when": recorded, "who": who,
            "sigFormat": "application/eip712-signature",
            "data": base64.b64encode(signature).decode(),
        }],
        "extension": extensions,
    }  # fmt: skip
    logical_id = f"{header.record_id.hex()}-{header.version}"
    return Found(resource, logical_id, "1", committed_ns, header.category)
