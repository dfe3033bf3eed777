"""The insurer case end to end: a checkup centre issues, the insurer learns two facts only."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from medledger.credentials.contract import verification
from medledger.credentials.request import Predicate
from tests.credentials.scene import INSURER, Scene, now_ms, run

ASKED = (Predicate.parse("hba1c_x10 < 65"), Predicate.parse("non_smoker >= 1"))


def test_insurer_learns_hba1c_below_6_5_and_non_smoker_and_nothing_else(
    tmp_path: Path, tails_dir: Path
) -> None:
    async def body(s: Scene) -> None:
        s.issue_anoncreds()
        signed = s.verifier.request(purpose="COVERAGE", fmt="anoncreds", now_ms=now_ms(),
                                    predicates=ASKED, issuers=[s.issuer.address])  # fmt: skip
        shown = s.wallet.describe(signed, s.registry)
        assert shown[0] == f"verifier {INSURER.address} (verifier), purpose COVERAGE"
        assert shown[1].startswith("prove hba1c_x10 < 65 (HbA1c in % of total haemoglobin")
        assert shown[2].startswith("prove non_smoker >= 1 (1 if a never or former")
        until = datetime.fromtimestamp(signed.request.not_after_ms / 1000, UTC)
        assert shown[4].startswith(f"open until {until.isoformat(timespec='seconds')}; request")
        envelope = s.wallet.present(signed, s.registry, now_ms=now_ms(), tails_dir=s.tails_dir)
        result = await s.verifier.verify(signed, envelope, now_ms=now_ms())

        assert result.facts == {"hba1c_x10 < 65": True, "non_smoker >= 1": True}
        assert result.issuer == s.issuer.address
        proof = json.loads(envelope["presentation"])["requested_proof"]
        assert proof["revealed_attrs"] == {} and proof["unrevealed_attrs"] == {}
        wire = json.dumps(envelope)
        for value in s.claims().as_strings().values():
            assert f'"{value}"' not in wire  # no raw claim value travels
        entry = verification(s.w.node.store, signed.request.id)
        assert entry is not None
        assert (entry["verifier"], entry["purpose"], entry["outcome"]) == (
            INSURER.address, "COVERAGE", "accepted")
        seen = s.wallet.verifications(s.registry)
        assert [v["ledger"]["outcome"] for v in seen] == ["accepted"]

    run(tmp_path, tails_dir, body)


def test_a_request_open_past_year_9999_is_shown_in_milliseconds(
    tmp_path: Path, tails_dir: Path
) -> None:
    """A request may stay open until any time below 2**64 ms; no date holds that."""
    async def body(s: Scene) -> None:
        signed = s.verifier.request(purpose="COVERAGE", fmt="anoncreds", now_ms=now_ms(),
                                    predicates=ASKED)  # fmt: skip
        last = replace(signed.request, not_after_ms=2**64 - 1).signed_by(INSURER)
        shown = s.wallet.describe(last, s.registry)
        assert shown[-1] == f"open until {2**64 - 1} ms; request {last.request.id}"

    run(tmp_path, tails_dir, body)
