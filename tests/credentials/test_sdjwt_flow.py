"""SD-JWT VC and SMART Health Cards over a real node: issue, present, verify, revoke."""

from __future__ import annotations

import base64
import json
import zlib
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from jwcrypto import jwk, jws

from medledger.credentials.contract import verification
from medledger.credentials.errors import (
    BadDisclosure,
    CredentialExpired,
    CredentialRevoked,
    UnknownIssuer,
    WrongAudience,
)
from medledger.credentials.health_card import health_card_qr, jws_from_qr_text
from medledger.credentials.request import SignedRequest
from medledger.credentials.verifier import Verifier, verify_health_card
from tests.credentials import scene
from tests.credentials.scene import CHECKUP_URL, Scene, checkup_resources, now_ms, run
from tests.credentials.test_health_card import read_qr

ASKED = ("hba1c_x10", "non_smoker")


ask = partial(scene.ask, fmt="sd-jwt", disclose=ASKED)


def present(s: Scene, signed: SignedRequest) -> dict[str, Any]:
    return s.wallet.present(signed, s.registry, now_ms=now_ms(), tails_dir=s.tails_dir)


def test_the_insurer_sees_the_two_claims_it_asked_for_and_no_other(
    tmp_path: Path, tails_dir: Path
) -> None:
    async def body(s: Scene) -> None:
        s.issue_sd_jwt()
        signed = ask(s)
        envelope = present(s, signed)
        result = await s.verifier.verify(signed, envelope, now_ms=now_ms())
        assert result.facts == {"hba1c_x10": 58, "non_smoker": 1}
        disclosures = envelope["presentation"].split("~")[1:-1]
        assert len(disclosures) == 2  # the other seven claims never leave the wallet
        entry = verification(s.w.node.store, signed.request.id)
        assert entry is not None and entry["outcome"] == "accepted"

    run(tmp_path, tails_dir, body)


def tamper_first_disclosure(presentation: str) -> str:
    issuer_jwt, first, *rest = presentation.split("~")
    salt, name, _ = json.loads(base64.urlsafe_b64decode(first + "=" * (-len(first) % 4)))
    forged = base64.urlsafe_b64encode(json.dumps([salt, name, 40]).encode()).decode()
    return "~".join([issuer_jwt, forged.rstrip("="), *rest])


def test_replayed_tampered_expired_and_revoked_sd_jwts_fail(
    tmp_path: Path, tails_dir: Path
) -> None:
    async def body(s: Scene) -> None:
        credential_id = s.issue_sd_jwt(lifetime_s=600)
        replayed, relabelled, tampered, expired, revoked = (
            ask(s, lifetime_s=86_400) for _ in range(5)
        )
        made = {id(r): present(s, r) for r in (replayed, relabelled, tampered, expired, revoked)}
        bank = Verifier(s.w.node, s.w.consortium.keys[1])

        with pytest.raises(WrongAudience, match="made for verifier"):
            await bank.verify(ask(s, verifier=bank), made[id(replayed)], now_ms=now_ms())
        # Relabelled with the bank's own request, the key-binding JWT still names the insurer.
        banks = ask(s, verifier=bank)
        with pytest.raises(WrongAudience, match="audience"):
            await bank.verify(banks, {**made[id(relabelled)], "request": banks.to_json()},
                              now_ms=now_ms())  # fmt: skip

        envelope = made[id(tampered)]
        forged = {**envelope, "presentation": tamper_first_disclosure(envelope["presentation"])}
        with pytest.raises(BadDisclosure):
            await s.verifier.verify(tampered, forged, now_ms=now_ms())

        with pytest.raises(CredentialExpired):
            await s.verifier.verify(expired, made[id(expired)], now_ms=now_ms() + 3_600_000)

        await s.issuer.revoke(credential_id, now_s=now_ms() // 1000)
        with pytest.raises(CredentialRevoked):
            present(s, ask(s))
        with pytest.raises(CredentialRevoked):
            await s.verifier.verify(revoked, made[id(revoked)], now_ms=now_ms())
        outcomes = [verification(s.w.node.store, r.request.id)
                    for r in (tampered, expired, revoked)]  # fmt: skip
        assert [o["outcome"] for o in outcomes if o] == [
            "rejected-bad_disclosure", "rejected-credential_expired",
            "rejected-credential_revoked"]  # fmt: skip

    run(tmp_path, tails_dir, body)


def test_a_health_card_verifies_against_the_issuers_key_on_the_ledger(
    tmp_path: Path, tails_dir: Path
) -> None:
    async def body(s: Scene) -> None:
        resources = checkup_resources()
        patient = resources[0]
        checkup = [r for r in resources if r["resourceType"] == "Observation"][-4:]
        card, credential_id = s.issuer.issue_health_card(patient, checkup, now_s=now_ms() // 1000)

        scanned = jws_from_qr_text(read_qr(health_card_qr(card)))
        assert scanned == card
        verified = verify_health_card(scanned, s.registry, now_s=now_ms() // 1000)
        assert verified.issuer == CHECKUP_URL
        assert len(verified.bundle["entry"]) == 5

        # Any health-card verifier can check it with the JWK alone, as published on the ledger.
        published = s.registry.jwk_for(CHECKUP_URL, verified.key_id)
        token = jws.JWS()
        token.deserialize(card)
        token.verify(jwk.JWK(**json.loads(published.export_public())))
        payload = json.loads(zlib.decompress(token.payload, wbits=-15))
        assert payload["iss"] == CHECKUP_URL
        assert "d" not in json.loads(published.export_public())

        # An id copied in upper case names the same credential.
        await s.issuer.revoke("0x" + credential_id[2:].upper(), now_s=now_ms() // 1000)
        with pytest.raises(CredentialRevoked, match=f"revoked credential {credential_id}"):
            verify_health_card(card, s.registry, now_s=now_ms() // 1000)
        with pytest.raises(UnknownIssuer, match="not registered"):
            s.registry.jwk_for("https://stranger.example", verified.key_id)

    run(tmp_path, tails_dir, body)
