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
from functools import cached_property, lru_cache
from typing import Any

from medledger.crypto import eip712
from medledger.crypto.keys import Address, PrivateKey, recover_address

DOMAIN_NAME = "medledger access"
DOMAIN_VERSION = "1"
APPROVAL_TYPES: dict[str, list[dict[str, str]]] = {
    "Approval": [
        {"name": "request", "type": "bytes32"},
        {"name": "patient", "type": "address"},
        {"name": "requester", "type": "address"},
        {"name": "notAfter", "type": "uint64"},
    ]
}
_DOMAIN_TYPE = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
]
_ENCODER = eip712.TypedDataEncoder(APPROVAL_TYPES)


@lru_cache(maxsize=16)
def domain_separator(network_id: int) -> bytes:
    return eip712.domain_separator(
        {"name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": network_id}
    )


@dataclass(frozen=True)
class Approval:
    """What an approver signs for one access request."""

    network_id: int
    request: bytes
    patient: Address
    requester: Address
    not_after_ms: int

    def _message(self) -> dict[str, Any]:
        return {
            "request": self.request,
            "patient": self.patient,
            "requester": self.requester,
            "notAfter": self.not_after_ms,
        }

    @cached_property
    def digest(self) -> bytes:
        struct_hash = _ENCODER.hash_struct("Approval", self._message())
        return eip712.digest(domain_separator(self.network_id), struct_hash)

    def typed_data(self) -> dict[str, Any]:
        """The EIP-712 typed data a wallet signs for this approval."""
        return {
            "types": {"EIP712Domain": _DOMAIN_TYPE, **APPROVAL_TYPES},
            "primaryType": "Approval",
            "domain": {"name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": self.network_id},
            "message": {**self._message(), "request": "0x" + self.request.hex()},
        }

    def sign(self, key: PrivateKey) -> bytes:
        return key.sign_digest(self.digest)

    def signed_by(self, key: PrivateKey) -> dict[str, Any]:
        """``key``'s approval as an ``access.approve`` transaction carries it."""
        return {
            "signer": key.address,
            "not_after_ms": self.not_after_ms,
            "signature": "0x" + self.sign(key).hex(),
        }

    def signer(self, signature: bytes) -> Address:
        """Who signed; raises InvalidSignature if no one can have."""
        return recover_address(self.digest, signature)
