"""Private keys encrypted at rest as Ethereum keystore v3 documents."""

from collections.abc import Mapping
from typing import Any

from eth_keyfile.exceptions import EthKeyfileException
from eth_keyfile.keyfile import create_keyfile_json, decode_keyfile_json

from medledger.crypto.errors import KeystoreError
from medledger.crypto.keys import PrivateKey
from medledger.errors import InvalidInput, UsageError

__all__ = ["decrypt_keystore", "encrypt_keystore"]

# A keystore from elsewhere chooses its own KDF cost; n*r*p bounds scrypt's
# memory and time so a hostile file cannot exhaust the host. 2**21 admits both
# our default (n=2**18, r=8, p=1) and the spec's vector (n=2**18, r=1, p=8).
_MAX_SCRYPT_COST = 2**21
_MAX_PBKDF2_ROUNDS = 10_000_000


def encrypt_keystore(key: PrivateKey, password: str, *, scrypt_n: int = 2**18) -> dict[str, Any]:
    """Encrypt ``key`` under ``password`` (scrypt, r=8, p=1; AES-128-CTR; keccak MAC)."""
    if scrypt_n < 2 or scrypt_n & (scrypt_n - 1) or scrypt_n * 8 > _MAX_SCRYPT_COST:
        raise UsageError(f"scrypt_n must be a power of two in [2, {_MAX_SCRYPT_COST // 8}]")
    return create_keyfile_json(
        key.to_bytes(), password.encode("utf-8"), version=3, kdf="scrypt", iterations=scrypt_n
    )


def _lower_keys(value: Any, where: str) -> dict[str, Any]:
    # Some wallets write "Crypto"; eth_keyfile also matches keys case-insensitively.
    if not isinstance(value, Mapping):
        raise KeystoreError(f"keystore: {where} is not an object")
    return {str(k).lower(): v for k, v in value.items()}


def _positive_int(params: Mapping[str, Any], name: str) -> int:
    value = params.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise KeystoreError(f"keystore: kdfparams.{name} is not a positive integer")
    return value


def _check_shape(keystore: Mapping[str, Any]) -> dict[str, Any]:
    """Reject what eth_keyfile would mishandle: other versions, ciphers, huge KDF costs."""
    document = _lower_keys(keystore, "document")
    if document.get("version") != 3:
        raise KeystoreError("keystore: version must be 3")
    crypto = _lower_keys(document.get("crypto"), "crypto")
    if crypto.get("cipher") != "aes-128-ctr":
        raise KeystoreError("keystore: cipher must be aes-128-ctr")
    params = _lower_keys(crypto.get("kdfparams"), "kdfparams")
    if _positive_int(params, "dklen") != 32:
        raise KeystoreError("keystore: kdfparams.dklen must be 32")
    kdf = crypto.get("kdf")
    if kdf == "scrypt":
        cost = _positive_int(params, "n") * _positive_int(params, "r") * _positive_int(params, "p")
        if cost > _MAX_SCRYPT_COST:
            raise KeystoreError("keystore: scrypt cost n*r*p is too high")
    elif kdf == "pbkdf2":
        if params.get("prf") != "hmac-sha256":
            raise KeystoreError("keystore: pbkdf2 prf must be hmac-sha256")
        if _positive_int(params, "c") > _MAX_PBKDF2_ROUNDS:
            raise KeystoreError("keystore: pbkdf2 round count is too high")
    else:
        raise KeystoreError("keystore: kdf must be scrypt or pbkdf2")
    document["crypto"] = {**crypto, "kdfparams": params}
    return document


def decrypt_keystore(keystore: Mapping[str, Any], password: str) -> PrivateKey:
    """Decrypt a v3 keystore; KeystoreError if malformed, the password is wrong, or
    the "address" field does not match the key."""
    document = _check_shape(keystore)
    try:
        secret = decode_keyfile_json(document, password.encode("utf-8"))
        key = PrivateKey.from_bytes(secret)
    except (EthKeyfileException, ValueError, TypeError, KeyError, AttributeError, InvalidInput):
        # Opaque and unchained on purpose: the causes can carry key material.
        raise KeystoreError("keystore: wrong password or corrupted keystore") from None
    claimed = document.get("address")
    if claimed is not None:
        if not isinstance(claimed, str):
            raise KeystoreError("keystore: address is not a string")
        digits = claimed.lower().removeprefix("0x")
        if digits != key.address[2:].lower():
            raise KeystoreError(f"keystore: address field {claimed!r} does not match the key")
    return key
