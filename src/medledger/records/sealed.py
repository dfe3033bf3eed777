"""Sealing a record: encrypt, split and wrap its key, sign, commit; and opening it again.

A record version gets a fresh AES-256-GCM data key. The body is ``salt ||
canonical JSON``, encrypted with associated data that binds record id, version and
patient, so a ciphertext moved to another record or patient fails to decrypt.
The data key is Shamir-split t-of-n across the consortium's custodians, each
share sealed to that custodian's X25519 key, and sealed whole once more to the
patient. The author signs a header that binds all of it by hash (see header.py).

The record's commitment, the leaf that goes into a batch's Merkle tree on the
ledger, is a salted hash of the signed header: without the salt, which stays in
the vault, nobody can link a leaf to a patient or record.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from medledger.crypto import aead, ecies, shamir
from medledger.crypto.canonical import sha256
from medledger.crypto.errors import InvalidSignature
from medledger.crypto.keys import Address, PrivateKey, to_checksum_address
from medledger.errors import UsageError
from medledger.records.errors import RecordTampered
from medledger.records.header import RecordHeader, content_commitment

SALT_SIZE = 32
BODY_LABEL = b"medledger/record-body/v1"
KEY_LABEL = b"medledger/record-key/v1"
COMMITMENT_LABEL = b"medledger/record-commitment/v1"
PATIENT_INDEX = 0
_KEYS_FORMAT = 1
_ADDRESS_SIZE = 20


def _binding(label: bytes, record_id: bytes, version: int, patient: Address) -> bytes:
    # Fixed-length fields, so plain concatenation is unambiguous.
    return label + record_id + struct.pack(">I", version) + bytes.fromhex(patient[2:])


def _key_binding(header: RecordHeader, index: int) -> bytes:
    # The holder's index (0 for the patient, i for custodian share i) ends the binding.
    base = _binding(KEY_LABEL, header.record_id, header.version, header.patient)
    return base + bytes((index,))


@dataclass(frozen=True)
class Custodians:
    """Who holds key shares of new records: member addresses with X25519 keys, and t."""

    threshold: int
    holders: tuple[tuple[Address, bytes], ...]

    def __post_init__(self) -> None:
        if not 1 <= self.threshold <= len(self.holders) <= shamir.MAX_SHARES:
            raise UsageError(
                f"custodian threshold {self.threshold} of {len(self.holders)} is not possible"
            )


@dataclass(frozen=True)
class WrappedKeys:
    """A record's data key: sealed shares for the custodians, a sealed copy for the patient.

    ``shares[i]`` belongs to ``custodians[i]`` and holds Shamir point ``i + 1``.
    """

    threshold: int
    custodians: tuple[Address, ...]
    shares: tuple[bytes, ...] = field(repr=False)
    patient: bytes = field(repr=False)

    @cached_property
    def encoded(self) -> bytes:
        parts = [bytes((_KEYS_FORMAT, self.threshold, len(self.custodians)))]
        for address, share in zip(self.custodians, self.shares, strict=True):
            parts += [bytes.fromhex(address[2:]), struct.pack(">H", len(share)), share]
        parts += [struct.pack(">H", len(self.patient)), self.patient]
        return b"".join(parts)

    @classmethod
    def decode(cls, data: bytes) -> WrappedKeys:
        """Parse :meth:`encode`'s output; raises ValueError, naming what is wrong."""
        try:
            form, threshold, count = data[0], data[1], data[2]
            if form != _KEYS_FORMAT:
                raise ValueError(f"unknown format {form}")
            offset, custodians, shares = 3, [], []
            for _ in range(count):
                custodians.append(to_checksum_address(data[offset : offset + _ADDRESS_SIZE]))
                share, offset = _read_sized(data, offset + _ADDRESS_SIZE)
                shares.append(share)
            patient, offset = _read_sized(data, offset)
        except (IndexError, struct.error):
            raise ValueError("truncated") from None
        if offset != len(data):
            raise ValueError("trailing bytes")
        return cls(threshold, tuple(custodians), tuple(shares), patient)

    @cached_property
    def digest(self) -> bytes:
        return sha256(self.encoded)


def _read_sized(data: bytes, offset: int) -> tuple[bytes, int]:
    (size,) = struct.unpack_from(">H", data, offset)
    end = offset + 2 + size
    if end > len(data):
        raise IndexError("past the end")
    return data[offset + 2 : end], end


class KeyWrapper:
    """Wraps data keys for a group of records sealed together.

    One ECIES sealer per recipient for the whole group: an X25519 exchange per
    record and recipient would cost more than all the rest of sealing a record.
    """

    def __init__(self, custodians: Custodians) -> None:
        self.custodians = custodians
        self._addresses = tuple(address for address, _ in custodians.holders)
        self._sealers = [ecies.Sealer(public) for _, public in custodians.holders]
        self._patients: dict[bytes, ecies.Sealer] = {}

    def wrap(self, data_key: bytes, draft: Draft) -> WrappedKeys:
        points = shamir.split(data_key, self.custodians.threshold, len(self._sealers))
        binding = _binding(KEY_LABEL, draft.record_id, draft.version, draft.patient)
        shares = tuple(
            sealer.seal(point.value, binding + bytes((point.index,)))
            for sealer, point in zip(self._sealers, points, strict=True)
        )
        sealer = self._patients.get(draft.patient_key)
        if sealer is None:
            sealer = self._patients[draft.patient_key] = ecies.Sealer(draft.patient_key)
        patient = sealer.seal(data_key, binding + bytes((PATIENT_INDEX,)))
        return WrappedKeys(self.custodians.threshold, self._addresses, shares, patient)


def record_commitment(salt: bytes, header_digest: bytes, signature: bytes) -> bytes:
    """A record's salted commitment: its leaf in a batch's Merkle tree."""
    return sha256(COMMITMENT_LABEL + salt + header_digest + signature)


@dataclass(frozen=True)
class SealedRecord:
    """One record version as the vault stores it. Holds no plaintext and no key."""

    header: RecordHeader
    signature: bytes
    ciphertext: bytes = field(repr=False)
    keys: WrappedKeys
    salt: bytes = field(repr=False)

    @cached_property
    def commitment(self) -> bytes:
        """The record's leaf in its batch's Merkle tree."""
        return record_commitment(self.salt, self.header.digest, self.signature)

    def check(self) -> Address:
        """Check ciphertext and keys against the signed header; return the author.

        Needs no key: this is what anyone holding the sealed record can verify.
        """
        if sha256(self.ciphertext) != self.header.ciphertext:
            raise RecordTampered(
                self.header.label, "ciphertext", "does not match the signed header"
            )
        return self.check_signed()

    def check_signed(self) -> Address:
        """Check the wrapped keys and the signature, not the ciphertext; return the author.

        What a custodian checks: it releases a key share and needs no ciphertext.
        """
        label = self.header.label
        if self.keys.digest != self.header.keys:
            raise RecordTampered(label, "keys", "wrapped keys do not match the signed header")
        try:
            return self.header.author(self.signature)
        except InvalidSignature as exc:
            raise RecordTampered(label, "signature", str(exc)) from None


@dataclass(frozen=True)
class Draft:
    """What the author decides about a record version before it is sealed."""

    record_id: bytes
    version: int
    previous: bytes
    patient: Address
    patient_key: bytes
    resource_type: str
    category: str


def seal_record(
    draft: Draft,
    canonical: bytes,
    *,
    network_id: int,
    author: PrivateKey,
    wrapper: KeyWrapper,
    randbytes: Callable[[int], bytes] = os.urandom,
) -> SealedRecord:
    """Encrypt, split and wrap the key, sign and salt one record version."""
    data_key = aead.generate_key(randbytes)
    content_salt = randbytes(SALT_SIZE)
    body_ad = _binding(BODY_LABEL, draft.record_id, draft.version, draft.patient)
    ciphertext = aead.encrypt(data_key, content_salt + canonical, body_ad)
    keys = wrapper.wrap(data_key, draft)
    header = RecordHeader(
        network_id=network_id,
        record_id=draft.record_id,
        version=draft.version,
        previous=draft.previous,
        patient=draft.patient,
        resource_type=draft.resource_type,
        category=draft.category,
        content=content_commitment(content_salt, canonical),
        ciphertext=sha256(ciphertext),
        keys=keys.digest,
    )
    return SealedRecord(header, header.sign(author), ciphertext, keys, randbytes(SALT_SIZE))


def open_as_patient(record: SealedRecord, patient_key: X25519PrivateKey) -> bytes:
    """The canonical JSON of a record, decrypted with the patient's own key."""
    return open_salted_as_patient(record, patient_key)[1]


def open_salted_as_patient(
    record: SealedRecord, patient_key: X25519PrivateKey
) -> tuple[bytes, bytes]:
    """The content salt and canonical JSON: what proves the content to anyone holding
    the signed header (credentials/evidence.py)."""
    data_key = ecies.open_sealed(
        patient_key, record.keys.patient, _key_binding(record.header, PATIENT_INDEX)
    )
    return _open_body(record, data_key)


def unwrap_share(
    record: SealedRecord, custodian: Address, custodian_key: X25519PrivateKey
) -> shamir.Share:
    """A custodian's share of a record's data key (the custodian side of a release)."""
    try:
        position = record.keys.custodians.index(custodian)
    except ValueError:
        raise UsageError(f"{custodian} holds no share of {record.header.label}") from None
    index = position + 1
    value = ecies.open_sealed(
        custodian_key, record.keys.shares[position], _key_binding(record.header, index)
    )
    return shamir.Share(index, value)


def open_with_shares(record: SealedRecord, shares: Sequence[shamir.Share]) -> bytes:
    """The canonical JSON of a record, from at least t custodian shares of its key."""
    data_key = shamir.combine(shares, record.keys.threshold)
    return _open_body(record, data_key)[1]


def _open_body(record: SealedRecord, data_key: bytes) -> tuple[bytes, bytes]:
    header = record.header
    body_ad = _binding(BODY_LABEL, header.record_id, header.version, header.patient)
    plaintext = aead.decrypt(data_key, record.ciphertext, body_ad)
    salt, canonical = plaintext[:SALT_SIZE], plaintext[SALT_SIZE:]
    if content_commitment(salt, canonical) != header.content:
        raise RecordTampered(header.label, "content", "does not match what its author signed")
    return salt, canonical
