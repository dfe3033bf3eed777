"""``medledger bench credentials``: AnonCreds prove/verify and SD-JWT verify, ours vs bare.

The insurer's question ("HbA1c below 6.5 % and non-smoker", two predicates, with
proof of non-revocation) is asked and answered ``rounds`` times through the
wallet and the verifier: the signed request checked, the issuer's documents and
status list read from the ledger, the wallet file saved, the outcome recorded
on the ledger. In the same rounds the bare ``anoncreds`` library proves and
verifies the same request on objects already loaded: the difference is our
overhead. SD-JWT: our verify (with the issuer key and revocation looked up on
the ledger) against the ``sd-jwt`` library's own verifier on the same
presentation. The machine floor is single-thread secp256k1 recovery.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anoncreds
from sd_jwt.verifier import SDJWTVerifier

from medledger.bench._network import bench_genesis, institution_in
from medledger.bench.ledger import signature_floor
from medledger.credentials import sdjwt, zk
from medledger.credentials.claims import HealthClaims, derive_claims
from medledger.credentials.issuer import Issuer
from medledger.credentials.registry import Registry
from medledger.credentials.request import Predicate, PresentationRequest
from medledger.credentials.verifier import Verifier
from medledger.credentials.wallet import Wallet
from medledger.crypto import ecies
from medledger.crypto.keys import PrivateKey
from medledger.ledger.contracts import identity
from medledger.ledger.timestamps import NS_PER_MS
from medledger.records.synthetic import generate_patients
from medledger.records.synthetic_checkup import CheckupResults, checkup_observations

NETWORK_ID = 31341
ASKED = (Predicate.parse("hba1c_x10 < 65"), Predicate.parse("non_smoker >= 1"))
DISCLOSED = ("hba1c_x10", "non_smoker")
Progress = Callable[[str], None]


def _key(label: str) -> PrivateKey:
    return PrivateKey.from_bytes(hashlib.sha256(b"bench-credentials/" + label.encode()).digest())


def _now_ms() -> int:
    return time.time_ns() // NS_PER_MS


def _resources() -> list[dict[str, Any]]:
    patient = next(generate_patients(1, seed=11, records_per_patient=20))
    results = CheckupResults(5.8, 24.3, 121, 78, "never")
    when = datetime(2026, 11, 20, tzinfo=UTC)
    observations = checkup_observations(patient.patient["id"], when, results)
    return [patient.patient, *patient.resources, *observations]


def _ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 2)


class _Bare:
    """The library alone, on the wallet's own request and credential, objects preloaded."""

    def __init__(self, wallet: Wallet, registry: Registry, request: PresentationRequest,
                 tails_dir: Path) -> None:  # fmt: skip
        held = wallet.credentials[0].held()
        cred_def_text = registry.document(held.cred_def_id)
        schema_id = json.loads(cred_def_text)["schemaId"]
        rev_reg_text = registry.document(held.rev_reg_id)
        status_text = registry.current_status(held.rev_reg_id)
        self.timestamp = int(json.loads(status_text)["timestamp"])
        self.link_secret = wallet.link_secret
        self.credential = anoncreds.Credential.load(held.credential)
        self.schemas = {schema_id: anoncreds.Schema.load(registry.document(schema_id))}
        self.cred_defs = {held.cred_def_id: anoncreds.CredentialDefinition.load(cred_def_text)}
        rev_reg = anoncreds.RevocationRegistryDefinition.load(rev_reg_text)
        self.rev_regs = {held.rev_reg_id: rev_reg}
        self.status = [anoncreds.RevocationStatusList.load(status_text)]
        tails = tails_dir / json.loads(rev_reg_text)["value"]["tailsHash"]
        self.state = anoncreds.CredentialRevocationState.create(
            rev_reg, self.status[0], held.index, str(tails)
        )
        self.request = anoncreds.PresentationRequest.load(zk.presentation_request(request, []))

    def prove(self) -> anoncreds.Presentation:
        present = anoncreds.PresentCredentials()
        present.add_predicates(self.credential, "p0", "p1", timestamp=self.timestamp,
                               rev_state=self.state)  # fmt: skip
        return anoncreds.Presentation.create(
            self.request, present, {}, self.link_secret, self.schemas, self.cred_defs
        )

    def verify(self, presentation: anoncreds.Presentation) -> None:
        ok = presentation.verify(
            self.request, self.schemas, self.cred_defs, self.rev_regs, self.status
        )
        if not ok:
            raise RuntimeError("the bare library did not verify its own presentation")


async def _anoncreds_rounds(
    rounds: int, wallet: Wallet, verifier: Verifier, registry: Registry, tails_dir: Path
) -> dict[str, list[float]]:
    """Ours (request, wallet, verifier, ledger record) and bare, interleaved round by round."""
    times: dict[str, list[float]] = {"prove": [], "verify": [], "bare_prove": [], "bare_verify": []}
    bare: _Bare | None = None
    for _ in range(rounds):
        signed = verifier.request(purpose="COVERAGE", fmt="anoncreds", now_ms=_now_ms(),
                                  predicates=ASKED)  # fmt: skip
        start = time.perf_counter()
        envelope = wallet.present(signed, registry, now_ms=_now_ms(), tails_dir=tails_dir)
        middle = time.perf_counter()
        await verifier.verify(signed, envelope, now_ms=_now_ms())
        times["prove"].append(middle - start)
        times["verify"].append(time.perf_counter() - middle)
        bare = bare or _Bare(wallet, registry, signed.request, tails_dir)
        start = time.perf_counter()
        presentation = bare.prove()
        middle = time.perf_counter()
        bare.verify(presentation)
        times["bare_prove"].append(middle - start)
        times["bare_verify"].append(time.perf_counter() - middle)
    return times


def _sdjwt_rates(
    count: int, issuer: Issuer, wallet: Wallet, verifier: Verifier, *, claims: HealthClaims,
    tails_dir: Path,
) -> dict[str, float]:  # fmt: skip
    """Verifications per second of one presentation: ours (ledger lookups) and the library's."""
    registry = Registry(verifier.node.store)
    holder = wallet.new_holder_key()
    now_s = _now_ms() // 1000
    issuance, credential_id = issuer.issue_sd_jwt(claims, holder, now_s=now_s)
    wallet.store_sd_jwt(issuance, holder, credential_id, registry, now_s=now_s)
    signed = verifier.request(purpose="COVERAGE", fmt="sd-jwt", now_ms=_now_ms(),
                              disclose=DISCLOSED)  # fmt: skip
    presentation = wallet.present(signed, registry, now_ms=_now_ms(),
                                  tails_dir=tails_dir)["presentation"]  # fmt: skip
    audience, nonce = signed.request.verifier, signed.request.id

    def ours() -> None:
        checked = sdjwt.verify_sd_jwt(presentation, registry.jwk_for, audience=audience,
                                      nonce=nonce, now=_now_ms() // 1000)  # fmt: skip
        registry.check_not_revoked(registry.issuer_address(checked.issuer), checked.credential_id)

    def bare() -> None:
        SDJWTVerifier(presentation, lambda _iss, _header: issuer.jwk, audience,
                      nonce).get_verified_payload()  # fmt: skip

    # Alternating halves, best of two each, so drift in machine speed hits both alike.
    rates: dict[str, float] = {}
    for name, check in (("ours", ours), ("bare", bare)) * 2:
        start = time.perf_counter()
        for _ in range(count // 2):
            check()
        rates[name] = max(rates.get(name, 0.0), (count // 2) / (time.perf_counter() - start))
    return rates


def run(*, rounds: int = 20, sdjwt_verifies: int = 2000,
        progress: Progress | None = None) -> dict[str, Any]:  # fmt: skip
    say = progress or (lambda _msg: None)
    say("measuring the signature floor")
    floor = signature_floor()
    founders = [_key(f"founder-{i}") for i in range(3)]
    custodians = [
        ecies.public_bytes(ecies.derive_private_key(f.to_bytes(), b"custodian")) for f in founders
    ]
    genesis = bench_genesis(NETWORK_ID, founders, custodians)
    insurer, patient = _key("insurer"), _key("patient")
    claims = derive_claims(_resources())

    async def main(work: Path) -> dict[str, Any]:
        tails_dir = work / "tails"
        async with institution_in(work, genesis, founders[0]) as institution:
            node = institution.node
            await node.submit_payload(founders[0], identity.REGISTER_PARTICIPANT,
                                      {"address": insurer.address, "role": "verifier"})  # fmt: skip
            say("setting up the AnonCreds issuer (safe primes: a few seconds)")
            issuer = Issuer(node, founders[2], work / "issuer", tails_dir=tails_dir,
                            url="https://checkup.example")  # fmt: skip
            await issuer.setup(now_s=_now_ms() // 1000, max_credentials=1000)
            registry, wallet = Registry(node.store), Wallet(work / "wallet.sealed", patient)
            offer = issuer.offer()
            request = wallet.request_anoncreds(offer, registry)
            issued, credential_id = issuer.issue_anoncreds(claims, offer, request)
            wallet.store_anoncreds(issued, credential_id, registry)
            verifier = Verifier(node, insurer)
            say(f"{rounds} AnonCreds rounds: ours and the bare library, interleaved")
            times = await _anoncreds_rounds(rounds, wallet, verifier, registry, tails_dir)
            say(f"{sdjwt_verifies} SD-JWT verifications: ours and the bare library")
            rates = _sdjwt_rates(sdjwt_verifies, issuer, wallet, verifier, claims=claims,
                                 tails_dir=tails_dir)  # fmt: skip
        ms = {name: _ms(samples) for name, samples in times.items()}
        return {
            "benchmark": "credentials",
            "rounds": rounds,
            "predicates": [str(p) for p in ASKED],
            "anoncreds_prove_ms": ms["prove"],
            "anoncreds_verify_ms": ms["verify"],
            "bare_anoncreds_prove_ms": ms["bare_prove"],
            "bare_anoncreds_verify_ms": ms["bare_verify"],
            "anoncreds_prove_overhead": round(ms["prove"] / ms["bare_prove"] - 1, 3),
            "anoncreds_verify_overhead": round(ms["verify"] / ms["bare_verify"] - 1, 3),
            "sdjwt_verify_per_s": round(rates["ours"], 1),
            "bare_sdjwt_verify_per_s": round(rates["bare"], 1),
            "sdjwt_verify_overhead": round(rates["bare"] / rates["ours"] - 1, 3),
            "sig_verify_per_s": round(floor, 1),
            "cores": os.cpu_count(),
        }

    with tempfile.TemporaryDirectory(prefix="medledger-bench-") as tmp:
        return asyncio.run(main(Path(tmp)))
