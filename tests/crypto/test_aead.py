"""AES-256-GCM: published test vectors, tampering, misuse and round trips."""

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medledger.crypto import aead
from medledger.crypto.errors import DecryptionError
from medledger.errors import UsageError
from tests.crypto._vectors import load

VECTORS: list[dict[str, Any]] = load("aes256gcm.json")["cases"]
KEY = bytes(range(32))
AAD = b"record 7 of patient 12"


def _hex(case: dict[str, Any], name: str) -> bytes:
    return bytes.fromhex(case[name])


@pytest.mark.parametrize("case", VECTORS, ids=[c["name"] for c in VECTORS])
def test_encrypt_matches_published_vector(case: dict[str, Any]) -> None:
    sealed = aead.encrypt(
        _hex(case, "key"), _hex(case, "plaintext"), _hex(case, "aad"), nonce=_hex(case, "iv")
    )
    assert sealed == _hex(case, "iv") + _hex(case, "ciphertext") + _hex(case, "tag")


@pytest.mark.parametrize("case", VECTORS, ids=[c["name"] for c in VECTORS])
def test_decrypt_matches_published_vector(case: dict[str, Any]) -> None:
    sealed = _hex(case, "iv") + _hex(case, "ciphertext") + _hex(case, "tag")
    assert aead.decrypt(_hex(case, "key"), sealed, _hex(case, "aad")) == _hex(case, "plaintext")


def _flip(data: bytes, position: int) -> bytes:
    return data[:position] + bytes([data[position] ^ 0x01]) + data[position + 1 :]


_CT_END = aead.NONCE_SIZE + len(b"hello")
PARTS = {
    "nonce": range(aead.NONCE_SIZE),
    "ciphertext": range(aead.NONCE_SIZE, _CT_END),
    "tag": range(_CT_END, _CT_END + aead.TAG_SIZE),
}


@pytest.mark.parametrize("part", PARTS)
def test_flipping_any_bit_of_a_part_fails(part: str) -> None:
    sealed = aead.encrypt(KEY, b"hello", AAD)
    assert len(sealed) == _CT_END + aead.TAG_SIZE
    for position in PARTS[part]:
        for bit in range(8):
            tampered = bytearray(sealed)
            tampered[position] ^= 1 << bit
            with pytest.raises(DecryptionError, match=r"^decryption failed$"):
                aead.decrypt(KEY, bytes(tampered), AAD)


@pytest.mark.parametrize("aad", [b"", AAD + b"x", AAD[:-1], _flip(AAD, 0)])
def test_wrong_associated_data_fails(aad: bytes) -> None:
    sealed = aead.encrypt(KEY, b"hello", AAD)
    with pytest.raises(DecryptionError, match=r"^decryption failed$"):
        aead.decrypt(KEY, sealed, aad)


def test_wrong_key_fails() -> None:
    sealed = aead.encrypt(KEY, b"hello", AAD)
    with pytest.raises(DecryptionError):
        aead.decrypt(_flip(KEY, 31), sealed, AAD)


@pytest.mark.parametrize("length", range(aead.NONCE_SIZE + aead.TAG_SIZE))
def test_short_input_fails_with_the_same_message(length: int) -> None:
    with pytest.raises(DecryptionError, match=r"^decryption failed$"):
        aead.decrypt(KEY, bytes(length), AAD)


def test_truncated_and_extended_sealed_values_fail() -> None:
    sealed = aead.encrypt(KEY, b"hello", AAD)
    for tampered in (sealed[:-1], sealed + b"\x00", sealed[1:]):
        with pytest.raises(DecryptionError):
            aead.decrypt(KEY, tampered, AAD)


def test_failure_hides_the_underlying_exception() -> None:
    sealed = aead.encrypt(KEY, b"hello", AAD)
    with pytest.raises(DecryptionError) as caught:
        aead.decrypt(KEY, _flip(sealed, len(sealed) - 1), AAD)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


@pytest.mark.parametrize("size", [0, 16, 24, 31, 33])
def test_wrong_key_size_is_a_usage_error(size: int) -> None:
    with pytest.raises(UsageError, match=f"got {size}"):
        aead.encrypt(bytes(size), b"", b"")
    with pytest.raises(UsageError, match=f"got {size}"):
        aead.decrypt(bytes(size), bytes(40), b"")


@pytest.mark.parametrize("size", [0, 8, 11, 13, 16])
def test_wrong_nonce_size_is_a_usage_error(size: int) -> None:
    with pytest.raises(UsageError, match="nonce"):
        aead.encrypt(KEY, b"", b"", nonce=bytes(size))


def test_generate_key_uses_the_injected_randomness() -> None:
    assert aead.generate_key(lambda n: b"\x07" * n) == b"\x07" * aead.KEY_SIZE
    assert len(aead.generate_key()) == aead.KEY_SIZE
    assert aead.generate_key() != aead.generate_key()


def test_generate_key_rejects_short_randomness() -> None:
    with pytest.raises(UsageError):
        aead.generate_key(lambda n: bytes(n - 1))


def test_each_encryption_uses_a_fresh_nonce() -> None:
    first = aead.encrypt(KEY, b"same", AAD)
    second = aead.encrypt(KEY, b"same", AAD)
    assert first[: aead.NONCE_SIZE] != second[: aead.NONCE_SIZE]
    assert first != second


@given(
    key=st.binary(min_size=aead.KEY_SIZE, max_size=aead.KEY_SIZE),
    plaintext=st.binary(max_size=300),
    associated_data=st.binary(max_size=64),
)
def test_round_trip(key: bytes, plaintext: bytes, associated_data: bytes) -> None:
    sealed = aead.encrypt(key, plaintext, associated_data)
    assert len(sealed) == aead.NONCE_SIZE + len(plaintext) + aead.TAG_SIZE
    assert aead.decrypt(key, sealed, associated_data) == plaintext
