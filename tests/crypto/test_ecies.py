"""ECIES over X25519: RFC 7748 vectors, a fixed known answer, tampering and round trips."""

import hashlib
import hmac
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from medledger.crypto import aead, ecies
from medledger.crypto.errors import DecryptionError
from medledger.errors import InvalidInput, UsageError
from tests.crypto._vectors import load

RFC7748: dict[str, Any] = load("x25519_rfc7748.json")
KAT: dict[str, Any] = load("ecies_x25519_kat.json")
# u = 0 and u = 1 are points of small order: X25519 with them is all zeros.
LOW_ORDER_POINTS = [bytes(32), (1).to_bytes(32, "little")]


def _x(name: str, data: dict[str, Any] = KAT) -> bytes:
    return bytes.fromhex(data[name])


def _x25519(scalar: bytes, u: bytes) -> bytes:
    return ecies.private_from_bytes(scalar).exchange(X25519PublicKey.from_public_bytes(u))


@pytest.mark.parametrize("vector", RFC7748["scalar_mult"])
def test_x25519_matches_rfc7748_section_5_2(vector: dict[str, str]) -> None:
    scalar, u = bytes.fromhex(vector["scalar"]), bytes.fromhex(vector["u"])
    assert _x25519(scalar, u).hex() == vector["output"]


def test_x25519_iterated_matches_rfc7748_section_5_2() -> None:
    vector = RFC7748["iterated"]
    k = u = bytes.fromhex(vector["start"])
    for iteration in range(1, 1001):
        k, u = _x25519(k, u), k
        if iteration == 1:
            assert k.hex() == vector["after_1"]
    assert k.hex() == vector["after_1000"]


def test_diffie_hellman_matches_rfc7748_section_6_1() -> None:
    dh = RFC7748["diffie_hellman"]
    alice = ecies.private_from_bytes(_x("alice_private", dh))
    bob = ecies.private_from_bytes(_x("bob_private", dh))
    assert ecies.public_bytes(alice) == _x("alice_public", dh)
    assert ecies.public_bytes(bob) == _x("bob_public", dh)
    assert _x25519(_x("alice_private", dh), _x("bob_public", dh)) == _x("shared", dh)
    assert _x25519(_x("bob_private", dh), _x("alice_public", dh)) == _x("shared", dh)


def _hkdf_sha256(ikm: bytes, info: bytes) -> bytes:
    # RFC 5869 with an absent salt and one output block, written out with the
    # standard library so the known answer does not depend on the code under test.
    prk = hmac.new(bytes(32), ikm, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()


def test_key_derivation_is_hkdf_over_label_and_both_public_keys() -> None:
    ephemeral = ecies.private_from_bytes(_x("ephemeral_private"))
    recipient = ecies.private_from_bytes(_x("recipient_private"))
    ephemeral_public, recipient_public = (
        ecies.public_bytes(ephemeral),
        ecies.public_bytes(recipient),
    )
    info = KAT["label"].encode() + ephemeral_public + recipient_public
    assert KAT["label"].encode() == ecies.LABEL
    assert _hkdf_sha256(_x("shared_secret"), info) == _x("aes_key")
    assert ecies.derive_key(_x("shared_secret"), ephemeral_public, recipient_public) == _x(
        "aes_key"
    )


def test_seal_known_answer() -> None:
    recipient = ecies.private_from_bytes(_x("recipient_private"))
    sealed = ecies.seal(
        ecies.public_bytes(recipient),
        _x("plaintext"),
        _x("associated_data"),
        ephemeral=ecies.private_from_bytes(_x("ephemeral_private")),
        nonce=_x("nonce"),
    )
    assert sealed == _x("sealed")
    assert ecies.open_sealed(recipient, sealed, _x("associated_data")) == _x("plaintext")


@pytest.fixture
def recipient() -> X25519PrivateKey:
    return ecies.generate_private_key()


def test_wrong_recipient_fails(recipient: X25519PrivateKey) -> None:
    sealed = ecies.seal(ecies.public_bytes(recipient), b"for your eyes only", b"ctx")
    with pytest.raises(DecryptionError, match=r"^decryption failed$"):
        ecies.open_sealed(ecies.generate_private_key(), sealed, b"ctx")


def test_wrong_associated_data_fails(recipient: X25519PrivateKey) -> None:
    sealed = ecies.seal(ecies.public_bytes(recipient), b"for your eyes only", b"ctx")
    for aad in (b"", b"ctx2", b"CTX"):
        with pytest.raises(DecryptionError):
            ecies.open_sealed(recipient, sealed, aad)


def test_flipping_any_byte_fails(recipient: X25519PrivateKey) -> None:
    sealed = ecies.seal(ecies.public_bytes(recipient), b"abc", b"ctx")
    for position in range(len(sealed)):
        tampered = bytearray(sealed)
        tampered[position] ^= 0x04
        with pytest.raises(DecryptionError, match=r"^decryption failed$"):
            ecies.open_sealed(recipient, bytes(tampered), b"ctx")


def test_truncated_input_fails(recipient: X25519PrivateKey) -> None:
    sealed = ecies.seal(ecies.public_bytes(recipient), b"", b"")
    assert len(sealed) == ecies.PUBLIC_KEY_SIZE + aead.NONCE_SIZE + aead.TAG_SIZE
    for length in range(len(sealed)):
        with pytest.raises(DecryptionError):
            ecies.open_sealed(recipient, sealed[:length])


@pytest.mark.parametrize("point", LOW_ORDER_POINTS)
def test_low_order_ephemeral_key_fails(recipient: X25519PrivateKey, point: bytes) -> None:
    sealed = ecies.seal(ecies.public_bytes(recipient), b"abc")
    with pytest.raises(DecryptionError, match=r"^decryption failed$"):
        ecies.open_sealed(recipient, point + sealed[ecies.PUBLIC_KEY_SIZE :])


@pytest.mark.parametrize("point", LOW_ORDER_POINTS)
def test_sealing_to_a_low_order_key_is_refused(point: bytes) -> None:
    with pytest.raises(InvalidInput, match="low-order"):
        ecies.seal(point, b"abc")


@pytest.mark.parametrize("size", [0, 31, 33, 65])
def test_sealing_to_a_malformed_key_is_refused(size: int) -> None:
    with pytest.raises(InvalidInput, match=f"got {size}"):
        ecies.seal(b"\x09" * size, b"abc")


@pytest.mark.parametrize("size", [0, 31, 33])
def test_private_key_of_wrong_size_is_a_usage_error(size: int) -> None:
    with pytest.raises(UsageError):
        ecies.private_from_bytes(bytes(size))


def test_private_key_round_trips_through_bytes(recipient: X25519PrivateKey) -> None:
    raw = recipient.private_bytes_raw()
    assert ecies.public_bytes(ecies.private_from_bytes(raw)) == ecies.public_bytes(recipient)
    assert len(ecies.public_bytes(recipient)) == ecies.PUBLIC_KEY_SIZE


def test_each_seal_uses_a_fresh_ephemeral_key(recipient: X25519PrivateKey) -> None:
    public = ecies.public_bytes(recipient)
    first, second = ecies.seal(public, b"same"), ecies.seal(public, b"same")
    assert first[: ecies.PUBLIC_KEY_SIZE] != second[: ecies.PUBLIC_KEY_SIZE]


@settings(max_examples=50)
@given(
    recipient_bytes=st.binary(min_size=32, max_size=32),
    plaintext=st.binary(max_size=200),
    associated_data=st.binary(max_size=40),
)
def test_round_trip(recipient_bytes: bytes, plaintext: bytes, associated_data: bytes) -> None:
    recipient = ecies.private_from_bytes(recipient_bytes)
    sealed = ecies.seal(ecies.public_bytes(recipient), plaintext, associated_data)
    assert ecies.open_sealed(recipient, sealed, associated_data) == plaintext


def test_a_sealer_shares_one_ephemeral_key_but_never_a_nonce(recipient: X25519PrivateKey) -> None:
    sealer = ecies.Sealer(ecies.public_bytes(recipient))
    sealed = [sealer.seal(b"share", b"record-%d" % i) for i in range(50)]
    assert len({s[: ecies.PUBLIC_KEY_SIZE] for s in sealed}) == 1
    nonces = {s[ecies.PUBLIC_KEY_SIZE : ecies.PUBLIC_KEY_SIZE + aead.NONCE_SIZE] for s in sealed}
    assert len(nonces) == len(sealed)
    for i, value in enumerate(sealed):
        assert ecies.open_sealed(recipient, value, b"record-%d" % i) == b"share"


def test_a_sealer_value_bound_to_other_associated_data_fails(recipient: X25519PrivateKey) -> None:
    sealer = ecies.Sealer(ecies.public_bytes(recipient))
    with pytest.raises(DecryptionError):
        ecies.open_sealed(recipient, sealer.seal(b"share", b"record-1"), b"record-2")


def test_a_sealer_gives_the_known_answer() -> None:
    recipient = ecies.private_from_bytes(_x("recipient_private"))
    sealer = ecies.Sealer(
        ecies.public_bytes(recipient), ephemeral=ecies.private_from_bytes(_x("ephemeral_private"))
    )
    sealed = sealer.seal(_x("plaintext"), _x("associated_data"), nonce=_x("nonce"))
    assert sealed == _x("sealed")


@pytest.mark.parametrize("point", LOW_ORDER_POINTS)
def test_a_sealer_to_a_low_order_key_is_refused(point: bytes) -> None:
    with pytest.raises(InvalidInput, match="low-order"):
        ecies.Sealer(point)


def test_derived_keys_are_stable_and_differ_by_label_and_seed() -> None:
    seed = hashlib.sha256(b"seed").digest()
    first = ecies.public_bytes(ecies.derive_private_key(seed, b"patient"))
    assert first == ecies.public_bytes(ecies.derive_private_key(seed, b"patient"))
    assert first != ecies.public_bytes(ecies.derive_private_key(seed, b"custodian"))
    other = hashlib.sha256(b"other").digest()
    assert first != ecies.public_bytes(ecies.derive_private_key(other, b"patient"))
    expected = hmac.new(
        hmac.new(bytes(32), seed, "sha256").digest(),
        b"medledger/ecies/v1/patient\x01",
        "sha256",
    ).digest()
    assert ecies.derive_private_key(seed, b"patient").private_bytes_raw() == expected


def test_a_seed_of_the_wrong_size_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="seed"):
        ecies.derive_private_key(b"short", b"patient")


def test_an_opener_opens_what_seal_and_a_sealer_made_and_refuses_the_rest() -> None:
    recipient = ecies.generate_private_key()
    public = ecies.public_bytes(recipient)
    sealer = ecies.Sealer(public)
    together = [sealer.seal(bytes([n]) * 3, b"ad%d" % n) for n in range(5)]
    alone = ecies.seal(public, b"alone", b"x")
    opener = ecies.Opener(recipient)
    assert [opener.open(v, b"ad%d" % n) for n, v in enumerate(together)] == [
        bytes([n]) * 3 for n in range(5)
    ]
    assert opener.open(alone, b"x") == b"alone"
    with pytest.raises(DecryptionError):
        opener.open(together[0], b"ad1")  # another value's context
    with pytest.raises(DecryptionError):
        ecies.Opener(ecies.generate_private_key()).open(alone, b"x")
    with pytest.raises(DecryptionError):
        opener.open(alone[:10])
    low_order = bytes(32) + alone[32:]
    with pytest.raises(DecryptionError):
        opener.open(low_order, b"x")


def test_an_opener_keeps_a_bounded_number_of_sender_keys() -> None:
    recipient = ecies.generate_private_key()
    opener = ecies.Opener(recipient)
    for n in range(200):
        value = ecies.seal(ecies.public_bytes(recipient), b"v", b"")
        assert opener.open(value) == b"v"
        assert len(opener._keys) <= ecies.Opener._MAX_KEYS, n
