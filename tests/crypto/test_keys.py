import pickle

import pytest
from eth_keys.datatypes import PrivateKey as EthPrivateKey
from eth_keys.datatypes import PublicKey as EthPublicKey
from eth_keys.datatypes import Signature as EthSignature
from hypothesis import given, settings
from hypothesis import strategies as st

from medledger.crypto.errors import InvalidAddress, InvalidSignature
from medledger.crypto.keys import (
    Address,
    PrivateKey,
    PublicKey,
    keccak256,
    recover_address,
    to_checksum_address,
    verify_signature,
)
from medledger.errors import InvalidInput, UsageError, VerificationError

N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
P = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F

# Checked against eth_keys and eth_account before being written down.
KNOWN_SECRET = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
KNOWN_ADDRESS = "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"

# The test cases listed in the EIP-55 specification.
EIP55_VECTORS = [
    "0x52908400098527886E0F7030069857D2E4169EE7",
    "0x8617E340B3D01FA5F11F306F4090FD50E238070D",
    "0xde709f2102306220921060314715629080e2fb77",
    "0x27b1fdb04752bbc536007a920d24acb045561c26",
    "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
    "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
    "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
]

secrets = st.integers(min_value=1, max_value=N - 1).map(lambda k: k.to_bytes(32, "big"))
digests = st.binary(min_size=32, max_size=32)


def key() -> PrivateKey:
    return PrivateKey.from_hex(KNOWN_SECRET)


def with_s(signature: bytes, s: int) -> bytes:
    return signature[:32] + s.to_bytes(32, "big") + signature[64:]


def with_v(signature: bytes, v: int) -> bytes:
    return signature[:64] + bytes((v,))


# --- hashing and addresses -------------------------------------------------


def test_keccak256_is_ethereum_keccak_not_sha3() -> None:
    assert keccak256(b"").hex() == (
        "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    )


@pytest.mark.parametrize("address", EIP55_VECTORS)
def test_eip55_vectors(address: str) -> None:
    assert to_checksum_address(address) == address
    assert to_checksum_address(address.lower()) == address
    assert to_checksum_address(address[2:].upper()) == address
    assert to_checksum_address(bytes.fromhex(address[2:])) == address


@pytest.mark.parametrize("address", EIP55_VECTORS[4:])
def test_mixed_case_with_wrong_checksum_is_rejected(address: str) -> None:
    index = next(i for i, c in enumerate(address) if i > 1 and c.isalpha())
    flipped = address[:index] + address[index].swapcase() + address[index + 1 :]
    with pytest.raises(InvalidAddress, match="checksum"):
        to_checksum_address(flipped)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "0x",
        "0x" + "ab" * 19,
        "0x" + "ab" * 21,
        "0x" + "zz" * 20,
        "0X" + "ab" * 20,
        " 0x" + "ab" * 20,
        "0x" + "ab" * 20 + "\n",
        b"\x01" * 19,
        b"\x01" * 21,
        b"",
        12345,
        None,
    ],
)
def test_bad_addresses_are_rejected(value: object) -> None:
    with pytest.raises(InvalidAddress):
        to_checksum_address(value)  # type: ignore[arg-type]


def test_invalid_address_is_invalid_input() -> None:
    assert issubclass(InvalidAddress, InvalidInput)


# --- keys --------------------------------------------------------------------


def test_known_private_key_gives_known_address() -> None:
    assert key().address == KNOWN_ADDRESS
    assert key().public_key.address == KNOWN_ADDRESS
    assert PrivateKey.from_hex("0x" + KNOWN_SECRET).address == KNOWN_ADDRESS
    assert PrivateKey.from_hex(KNOWN_SECRET.upper()).to_bytes().hex() == KNOWN_SECRET


@settings(max_examples=50)
@given(secrets)
def test_address_matches_eth_keys(secret: bytes) -> None:
    expected = str(EthPrivateKey(secret).public_key.to_checksum_address())
    assert PrivateKey.from_bytes(secret).address == expected


@pytest.mark.parametrize(
    "secret",
    [
        bytes(32),
        N.to_bytes(32, "big"),
        (N + 1).to_bytes(32, "big"),
        b"\xff" * 32,
        b"\x01" * 31,
        b"\x01" * 33,
    ],
)
def test_out_of_range_or_wrong_size_private_keys_are_rejected(secret: bytes) -> None:
    with pytest.raises(InvalidInput):
        PrivateKey.from_bytes(secret)


@pytest.mark.parametrize(
    "text", ["", "0x", KNOWN_SECRET[:-2], KNOWN_SECRET + "00", "g" + KNOWN_SECRET[1:]]
)
def test_bad_hex_private_keys_are_rejected_without_echo(text: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        PrivateKey.from_hex(text)
    assert KNOWN_SECRET[:16] not in str(caught.value)


def test_private_key_repr_hides_the_secret() -> None:
    secret_hex = KNOWN_SECRET
    shown = repr(key()) + str(key()) + f"{key()}"
    assert secret_hex not in shown.lower()
    assert KNOWN_ADDRESS in shown


def test_private_key_refuses_pickling() -> None:
    with pytest.raises(TypeError):
        pickle.dumps(key())


def test_keys_are_immutable() -> None:
    private = key()
    with pytest.raises(AttributeError):
        private._address = Address("0x" + "00" * 20)
    with pytest.raises(AttributeError):
        del private._key
    with pytest.raises(AttributeError):
        private.public_key._compressed = b""
    assert private.address == KNOWN_ADDRESS


def test_generate_uses_the_given_random_source_and_rejects_out_of_range_draws() -> None:
    draws = iter([bytes(32), b"\xff" * 32, bytes.fromhex(KNOWN_SECRET)])
    calls: list[int] = []

    def randbytes(n: int) -> bytes:
        calls.append(n)
        return next(draws)

    assert PrivateKey.generate(randbytes).address == KNOWN_ADDRESS
    assert calls == [32, 32, 32]


def test_generate_rejects_a_short_random_source() -> None:
    with pytest.raises(UsageError):
        PrivateKey.generate(lambda n: b"\x01" * (n - 1))


def test_generate_defaults_to_fresh_keys() -> None:
    assert PrivateKey.generate().address != PrivateKey.generate().address


def test_public_key_encodings_round_trip() -> None:
    public = key().public_key
    compressed, uncompressed = public.to_bytes(), public.to_bytes(compressed=False)
    assert len(compressed) == 33 and compressed[0] in (2, 3)
    assert len(uncompressed) == 65 and uncompressed[0] == 4
    assert PublicKey.from_bytes(compressed) == public == PublicKey.from_bytes(uncompressed)
    assert hash(PublicKey.from_bytes(compressed)) == hash(public)
    assert PublicKey.from_bytes(uncompressed).address == KNOWN_ADDRESS
    assert public != PrivateKey.from_bytes(b"\x01" * 32).public_key
    assert public != compressed
    assert EthPublicKey(uncompressed[1:]).to_checksum_address() == KNOWN_ADDRESS


def not_on_curve_x() -> int:
    x = 1
    while pow((x**3 + 7) % P, (P - 1) // 2, P) != P - 1:
        x += 1
    return x


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x02" * 32,
        b"\x02" * 34,
        b"\x04" * 64,
        b"\x05" + bytes(32),
        b"\x02" + not_on_curve_x().to_bytes(32, "big"),
        b"\x02" + P.to_bytes(32, "big"),
        b"\x04" + bytes(64),
    ],
)
def test_bad_public_keys_are_rejected(data: bytes) -> None:
    with pytest.raises(InvalidInput):
        PublicKey.from_bytes(data)


def test_hybrid_public_key_encoding_is_rejected() -> None:
    uncompressed = key().public_key.to_bytes(compressed=False)
    hybrid = bytes((6 + (uncompressed[64] & 1),)) + uncompressed[1:]
    with pytest.raises(InvalidInput, match="prefix"):
        PublicKey.from_bytes(hybrid)


# --- signatures --------------------------------------------------------------


@settings(max_examples=50)
@given(secrets, digests)
def test_sign_recover_round_trip(secret: bytes, digest: bytes) -> None:
    private = PrivateKey.from_bytes(secret)
    signature = private.sign_digest(digest)
    assert len(signature) == 65
    assert signature[64] in (27, 28)
    assert 0 < int.from_bytes(signature[32:64], "big") <= N // 2
    assert recover_address(digest, signature) == private.address
    verify_signature(digest, signature, private.address)


@settings(max_examples=30)
@given(secrets, digests)
def test_signatures_match_eth_keys(secret: bytes, digest: bytes) -> None:
    ours = PrivateKey.from_bytes(secret).sign_digest(digest)
    theirs = EthPrivateKey(secret).sign_msg_hash(digest)
    # Both use RFC 6979 nonces, so the signatures are identical, not merely valid.
    assert ours == theirs.to_bytes()[:64] + bytes((theirs.v + 27,))
    recovered = theirs.recover_public_key_from_msg_hash(digest).to_checksum_address()
    assert recover_address(digest, theirs.to_bytes()) == str(recovered)


@settings(max_examples=30)
@given(digests, st.integers(min_value=0, max_value=31))
def test_tampered_digest_does_not_verify(digest: bytes, index: int) -> None:
    signature = key().sign_digest(digest)
    tampered = bytearray(digest)
    tampered[index] ^= 1
    with pytest.raises(InvalidSignature, match=f"signature by 0x.*, expected {KNOWN_ADDRESS}"):
        verify_signature(bytes(tampered), signature, key().address)


@settings(max_examples=30)
@given(digests, st.integers(min_value=0, max_value=63))
def test_tampered_signature_does_not_verify(digest: bytes, index: int) -> None:
    signature = bytearray(key().sign_digest(digest))
    signature[index] ^= 1
    with pytest.raises(InvalidSignature):
        verify_signature(digest, bytes(signature), key().address)


def test_a_signature_recovered_without_remembering_is_checked_alike_and_not_kept() -> None:
    """Each request's own signature is checked once: kept, it would only crowd out the
    transactions a ledger checks several times, and age into the collector's oldest
    generation."""
    from medledger.crypto.keys import _recover

    digest = keccak256(b"request, once")
    signature = key().sign_digest(digest)
    before = _recover.cache_info().currsize
    assert recover_address(digest, signature, remember=False) == KNOWN_ADDRESS
    assert _recover.cache_info().currsize == before
    high_s = signature[:32] + (N - int.from_bytes(signature[32:64], "big")).to_bytes(32, "big")
    with pytest.raises(InvalidSignature, match="upper half"):
        recover_address(digest, high_s + bytes((55 - signature[64],)), remember=False)
    assert recover_address(digest, signature) == KNOWN_ADDRESS
    assert _recover.cache_info().currsize == before + 1


def test_verify_names_both_addresses() -> None:
    digest = keccak256(b"x")
    other = PrivateKey.from_bytes(b"\x01" * 32)
    with pytest.raises(InvalidSignature) as caught:
        verify_signature(digest, other.sign_digest(digest), key().address)
    assert str(caught.value) == f"signature by {other.address}, expected {KNOWN_ADDRESS}"
    assert isinstance(caught.value, VerificationError)


def test_v_may_be_0_1_27_or_28() -> None:
    digest = keccak256(b"v")
    signature = key().sign_digest(digest)
    parity = signature[64] - 27
    assert recover_address(digest, with_v(signature, parity)) == KNOWN_ADDRESS
    assert recover_address(digest, with_v(signature, 27 + parity)) == KNOWN_ADDRESS
    assert recover_address(digest, with_v(signature, 1 - parity)) != KNOWN_ADDRESS
    assert recover_address(digest, with_v(signature, 28 - parity)) != KNOWN_ADDRESS


@pytest.mark.parametrize("v", [2, 3, 26, 29, 35, 36, 255])
def test_other_v_values_are_rejected(v: int) -> None:
    signature = key().sign_digest(keccak256(b"v"))
    with pytest.raises(InvalidSignature, match=f"v is {v}"):
        recover_address(keccak256(b"v"), with_v(signature, v))


def test_high_s_is_rejected() -> None:
    digest = keccak256(b"malleable")
    signature = key().sign_digest(digest)
    s = int.from_bytes(signature[32:64], "big")
    # (r, n - s) with the other parity is the mirrored twin: valid ECDSA, banned by EIP-2.
    mirrored = with_v(with_s(signature, N - s), 55 - signature[64])
    mirrored_theirs = EthSignature(mirrored[:64] + bytes((mirrored[64] - 27,)))
    assert (
        mirrored_theirs.recover_public_key_from_msg_hash(digest).to_checksum_address()
        == KNOWN_ADDRESS
    )
    with pytest.raises(InvalidSignature, match="EIP-2"):
        recover_address(digest, mirrored)


@pytest.mark.parametrize(
    ("r", "s", "problem"),
    [
        (0, 1, "r is zero"),
        (N, 1, "r is zero or not below"),
        (2**256 - 1, 1, "r is zero or not below"),
        (1, 0, "s is zero"),
        (1, N // 2 + 1, "EIP-2"),
        (1, N, "EIP-2"),
    ],
)
def test_r_and_s_out_of_range_are_rejected(r: int, s: int, problem: str) -> None:
    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big") + b"\x1b"
    with pytest.raises(InvalidSignature, match=problem):
        recover_address(keccak256(b"range"), signature)


def test_r_that_is_no_curve_point_is_rejected() -> None:
    signature = not_on_curve_x().to_bytes(32, "big") + (1).to_bytes(32, "big") + b"\x1b"
    with pytest.raises(InvalidSignature, match="no public key"):
        recover_address(keccak256(b"point"), signature)


@pytest.mark.parametrize("size", [0, 1, 63, 64, 66, 130])
def test_wrong_signature_lengths_are_rejected(size: int) -> None:
    signature = (key().sign_digest(keccak256(b"len")) * 3)[:size]
    with pytest.raises(InvalidSignature, match=f"65 bytes, got {size}"):
        recover_address(keccak256(b"len"), signature)


def test_non_bytes_signature_is_rejected() -> None:
    with pytest.raises(InvalidSignature, match="not bytes"):
        recover_address(keccak256(b"x"), "00" * 65)  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [0, 31, 33, 64])
def test_wrong_digest_lengths_are_rejected(size: int) -> None:
    signature = key().sign_digest(keccak256(b"x"))
    with pytest.raises(InvalidInput, match="digest must be 32 bytes"):
        recover_address(b"\x01" * size, signature)
    with pytest.raises(InvalidInput, match="digest must be 32 bytes"):
        key().sign_digest(b"\x01" * size)


def test_bytearray_inputs_are_accepted() -> None:
    digest = keccak256(b"mutable")
    # Outside the declared types, but callers holding buffers should not be punished.
    signature = key().sign_digest(bytearray(digest))  # type: ignore[arg-type]
    recovered = recover_address(bytearray(digest), bytearray(signature))  # type: ignore[arg-type]
    assert recovered == KNOWN_ADDRESS
