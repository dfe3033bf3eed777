"""Sealing one record: who can open it, and what every binding catches."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from medledger.crypto import ecies, shamir
from medledger.crypto.canonical import sha256
from medledger.crypto.errors import DecryptionError, InsufficientShares
from medledger.crypto.keys import PrivateKey
from medledger.errors import UsageError
from medledger.records.errors import RecordTampered
from medledger.records.header import NO_PREVIOUS
from medledger.records.sealed import (
    Custodians,
    Draft,
    KeyWrapper,
    SealedRecord,
    WrappedKeys,
    open_as_patient,
    open_with_shares,
    seal_record,
    unwrap_share,
)

CANONICAL = b'{"resourceType":"Observation","status":"final"}'


def _x25519(label: str) -> X25519PrivateKey:
    return ecies.private_from_bytes(hashlib.sha256(label.encode()).digest())


AUTHOR = PrivateKey.from_bytes(hashlib.sha256(b"author").digest())
PATIENT = PrivateKey.from_bytes(hashlib.sha256(b"patient").digest())
PATIENT_KEY = _x25519("patient-x25519")
CUSTODIAN_KEYS = [_x25519(f"custodian-{i}") for i in range(3)]
CUSTODIAN_ADDRESSES = [
    PrivateKey.from_bytes(hashlib.sha256(f"member-{i}".encode()).digest()).address for i in range(3)
]
CUSTODIANS = Custodians(
    2,
    tuple(
        (address, ecies.public_bytes(key))
        for address, key in zip(CUSTODIAN_ADDRESSES, CUSTODIAN_KEYS, strict=True)
    ),
)


def _draft(**changes: object) -> Draft:
    draft = Draft(
        record_id=bytes(range(16)),
        version=1,
        previous=NO_PREVIOUS,
        patient=PATIENT.address,
        patient_key=ecies.public_bytes(PATIENT_KEY),
        resource_type="Observation",
        category="labs",
    )
    return dataclasses.replace(draft, **changes)  # type: ignore[arg-type]


def _seal(canonical: bytes = CANONICAL, **changes: object) -> SealedRecord:
    return seal_record(
        _draft(**changes), canonical, network_id=7, author=AUTHOR, wrapper=KeyWrapper(CUSTODIANS)
    )


def _flipped(data: bytes) -> bytes:
    """``data`` with its last bit changed: always another value (a last byte set to zero
    would be none one time in 256)."""
    return data[:-1] + bytes((data[-1] ^ 1,))


def _shares(record: SealedRecord, which: tuple[int, ...]) -> list[shamir.Share]:
    return [unwrap_share(record, CUSTODIAN_ADDRESSES[i], CUSTODIAN_KEYS[i]) for i in which]


def test_the_patient_opens_the_record_with_their_own_key() -> None:
    record = _seal()
    assert open_as_patient(record, PATIENT_KEY) == CANONICAL
    assert record.check() == AUTHOR.address


def test_a_wrong_patient_key_cannot_open_it() -> None:
    with pytest.raises(DecryptionError):
        open_as_patient(_seal(), _x25519("someone else"))


@pytest.mark.parametrize("which", list(itertools.combinations(range(3), 2)))
def test_any_two_of_three_custodian_shares_open_it(which: tuple[int, ...]) -> None:
    record = _seal()
    assert open_with_shares(record, _shares(record, which)) == CANONICAL


@pytest.mark.parametrize("which", [(0,), (1,), (2,)])
def test_one_custodian_share_is_not_enough(which: tuple[int, ...]) -> None:
    record = _seal()
    with pytest.raises(InsufficientShares):
        open_with_shares(record, _shares(record, which))


def test_a_custodian_cannot_unwrap_another_custodians_share() -> None:
    record = _seal()
    with pytest.raises(DecryptionError):
        unwrap_share(record, CUSTODIAN_ADDRESSES[0], CUSTODIAN_KEYS[1])


def test_a_non_custodian_holds_no_share() -> None:
    with pytest.raises(UsageError, match="holds no share"):
        unwrap_share(_seal(), PATIENT.address, PATIENT_KEY)


def test_every_version_gets_a_fresh_data_key_and_salts() -> None:
    first, second = _seal(), _seal()
    assert first.ciphertext != second.ciphertext
    assert first.header.content != second.header.content
    assert first.commitment != second.commitment


def test_a_ciphertext_moved_to_another_record_does_not_open() -> None:
    record, other = _seal(), _seal(record_id=bytes(16))
    moved = dataclasses.replace(other, ciphertext=record.ciphertext)
    with pytest.raises(DecryptionError):
        open_as_patient(moved, PATIENT_KEY)


def test_a_patient_copy_moved_to_another_record_does_not_open() -> None:
    record, other = _seal(), _seal(record_id=bytes(16))
    keys = dataclasses.replace(other.keys, patient=record.keys.patient)
    with pytest.raises(DecryptionError):
        open_as_patient(dataclasses.replace(other, keys=keys), PATIENT_KEY)


def test_content_that_does_not_match_the_signed_commitment_is_refused() -> None:
    record = _seal()
    header = dataclasses.replace(record.header, content=sha256(b"other"))
    with pytest.raises(RecordTampered, match="content"):
        open_as_patient(dataclasses.replace(record, header=header), PATIENT_KEY)


@pytest.mark.parametrize(
    ("change", "check"),
    [
        ("ciphertext", "ciphertext"),
        ("keys", "keys"),
        ("signature", "signature"),
    ],
)
def test_check_names_what_no_longer_matches_the_signed_header(change: str, check: str) -> None:
    record = _seal()
    if change == "ciphertext":
        record = dataclasses.replace(record, ciphertext=_flipped(record.ciphertext))
    elif change == "keys":
        keys = dataclasses.replace(record.keys, patient=_flipped(record.keys.patient))
        record = dataclasses.replace(record, keys=keys)
    else:
        record = dataclasses.replace(record, signature=bytes(64) + b"\x1b")
    with pytest.raises(RecordTampered) as caught:
        record.check()
    assert caught.value.check == check


def test_a_header_field_changed_after_signing_recovers_another_author() -> None:
    record = _seal()
    header = dataclasses.replace(record.header, category="mental-health")
    assert dataclasses.replace(record, header=header).check() != AUTHOR.address


def test_the_commitment_covers_the_salt_and_the_signature() -> None:
    record = _seal()
    assert dataclasses.replace(record, salt=bytes(32)).commitment != record.commitment
    resigned = dataclasses.replace(record, signature=record.header.sign(PATIENT))
    assert resigned.commitment != record.commitment


def test_wrapped_keys_round_trip_and_reject_malformed_bytes() -> None:
    keys = _seal().keys
    assert WrappedKeys.decode(keys.encoded) == keys
    encoded = keys.encoded
    for bad in (encoded[:-1], encoded + b"\0", b"\x02" + encoded[1:], b""):
        with pytest.raises(ValueError):
            WrappedKeys.decode(bad)


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"record_id": b"short"}, "record id"),
        ({"version": 0}, "version"),
        ({"version": 2}, "previous"),
        ({"previous": b"\1" * 32}, "previous"),
    ],
)
def test_a_header_refuses_impossible_fields(changes: dict[str, object], problem: str) -> None:
    with pytest.raises(UsageError, match=problem):
        _seal(**changes)


def test_custodians_refuse_an_impossible_threshold() -> None:
    with pytest.raises(UsageError, match="threshold"):
        Custodians(4, CUSTODIANS.holders)
    with pytest.raises(UsageError, match="threshold"):
        Custodians(0, CUSTODIANS.holders)


@settings(max_examples=25, deadline=None)
@given(canonical=st.binary(max_size=2000), threshold=st.integers(1, 3))
def test_round_trip_for_any_content_and_threshold(canonical: bytes, threshold: int) -> None:
    custodians = Custodians(threshold, CUSTODIANS.holders)
    record = seal_record(
        _draft(), canonical, network_id=7, author=AUTHOR, wrapper=KeyWrapper(custodians)
    )
    assert open_as_patient(record, PATIENT_KEY) == canonical
    assert open_with_shares(record, _shares(record, tuple(range(threshold)))) == canonical
