"""Approvals are standard EIP-712: a wallet signs them, and each binds one request."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data

from medledger.access.approval import Approval
from medledger.crypto import eip712
from medledger.crypto.errors import InvalidSignature
from medledger.crypto.keys import PrivateKey


def key(label: str) -> PrivateKey:
    return PrivateKey.from_bytes(hashlib.sha256(label.encode()).digest())


PATIENT, DOCTOR, NURSE = key("patient"), key("doctor"), key("nurse")
APPROVAL = Approval(
    network_id=2027,
    request=hashlib.sha256(b"request 1").digest(),
    patient=PATIENT.address,
    requester=DOCTOR.address,
    not_after_ms=1_800_000_000_000,
)


def test_a_wallet_signature_names_the_approver() -> None:
    message = encode_typed_data(full_message=APPROVAL.typed_data())
    signed = Account.sign_message(message, NURSE.to_bytes())
    assert APPROVAL.signer(bytes(signed.signature)) == NURSE.address
    assert APPROVAL.signer(APPROVAL.sign(NURSE)) == NURSE.address
    assert eip712.hash_typed_data(APPROVAL.typed_data()) == APPROVAL.digest


@pytest.mark.parametrize(
    "changes",
    [
        {"request": hashlib.sha256(b"request 2").digest()},
        {"patient": DOCTOR.address},
        {"requester": NURSE.address},
        {"not_after_ms": 1_800_000_000_001},
        {"network_id": 1},
    ],
    ids=["another request", "another patient", "another requester", "later expiry", "network"],
)
def test_a_signature_replayed_on_anything_else_names_someone_else(
    changes: dict[str, object],
) -> None:
    signature = APPROVAL.sign(NURSE)
    other = dataclasses.replace(APPROVAL, **changes)  # type: ignore[arg-type]
    assert other.signer(signature) != NURSE.address


def test_a_malformed_signature_is_refused() -> None:
    with pytest.raises(InvalidSignature):
        APPROVAL.signer(b"\x00" * 65)


def test_an_approval_travels_as_signer_expiry_and_signature() -> None:
    entry = APPROVAL.signed_by(NURSE)
    assert entry["signer"] == NURSE.address
    assert entry["not_after_ms"] == APPROVAL.not_after_ms
    assert APPROVAL.signer(bytes.fromhex(entry["signature"][2:])) == NURSE.address
