"""The FHIR clients a node knows: an institution's systems (SMART Backend Services).

A backend client authenticates with a JWT it signs with its own key (``private_key_jwt``,
RFC 7523), checked against the public keys registered for it here. It reads as a ledger
participant: the person or service account whose grants it uses, whose keystore the
institution gives its node (sealed with the node's passphrase, like the node's own
keys), so that the node can sign the short delegation each token reads under. The
registry is a file in the node's data directory, written by ``medledger fhir client
add``, read at every token request, so a change needs no restart.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jwcrypto import jwk

from medledger.crypto.keys import Address, PrivateKey, to_checksum_address
from medledger.crypto.keystore import decrypt_keystore
from medledger.errors import InvalidInput, UsageError
from medledger.node.fhir.registry_file import RegistryFile

__all__ = ["BackendClient", "ClientRegistry"]

REGISTRY_FILE = "fhir-clients.json"
_CLIENT_ID = re.compile(r"[A-Za-z0-9._~\-]{1,128}")


def valid_client_id(client_id: str) -> bool:
    return _CLIENT_ID.fullmatch(client_id) is not None


@dataclass(frozen=True)
class BackendClient:
    client_id: str
    #: The client's public keys (a JWK Set), by which its assertions are checked.
    jwks: dict[str, Any]
    #: The participant it reads as, sealed with the node's passphrase.
    principal_keystore: dict[str, Any]

    def __post_init__(self) -> None:
        if not _CLIENT_ID.fullmatch(self.client_id):
            raise UsageError("client id: 1 to 128 letters, digits and . _ ~ -")
        keys = self.key_set().get("keys")
        if not keys or any(k.get("d") is not None for k in keys):
            raise UsageError("a client's JWK Set holds public keys only, at least one")

    def key_set(self) -> dict[str, Any]:
        return dict(self.jwks)

    def verifying_keys(self) -> jwk.JWKSet:
        try:
            return jwk.JWKSet.from_json(json.dumps(self.jwks))
        except (ValueError, jwk.InvalidJWKValue) as exc:
            raise InvalidInput(f"client {self.client_id}: unusable JWK Set: {exc}") from None

    @property
    def principal(self) -> Address:
        address = str(self.principal_keystore["address"]).removeprefix("0x")
        return to_checksum_address("0x" + address)

    def principal_key(self, passphrase: str) -> PrivateKey:
        return decrypt_keystore(self.principal_keystore, passphrase)


class ClientRegistry:
    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / REGISTRY_FILE

    def _load(self) -> dict[str, Any]:
        return RegistryFile(self.path).load()

    def get(self, client_id: str) -> BackendClient | None:
        entry = self._load().get(client_id)
        if entry is None:
            return None
        return BackendClient(client_id, entry["jwks"], entry["principal_keystore"])

    def add(self, client: BackendClient) -> None:
        """Register or replace a client; written to a temporary file and renamed, so a
        crash leaves the old registry or the new one."""
        clients = self._load()
        clients[client.client_id] = {
            "jwks": client.jwks,
            "principal_keystore": client.principal_keystore,
        }
        RegistryFile(self.path).save(clients)

    def client_ids(self) -> list[str]:
        return sorted(self._load())
