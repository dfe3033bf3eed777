"""The record header is standard EIP-712: a wallet signs it, the generic encoder agrees."""

from __future__ import annotations

import hashlib

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from hypothesis import given, settings
from hypothesis import strategies as st

from medledger.crypto import eip712
from medledger.crypto.keys import PrivateKey
from medledger.errors import UsageError
from medledger.records.header import NO_PREVIOUS, RecordHeader

AUTHOR = PrivateKey.from_bytes(hashlib.sha256(b"clinician").digest())
PATIENT = PrivateKey.from_bytes(hashlib.sha256(b"patient").digest()).address


def header(**changes: object) -> RecordHeader:
    fields: dict[str, object] = {
        "network_id": 2027,
        "record_id": bytes(range(16)),
        "version": 1,
        "previous": NO_PREVIOUS,
        "patient": PATIENT,
        "resource_type": "Observation",
        "category": "labs",
        "content": b"\x01" * 32,
        "ciphertext": b"\x02" * 32,
        "keys": b"\x03" * 32,
    }
    fields.update(changes)
    return RecordHeader(**fields)  # type: ignore[arg-type]


def test_a_wallet_signature_over_the_typed_data_names_the_author() -> None:
    record = header()
    message = encode_typed_data(full_message=record.typed_data())
    signed = Account.sign_message(message, AUTHOR.to_bytes())
    assert record.author(bytes(signed.signature)) == AUTHOR.address
    assert record.author(record.sign(AUTHOR)) == AUTHOR.address


@settings(max_examples=100)
@given(
    record_id=st.binary(min_size=16, max_size=16),
    version=st.integers(1, 2**32 - 1),
    previous=st.binary(min_size=32, max_size=32),
    resource_type=st.text(max_size=30),
    category=st.text(max_size=30),
    network_id=st.integers(0, 2**64),
)
def test_the_hand_encoding_equals_the_generic_encoder(
    record_id: bytes,
    version: int,
    previous: bytes,
    resource_type: str,
    category: str,
    network_id: int,
) -> None:
    record = header(
        record_id=record_id,
        version=version,
        previous=NO_PREVIOUS if version == 1 else previous.replace(bytes(32), b"\x01" * 32),
        resource_type=resource_type,
        category=category,
        network_id=network_id,
    )
    assert record.digest == eip712.hash_typed_data(record.typed_data())


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("recordId", "0x" + "ff" * 16),
        ("version", 2),
        ("category", "mental-health"),
        ("patient", AUTHOR.address),
        ("keys", "0x" + "04" * 32),
    ],
)
def test_every_field_is_signed(field: str, value: object) -> None:
    record = header()
    typed = record.typed_data()
    typed["message"][field] = value
    assert eip712.hash_typed_data(typed) != record.digest


@pytest.mark.parametrize("patient", ["0x1234", "nothex" * 7, PATIENT[2:] + "00"])
def test_a_malformed_patient_address_is_refused(patient: str) -> None:
    with pytest.raises(UsageError, match="patient"):
        header(patient=patient)
