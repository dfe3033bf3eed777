"""A sandbox home: a whole consortium in one directory, for the CLI and for trying things.

``medledger init`` founds a network of three institutions (Hospital A, Hospital
B, a checkup centre) on the embedded orderer and registers one clinician at
Hospital A. The home holds every founder's keystore so that one machine can
cosign checkpoints (2 of 3) on its own; on a real network each institution keeps
its own. Commands then run Hospital A's node: it catches up with the log, does
the work, and stops.

Every identity is one keystore (v3, scrypt) holding a secp256k1 signing key; the
X25519 keys of patients and custodians are derived from it, one per purpose.
Keystores are encrypted under the passphrase in ``MEDLEDGER_PASSPHRASE``. The vault
is a SQLite file in the home unless ``MEDLEDGER_VAULT_URL`` names another database.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medledger.access import care
from medledger.crypto.keys import Address, PrivateKey, to_checksum_address
from medledger.crypto.keystore import decrypt_keystore
from medledger.errors import UsageError
from medledger.institution import Institution, Parts, running
from medledger.ledger.contracts import identity
from medledger.ledger.genesis import Founder, build_genesis, load_genesis, save_genesis
from medledger.ledger.node import LedgerNode
from medledger.ledger.ordering.embedded import EmbeddedOrderer
from medledger.ledger.tx import SignedTransaction
from medledger.node.identities import (
    custodian_public_key,
    passphrase,
    patient_public_key,
    read_keystore,
    write_keystore,
    write_keystores,
)
from medledger.protocol import contract_set
from medledger.records.store import VaultStore

HOME_ENV = "MEDLEDGER_HOME"
VAULT_URL_ENV = "MEDLEDGER_VAULT_URL"
DEFAULT_HOME = Path("medledger-home")
NETWORK_ID = 2027
FOUNDERS = [
    ("hospital-a", "Hospital A"),
    ("hospital-b", "Hospital B"),
    ("checkup", "Checkup centre"),
]
COSIGNERS = ["hospital-a", "hospital-b"]
CLINICIAN, CLINICIAN_ROLE = "dr-lee", "doctor"
ROLES = ["doctor", "nurse", "pharmacist", "officer", "verifier"]
_ALIAS = re.compile(r"[a-z][a-z0-9-]{0,31}")


def founding_genesis(
    network_id: int, name: str, founders: Sequence[tuple[str, str, PrivateKey, PrivateKey]],
    settings: Mapping[str, Any] | None = None,
) -> SignedTransaction:  # fmt: skip
    """A network of ``(id, name, member key, custodian key)`` founders, the first signing:
    2 votes admit or remove a member, 2 cosignatures make a checkpoint; ``settings`` for
    the domain contracts (access/settings.py) where the defaults will not do."""
    return build_genesis(
        network_id=network_id,
        name=name,
        founders=[
            Founder(ident, title, member.address, custodian_public_key(custodian))
            for ident, title, member, custodian in founders
        ],
        signer=founders[0][2],
        vote_threshold=2,
        checkpoint_threshold=2,
        roles=ROLES,
        protocol=contract_set().protocol(),
        settings=settings,
    )


@dataclass(frozen=True)
class Home:
    path: Path

    @classmethod
    def at(cls, path: Path | None = None) -> Home:
        chosen = path or Path(os.environ.get(HOME_ENV, DEFAULT_HOME))
        return cls(chosen)

    @property
    def genesis_path(self) -> Path:
        return self.path / "genesis.tx"

    def exists(self) -> bool:
        return self.genesis_path.exists()

    def require(self) -> None:
        if not self.exists():
            raise UsageError(f"no medledger home at {self.path}: run `medledger init` first")

    # -- keys ------------------------------------------------------------------

    def _keystore(self, name: str) -> Path:
        return self.path / "keys" / f"{name}.json"

    def save_key(self, name: str, key: PrivateKey, *, scrypt_n: int) -> None:
        write_keystore(self._keystore(name), key, scrypt_n=scrypt_n)

    def load_key(self, name: str) -> PrivateKey:
        return decrypt_keystore(self._document(name), passphrase())

    def address_of(self, name: str) -> Address:
        """The address a keystore declares, read without the passphrase."""
        return to_checksum_address("0x" + str(self._document(name)["address"]))

    def _document(self, name: str) -> dict[str, Any]:
        try:
            return read_keystore(self._keystore(name))
        except FileNotFoundError:
            raise UsageError(f"no key named {name!r} in {self.path}") from None

    def patient_name(self, alias: str) -> str:
        if not _ALIAS.fullmatch(alias):
            raise UsageError(f"patient alias {alias!r}: use lowercase letters, digits and dashes")
        return f"patient-{alias}"

    # -- founding --------------------------------------------------------------

    async def create(
        self, *, scrypt_n: int, progress: Callable[[str], None] = lambda _: None
    ) -> None:
        """Found the sandbox network and register its clinician; ``progress`` hears each
        step, since sealing seven keystores under scrypt takes seconds."""
        if self.exists():
            raise UsageError(f"{self.path} already holds a medledger home")
        self.path.mkdir(parents=True, exist_ok=True)
        founders = {ident: PrivateKey.generate() for ident, _ in FOUNDERS}
        custodians = {ident: PrivateKey.generate() for ident, _ in FOUNDERS}
        clinician = PrivateKey.generate()
        keys = {**founders, **{f"{i}-custodian": k for i, k in custodians.items()},
                CLINICIAN: clinician}  # fmt: skip
        progress(f"sealing {len(keys)} keystores (scrypt)")
        write_keystores({self._keystore(n): k for n, k in keys.items()}, scrypt_n=scrypt_n)
        progress("founding the ledger")
        genesis = founding_genesis(
            NETWORK_ID,
            "medledger sandbox",
            [(ident, name, founders[ident], custodians[ident]) for ident, name in FOUNDERS],
        )
        save_genesis(genesis, self.genesis_path)
        progress(f"registering {CLINICIAN} at {FOUNDERS[0][1]}")
        async with self.session(writer=FOUNDERS[0][0]) as session:
            payload = {"address": clinician.address, "role": CLINICIAN_ROLE}
            await session.node.submit_payload(
                founders[FOUNDERS[0][0]], identity.REGISTER_PARTICIPANT, payload
            )

    async def add_patient(self, alias: str, *, scrypt_n: int) -> Address:
        """Create a patient's keystore, register them under their pseudonym and enrol them
        at the sandbox's hospital, whose clinician writes their records."""
        name = self.patient_name(alias)
        key = PrivateKey.generate()
        self.save_key(name, key, scrypt_n=scrypt_n)
        public = patient_public_key(key)
        async with self.session() as session:
            payload = {"encryption_key": "0x" + public.hex()}
            await session.node.submit_payload(key, identity.REGISTER_SUBJECT, payload)
            hospital = {"institution": self.address_of(FOUNDERS[0][0])}
            await session.node.submit_payload(key, care.ENROL, hospital)
        return key.address

    # -- running ---------------------------------------------------------------

    @asynccontextmanager
    async def session(self, *, writer: str | None = None) -> AsyncIterator[Session]:
        """Hospital A's node and vault, caught up with the log; ``writer`` signs as it."""
        self.require()
        parts = Parts(
            genesis=load_genesis(self.genesis_path),
            state_url=str(self.path / "ledger.db"),
            vault_url=os.environ.get(VAULT_URL_ENV) or str(self.path / "vault.db"),
            name=FOUNDERS[0][0],
            member=self.load_key(writer) if writer else None,
        )
        async with running(parts, EmbeddedOrderer(self.path / "ordering.db")) as institution:
            yield Session(self, institution)


@dataclass(frozen=True)
class Session:
    home: Home
    institution: Institution

    @property
    def node(self) -> LedgerNode:
        return self.institution.node

    @property
    def store(self) -> VaultStore:
        return self.institution.vault

    async def checkpoint(self) -> int:
        """Have two founders cosign the current head; return its size."""
        size = self.node.size
        for name in COSIGNERS:
            await self.node.cosign_head(size, key=self.home.load_key(name))
        return size
