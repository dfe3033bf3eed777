"""Private keys encrypted at rest as Ethereum keystore v3 documents (Web3 Secret Storage).

The key is encrypted with AES-128-CTR under the first half of a key derived from the
password (scrypt, or PBKDF2-HMAC-SHA256 in keystores from elsewhere); the MAC is
keccak256 of the second half and the ciphertext. Opening a keystore is on the path
of every command, so this module imports only what it uses.
"""

import hashlib
import hmac
import os
import uuid
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from medledger.crypto.errors import KeystoreError
from medledger.crypto.keys import PrivateKey, keccak256
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
    params = {"dklen": 32, "n": scrypt_n, "r": 8, "p": 1, "salt": os.urandom(32).hex()}
    derived = _derive("scrypt", params, password)
    iv = os.urandom(16)
    ciphertext = _aes_ctr(derived[:16], iv, key.to_bytes())
    return {
        "address": key.address[2:].lower(),
        "crypto": {
            "cipher": "aes-128-ctr",
            "cipherparams": {"iv": iv.hex()},
            "ciphertext": ciphertext.hex(),
            "kdf": "scrypt",
            "kdfparams": params,
            "mac": keccak256(derived[16:32] + ciphertext).hex(),
        },
        "id": str(uuid.uuid4()),
        "version": 3,
    }


def _derive(kdf: str, params: Mapping[str, Any], password: str) -> bytes:
    salt = bytes.fromhex(str(params["salt"]))
    try:
        secret = password.encode("utf-8")
    except UnicodeEncodeError:
        # Unchained: the exception holds the password.
        raise UsageError("the passphrase is not valid Unicode text") from None
    if kdf == "scrypt":
        # PyCryptodome's scrypt, not OpenSSL's: twice as fast here, and it opens keystores
        # with n >= 2**(16 r), which OpenSSL refuses (the spec's own vector is one).
        from Crypto.Protocol.KDF import scrypt

        derived = scrypt(secret, salt, 32, N=params["n"], r=params["r"], p=params["p"])  # type: ignore[arg-type]
        assert isinstance(derived, bytes), "one key asked for, one key derived"
        return derived
    return hashlib.pbkdf2_hmac("sha256", secret, salt, params["c"], dklen=32)


def _aes_ctr(key: bytes, iv: bytes, data: bytes) -> bytes:
    cipher = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
    return cipher.update(data) + cipher.finalize()


def _lower_keys(value: Any, where: str) -> dict[str, Any]:
    # Some wallets write "Crypto": keys are matched case-insensitively.
    if not isinstance(value, Mapping):
        raise KeystoreError(f"keystore: {where} is not an object")
    return {str(k).lower(): v for k, v in value.items()}


def _positive_int(params: Mapping[str, Any], name: str) -> int:
    value = params.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise KeystoreError(f"keystore: kdfparams.{name} is not a positive integer")
    return value


def _check_shape(keystore: Mapping[str, Any]) -> dict[str, Any]:
    """Reject what this module does not open: other versions and ciphers, huge KDF costs."""
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
    crypto = document["crypto"]
    try:
        derived = _derive(crypto["kdf"], crypto["kdfparams"], password)
        ciphertext = bytes.fromhex(crypto["ciphertext"])
        mac = keccak256(derived[16:32] + ciphertext)
        if not hmac.compare_digest(mac, bytes.fromhex(crypto["mac"])):
            raise ValueError("MAC mismatch")
        iv = bytes.fromhex(_lower_keys(crypto["cipherparams"], "cipherparams")["iv"])
        key = PrivateKey.from_bytes(_aes_ctr(derived[:16], iv, ciphertext))
    except (ValueError, TypeError, KeyError, AttributeError, InvalidInput):
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
