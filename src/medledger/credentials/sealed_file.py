"""A JSON document kept on disk encrypted under a key derived from its owner's keystore.

Wallets and issuer state hold health claims and private keys: they are written
whole to a temporary file, then renamed over the old one, so a crash leaves the
previous version or the new one, never half of either.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from medledger.crypto import aead, ecies
from medledger.crypto.keys import PrivateKey

__all__ = ["file_key", "load_sealed", "save_sealed"]

_ASSOCIATED = b"medledger sealed file"


def file_key(owner: PrivateKey, label: bytes) -> bytes:
    return ecies.derive_secret(owner.to_bytes(), label)


def save_sealed(path: Path, key: bytes, document: Any) -> None:
    sealed = aead.encrypt(key, json.dumps(document).encode(), _ASSOCIATED)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(sealed)
    partial.chmod(0o600)
    with partial.open("rb") as handle:
        os.fsync(handle.fileno())
    partial.replace(path)


def load_sealed(path: Path, key: bytes) -> Any:
    """The document; DecryptionError if the key is wrong or the file was altered."""
    return json.loads(aead.decrypt(key, path.read_bytes(), _ASSOCIATED))
