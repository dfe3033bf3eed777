"""A consortium with a checkup centre that issues credentials and an insurer that verifies."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from medledger.credentials.claims import HealthClaims, derive_claims
from medledger.credentials.issuer import Issuer
from medledger.credentials.registry import Registry
from medledger.credentials.request import SignedRequest
from medledger.credentials.verifier import Verifier
from medledger.credentials.wallet import Wallet
from medledger.crypto.keys import PrivateKey
from medledger.ledger.contracts import identity
from medledger.records.synthetic import generate_patients
from medledger.records.synthetic_checkup import CheckupResults, checkup_observations
from tests.ledger.consortium import key
from tests.records.world import World, world

INSURER = key("insurer")
CHECKUP_URL = "https://checkup.example"
HEALTHY = CheckupResults(hba1c_percent=5.8, bmi=24.3, systolic_mmhg=121, diastolic_mmhg=78,
                         smoking="never")  # fmt: skip


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def ask(s: Scene, verifier: Verifier | None = None, **terms: Any) -> SignedRequest:
    """A request signed by the insurer (or ``verifier``), for COVERAGE, open from now."""
    return (verifier or s.verifier).request(**{"purpose": "COVERAGE", "now_ms": now_ms(), **terms})


def checkup_resources(results: CheckupResults = HEALTHY, seed: int = 7) -> list[dict[str, Any]]:
    """A synthetic patient's history plus one checkup's Observations."""
    patient = next(generate_patients(1, seed=seed, records_per_patient=20))
    when = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
    return [patient.patient, *patient.resources,
            *checkup_observations(patient.patient["id"], when, results, seed=seed)]  # fmt: skip


@dataclass
class Scene:
    w: World
    issuer: Issuer
    verifier: Verifier
    wallet: Wallet
    patient: PrivateKey
    tails_dir: Path

    @property
    def registry(self) -> Registry:
        return Registry(self.w.node.store)

    def claims(self, results: CheckupResults = HEALTHY) -> HealthClaims:
        return derive_claims(checkup_resources(results))

    def issue_anoncreds(self, claims: HealthClaims | None = None) -> str:
        offer = self.issuer.offer()
        request = self.wallet.request_anoncreds(offer, self.registry)
        issued, credential_id = self.issuer.issue_anoncreds(claims or self.claims(), offer, request)
        self.wallet.store_anoncreds(issued, credential_id, self.registry)
        return credential_id

    def issue_sd_jwt(self, claims: HealthClaims | None = None, *, lifetime_s: int = 3600) -> str:
        holder = self.wallet.new_holder_key()
        now_s = now_ms() // 1000
        issuance, credential_id = self.issuer.issue_sd_jwt(
            claims or self.claims(), holder, now_s=now_s, lifetime_s=lifetime_s
        )
        self.wallet.store_sd_jwt(issuance, holder, credential_id, self.registry, now_s=now_s)
        return credential_id


@asynccontextmanager
async def scene(tmp_path: Path, tails_dir: Path) -> AsyncIterator[Scene]:
    async with world(tmp_path) as w:
        checkup = w.consortium.keys[2]
        await w.node.submit_payload(
            w.consortium.keys[1], identity.REGISTER_PARTICIPANT,
            {"address": INSURER.address, "role": "verifier"},
        )  # fmt: skip
        issuer = Issuer(w.node, checkup, tmp_path / "issuer", tails_dir=tails_dir, url=CHECKUP_URL)
        await issuer.setup(now_s=now_ms() // 1000, max_credentials=64)
        patient = await w.add_patient("alice")
        wallet = Wallet(tmp_path / "wallet.sealed", patient)
        yield Scene(w, issuer, Verifier(w.node, INSURER), wallet, patient, tails_dir)


def run(tmp_path: Path, tails_dir: Path, body: Callable[[Scene], Awaitable[None]]) -> None:
    async def main() -> None:
        async with scene(tmp_path, tails_dir) as s:
            await body(s)

    asyncio.run(main())
