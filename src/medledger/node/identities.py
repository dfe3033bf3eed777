"""Identities at rest: keystore files under a passphrase, and the keys derived from them.

Every identity is one keystore (v3, scrypt) holding a secp256k1 signing key; the
X25519 keys of patients and custodians are derived from it, one per purpose. The
passphrase comes from ``MEDLEDGER_PASSPHRASE``, or is asked for at a terminal.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from medledger.crypto import ecies
from medledger.crypto.keys import PrivateKey
from medledger.crypto.keystore import encrypt_keystore
from medledger.errors import InvalidInput, UsageError

PASSPHRASE_ENV = "MEDLEDGER_PASSPHRASE"  # noqa: S105 - the variable's name, not its value
PATIENT_LABEL = b"patient"
CUSTODIAN_LABEL = b"custodian"
_asked: list[str] = []


def encryption_key(key: PrivateKey, label: bytes) -> X25519PrivateKey:
    """The X25519 key an identity uses for ``label`` (patient records, custodian shares)."""
    return ecies.derive_private_key(key.to_bytes(), label)


def read_keystore(path: Path) -> dict[str, Any]:
    """A keystore document; FileNotFoundError if there is none, so the caller can say
    which key is missing."""
    try:
        return dict(json.loads(path.read_text()))
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"keystore {path.name} cannot be read: {exc}") from None


def write_keystore(path: Path, key: PrivateKey, *, scrypt_n: int) -> None:
    """Encrypt ``key`` under the passphrase into a new keystore file at ``path``."""
    if path.exists():
        raise UsageError(f"a keystore already exists at {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    document = encrypt_keystore(key, passphrase(), scrypt_n=scrypt_n)
    # Written whole, then renamed: a crash never leaves half a keystore.
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(document))
    partial.chmod(0o600)
    partial.replace(path)


def write_keystores(keys: Mapping[Path, PrivateKey], *, scrypt_n: int) -> None:
    """Write several keystores at once: scrypt runs outside the GIL, one per core."""
    with ThreadPoolExecutor() as pool:
        list(pool.map(lambda item: write_keystore(item[0], item[1], scrypt_n=scrypt_n),
                      keys.items()))  # fmt: skip


def patient_public_key(patient: PrivateKey) -> bytes:
    """The X25519 key a patient publishes when registering: records are sealed to it."""
    return ecies.public_bytes(encryption_key(patient, PATIENT_LABEL))


def custodian_public_key(custodian: PrivateKey) -> bytes:
    """The X25519 key shares are sealed to, as genesis publishes it."""
    return ecies.public_bytes(encryption_key(custodian, CUSTODIAN_LABEL))


def passphrase() -> str:
    """``$MEDLEDGER_PASSPHRASE``; else, at a terminal, asked once (never echoed)."""
    value = os.environ.get(PASSPHRASE_ENV)
    if value:
        return value
    if not _asked and sys.stdin.isatty():
        _asked.append(getpass.getpass("keystore passphrase: "))
    if not _asked or not _asked[0]:
        raise UsageError(f"set {PASSPHRASE_ENV} to the passphrase of the keystores")
    return _asked[0]
