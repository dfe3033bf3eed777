"""Approvals: EIP-712 signatures by the people a policy names, made off the ledger.

An approver signs

    Approval(bytes32 request, address patient, address requester, uint64 notAfter)

under the domain ``{name: "medledger access", version: "1", chainId: network}``.
``request`` is the id of the ``access.request`` transaction, which already commits
to its scope, purpose and duration: an approval can approve that request and no
other. ``notAfter`` (milliseconds since the epoch) bounds how long a signature
given now may be used. Patient and requester are repeated so that a wallet shows
the approver whose data and whom they are approving.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from medledger.crypto.keys import Address, PrivateKey
from medledger.crypto.typed_message import Fields, TypedMessage

DOMAIN_NAME = "medledger access"
DOMAIN_VERSION = "1"


@dataclass(frozen=True)
class Approval(TypedMessage):
    """What an approver signs for one access request."""

    DOMAIN_NAME: ClassVar[str] = DOMAIN_NAME
    DOMAIN_VERSION: ClassVar[str] = DOMAIN_VERSION
    PRIMARY_TYPE: ClassVar[str] = "Approval"
    FIELDS: ClassVar[Fields] = [
        {"name": "request", "type": "bytes32"},
        {"name": "patient", "type": "address"},
        {"name": "requester", "type": "address"},
        {"name": "notAfter", "type": "uint64"},
    ]

    network_id: int
    request: bytes
    patient: Address
    requester: Address
    not_after_ms: int

    def message(self) -> dict[str, Any]:
        return {
            "request": self.request,
            "patient": self.patient,
            "requester": self.requester,
            "notAfter": self.not_after_ms,
        }

    def signed_by(self, key: PrivateKey) -> dict[str, Any]:
        """``key``'s approval as an ``access.approve`` transaction carries it."""
        return {
            "signer": key.address,
            "not_after_ms": self.not_after_ms,
            "signature": "0x" + self.sign(key).hex(),
        }
