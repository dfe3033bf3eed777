"""AnonCreds over a real node: every way a presentation must fail, and why."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from medledger.credentials import zk
from medledger.credentials.contract import status_head, verification
from medledger.credentials.errors import (
    BadPresentationRequest,
    CredentialRevoked,
    DuplicateVerification,
    InvalidPresentation,
    NonceMismatch,
    PredicateNotSatisfied,
    RequestExpired,
    StaleRevocationState,
    UnknownIssuer,
    WrongAudience,
)
from medledger.credentials.request import Predicate, SignedRequest
from medledger.credentials.verifier import Verifier
from tests.credentials import scene
from tests.credentials.scene import Scene, now_ms, run
from tests.ledger.consortium import key

HBA1C_BELOW_6_5 = (Predicate.parse("hba1c_x10 < 65"),)


ask = partial(scene.ask, fmt="anoncreds", predicates=HBA1C_BELOW_6_5)


def present(s: Scene, signed: SignedRequest) -> dict[str, Any]:
    return s.wallet.present(signed, s.registry, now_ms=now_ms(), tails_dir=s.tails_dir)


def outcome(s: Scene, signed: SignedRequest) -> str | None:
    entry = verification(s.w.node.store, signed.request.id)
    return None if entry is None else str(entry["outcome"])


def forced_proof(
    s: Scene, signed: SignedRequest, pres_request: dict[str, Any] | None = None
) -> str:
    """What a wallet that skips its own checks would send."""
    held = s.wallet.credentials[0].held()
    cred_def = s.registry.document(held.cred_def_id)
    schema_id = json.loads(cred_def)["schemaId"]
    rev_reg = s.registry.document(held.rev_reg_id)
    documents = {held.cred_def_id: cred_def, held.rev_reg_id: rev_reg,
                 schema_id: s.registry.document(schema_id)}  # fmt: skip
    request = signed.request
    return zk.prove(
        request, pres_request or zk.presentation_request(request, []),
        held, s.wallet.link_secret, documents,
        status_list=s.registry.current_status(held.rev_reg_id),
        tails_path=str(s.tails_dir / json.loads(rev_reg)["value"]["tailsHash"]),
    )  # fmt: skip


def test_a_false_predicate_cannot_be_proven(tmp_path: Path, tails_dir: Path) -> None:
    async def body(s: Scene) -> None:
        s.issue_anoncreds()
        signed = ask(s, predicates=(Predicate.parse("hba1c_x10 < 50"),))
        with pytest.raises(PredicateNotSatisfied, match="hba1c_x10 < 50"):
            present(s, signed)
        assert s.wallet.history == []
        # The library refuses too, for a wallet that would skip that check.
        true_one = ask(s)
        lying = zk.presentation_request(true_one.request, [])
        lying["requested_predicates"]["p0"]["p_value"] = 50
        with pytest.raises(PredicateNotSatisfied, match="cannot prove"):
            forced_proof(s, true_one, lying)

    run(tmp_path, tails_dir, body)


def test_a_revoked_credential_fails_in_the_wallet_and_at_the_verifier(
    tmp_path: Path, tails_dir: Path
) -> None:
    async def body(s: Scene) -> None:
        credential_id = s.issue_anoncreds()
        early = ask(s)
        made_before = present(s, early)
        await s.issuer.revoke(credential_id, now_s=now_ms() // 1000)

        with pytest.raises(CredentialRevoked, match="revoked credential"):
            present(s, ask(s))
        # A proof made against the old status list is refused as revoked...
        with pytest.raises(StaleRevocationState, match="current list"):
            await s.verifier.verify(early, made_before, now_ms=now_ms())
        assert outcome(s, early) == "rejected-stale_revocation_state"
        # ... and one forced against the current list does not verify.
        late = ask(s)
        forced = {"format": "anoncreds", "request": late.to_json(),
                  "presentation": forced_proof(s, late)}  # fmt: skip
        with pytest.raises(InvalidPresentation, match="does not verify"):
            await s.verifier.verify(late, forced, now_ms=now_ms())

    run(tmp_path, tails_dir, body)


def test_a_presentation_replayed_to_another_verifier_or_request_fails(
    tmp_path: Path, tails_dir: Path
) -> None:
    async def body(s: Scene) -> None:
        s.issue_anoncreds()
        signed = ask(s)
        envelope = present(s, signed)
        bank = Verifier(s.w.node, s.w.consortium.keys[1])
        banks_request = ask(s, verifier=bank)
        with pytest.raises(WrongAudience, match="made for verifier"):
            await bank.verify(banks_request, envelope, now_ms=now_ms())
        assert outcome(s, banks_request) == "rejected-wrong_audience"

        second = ask(s)
        with pytest.raises(NonceMismatch, match="answers request"):
            await s.verifier.verify(second, envelope, now_ms=now_ms())
        # Relabelling the envelope with another request leaves the proof bound to the first.
        third = ask(s)
        with pytest.raises(InvalidPresentation, match="does not verify"):
            await s.verifier.verify(third, {**envelope, "request": third.to_json()},
                                    now_ms=now_ms())  # fmt: skip

        result = await s.verifier.verify(signed, envelope, now_ms=now_ms())
        assert result.facts == {"hba1c_x10 < 65": True}
        with pytest.raises(DuplicateVerification):
            await s.verifier.verify(signed, envelope, now_ms=now_ms())

    run(tmp_path, tails_dir, body)


def test_requests_are_checked_before_anything_is_proven(tmp_path: Path, tails_dir: Path) -> None:
    async def body(s: Scene) -> None:
        s.issue_anoncreds()
        expired = ask(s, now_ms=now_ms() - 3_600_000)
        with pytest.raises(RequestExpired):
            present(s, expired)

        forged = ask(s).to_json()
        forged["request"]["purpose"] = "TREAT"
        with pytest.raises(BadPresentationRequest, match="signed by"):
            SignedRequest.from_json(forged)

        stranger = Verifier(s.w.node, key("stranger"))
        with pytest.raises(BadPresentationRequest, match="not registered"):
            present(s, ask(s, verifier=stranger))

        other_issuer = ask(s, issuers=[s.w.consortium.keys[1].address])
        with pytest.raises(UnknownIssuer, match="no anoncreds credential"):
            present(s, other_issuer)
        assert s.wallet.history == []

    run(tmp_path, tails_dir, body)


def test_a_verifier_checks_the_request_is_still_open(tmp_path: Path, tails_dir: Path) -> None:
    async def body(s: Scene) -> None:
        s.issue_anoncreds()
        signed = ask(s, lifetime_s=60)
        envelope = present(s, signed)
        with pytest.raises(RequestExpired):
            await s.verifier.verify(signed, envelope, now_ms=now_ms() + 120_000)
        assert outcome(s, signed) == "rejected-request_expired"

    run(tmp_path, tails_dir, body)


def test_a_presentation_naming_documents_of_the_wrong_kind_is_refused(
    tmp_path: Path, tails_dir: Path
) -> None:
    async def body(s: Scene) -> None:
        secrets = s.issuer.state.secrets
        head = status_head(s.w.node.store, secrets.rev_reg_id)
        right = {"schema_id": secrets.schema_id, "cred_def_id": secrets.cred_def_id,
                 "rev_reg_id": secrets.rev_reg_id, "timestamp": head}  # fmt: skip
        # The ids are the prover's to choose; each must name a document of its kind.
        for field, doc_id, kind in (
            ("cred_def_id", secrets.schema_id, "cred_def"),
            ("cred_def_id", secrets.rev_reg_id, "cred_def"),
            ("rev_reg_id", secrets.cred_def_id, "rev_reg"),
        ):
            signed = ask(s)
            proof = {"identifiers": [{**right, field: doc_id}], "requested_proof": {}}
            envelope = {"format": "anoncreds", "request": signed.to_json(),
                        "presentation": json.dumps(proof)}  # fmt: skip
            with pytest.raises(UnknownIssuer, match=f"{doc_id} is not a published {kind}"):
                await s.verifier.verify(signed, envelope, now_ms=now_ms())
            assert outcome(s, signed) == "rejected-unknown_issuer"

    run(tmp_path, tails_dir, body)
