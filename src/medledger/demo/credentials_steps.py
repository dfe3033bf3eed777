"""The credentials step: an insurer learns two facts and nothing more."""

from __future__ import annotations

import json
import time

from medledger.credentials.claims import derive_claims
from medledger.credentials.contract import verification
from medledger.credentials.errors import PredicateNotSatisfied
from medledger.credentials.issuer import Issuer
from medledger.credentials.registry import Registry
from medledger.credentials.request import Predicate
from medledger.credentials.verifier import Verifier
from medledger.credentials.wallet import Wallet
from medledger.demo.scene import (
    Scene,
    check,
    expect_error,
)
from medledger.ledger.timestamps import NS_PER_MS


class CredentialsSteps(Scene):
    """An AnonCreds credential from the checkup centre, checked by the insurer."""

    async def _credential(self) -> str:
        claims = derive_claims(self.resources)
        issuer = Issuer(self.nodes[2], self.checkup, self.workdir / "issuer",
                        tails_dir=self.workdir / "tails")  # fmt: skip
        # Safe-prime search for the credential definition: a few seconds, once per issuer.
        await issuer.setup(now_s=int(time.time()), max_credentials=100)
        registry = Registry(self.a.store)
        wallet = Wallet(self.workdir / "wallet.sealed", self.patient)
        offer = issuer.offer()
        issued, credential_id = issuer.issue_anoncreds(
            claims, offer, wallet.request_anoncreds(offer, registry)
        )
        wallet.store_anoncreds(issued, credential_id, registry)
        insurer = Verifier(self.a, self.insurer)
        now_ms = time.time_ns() // NS_PER_MS
        asked = (Predicate.parse("hba1c_x10 < 65"), Predicate.parse("non_smoker >= 1"))
        signed = insurer.request(purpose="COVERAGE", fmt="anoncreds", now_ms=now_ms,
                                 predicates=asked, issuers=[self.checkup.address])  # fmt: skip
        tails = self.workdir / "tails"
        envelope = wallet.present(signed, registry, now_ms=now_ms, tails_dir=tails)
        result = await insurer.verify(signed, envelope, now_ms=now_ms)
        check(result.facts == {str(p): True for p in asked}, "both predicates hold, nothing else")
        check(json.loads(envelope["presentation"])["requested_proof"]["revealed_attrs"] == {},
              "no attribute revealed")  # fmt: skip
        entry = verification(self.a.store, signed.request.id)
        check(entry is not None and entry["outcome"] == "accepted", "the check is on the ledger")
        lower = insurer.request(purpose="COVERAGE", fmt="anoncreds", now_ms=now_ms,
                                predicates=(Predicate.parse("hba1c_x10 < 50"),))  # fmt: skip
        refused = await expect_error(
            PredicateNotSatisfied,
            lambda: wallet.present(lower, registry, now_ms=now_ms, tails_dir=tails),
        )
        return (
            f"the checkup centre issued an AnonCreds credential; the insurer checked "
            f"{' and '.join(result.facts)} in zero knowledge\n      ledger: request id, "
            f"COVERAGE, accepted; “HbA1c below 5.0 %”: {refused}"
        )
