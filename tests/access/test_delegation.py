"""A node reads for a grant's holder through an app, only as the holder delegated: every
way to stretch a delegation is refused by the custodian and again by every node."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from medledger.access import contract as access
from medledger.access.audit import audit_log
from medledger.access.delegation import Delegation, SignedDelegation, digest_of
from medledger.access.errors import ApprovalExpired, BadApproval, OutOfScope
from medledger.access.reader import read_records
from medledger.access.receipts import receipt_payload
from medledger.access.release import Release
from medledger.crypto.keys import PrivateKey
from medledger.errors import InvalidInput
from medledger.ledger.errors import TransactionRejected
from tests.access.test_release import DR_B, Scene, run
from tests.ledger.consortium import key

HOUR_MS = 3600 * 1000


def _now_ms() -> int:
    return time.time_ns() // 10**6


def _delegation(
    s: Scene, *, delegate: PrivateKey | None = None, signer: PrivateKey = DR_B,
    types: set[str] | None = None, ttl_ms: int = HOUR_MS, network: int | None = None,
) -> SignedDelegation:  # fmt: skip
    node = delegate or s.w.consortium.keys[1]
    delegation = Delegation.of_types(network or s.w.node.network_id, node.address, "ehr-app",
                                     types, _now_ms() + ttl_ms)  # fmt: skip
    return SignedDelegation.sign(delegation, signer)


def test_a_node_reads_for_the_holder_and_the_audit_names_node_and_app(tmp_path: Path) -> None:
    async def scenario(s: Scene) -> None:
        node = s.w.consortium.keys[1]
        delegation = _delegation(s, types={"Observation"})
        (text,) = await read_records(node, s.grant, [s.lab], custodians=s.custodians,
                                     threshold=2, delegation=delegation)  # fmt: skip
        assert b'"resourceType":"Observation"' in text
        (read,) = audit_log(s.w.node, s.patient.address)
        assert (read.reader, read.via, read.app) == (DR_B.address, node.address, "ehr-app")
        assert read.complete

    run(tmp_path, scenario)


@pytest.mark.parametrize(
    ("case", "error"),
    [
        ("signed by another person", BadApproval),
        ("release signed by another node", BadApproval),
        ("delegate is no member", BadApproval),
        ("expired", ApprovalExpired),
        ("lives too long", BadApproval),
        ("types exclude the record", OutOfScope),
        ("another network", BadApproval),
        ("no delegation, node signs", BadApproval),
    ],
)
def test_a_stretched_delegation_releases_nothing(
    tmp_path: Path, case: str, error: type[Exception]
) -> None:
    async def scenario(s: Scene) -> None:
        node, other = s.w.consortium.keys[1], s.w.consortium.keys[2]
        outsider = key("not-a-member")
        reader, delegation = node, _delegation(s)
        if case == "signed by another person":
            delegation = _delegation(s, signer=s.w.author)
        elif case == "release signed by another node":
            reader = other
        elif case == "delegate is no member":
            reader, delegation = outsider, _delegation(s, delegate=outsider)
        elif case == "expired":
            delegation = _delegation(s, ttl_ms=-1000)
        elif case == "lives too long":
            delegation = _delegation(s, ttl_ms=13 * HOUR_MS)
        elif case == "types exclude the record":
            delegation = _delegation(s, types={"Condition", "Procedure"})
        elif case == "another network":
            delegation = _delegation(s, network=s.w.node.network_id + 1)
            delegation = SignedDelegation(
                Delegation(s.w.node.network_id, *_fields(delegation)), delegation.signature
            )
        else:
            delegation = None  # type: ignore[assignment]
        before = s.receipts()
        with pytest.raises(error):
            await s.custodians[0].release(_ask(s, reader, delegation))
        assert s.receipts() == before

    run(tmp_path, scenario)


def _fields(signed: SignedDelegation) -> tuple[Any, ...]:
    d = signed.delegation
    return d.delegate, d.app, d.resource_types, d.not_after_ms


def _ask(s: Scene, reader: PrivateKey, delegation: SignedDelegation | None) -> Any:
    from medledger.access.custodian import ReleaseAsk

    release = Release.of(s.w.node.network_id, s.grant, [s.lab.commitment], bytes(32),
                         _now_ms() + 60_000, delegation=digest_of(delegation))  # fmt: skip
    return ReleaseAsk(release, release.sign(reader), (s.lab,), delegation)


def test_every_node_rechecks_the_delegation(tmp_path: Path) -> None:
    """A custodian that logs a delegated read the delegation does not allow is refused by
    the ledger, whatever its own node did."""

    async def scenario(s: Scene) -> None:
        node = s.w.consortium.keys[1]

        def payload(delegation: SignedDelegation, signer: PrivateKey = node) -> dict[str, Any]:
            release = Release.of(s.w.node.network_id, s.grant, [s.lab.commitment], bytes(32),
                                 _now_ms() + 60_000, delegation=digest_of(delegation))  # fmt: skip
            return receipt_payload(s.grant, records=[s.lab.sealed], release=release,
                                   asked=release.sign(signer), delegation=delegation)  # fmt: skip

        narrow = payload(_delegation(s, types={"Condition"}))
        forged = payload(_delegation(s, signer=s.w.author))
        malformed = {**payload(_delegation(s)), "delegation": {"app": "x"}}
        for body, code in ((narrow, "out_of_scope"), (forged, "bad_approval"),
                           (malformed, "invalid_payload")):  # fmt: skip
            with pytest.raises(TransactionRejected) as caught:
                await s.w.node.submit_payload(s.w.consortium.keys[0], access.RECEIPT, body)
            assert caught.value.code == code
        await s.w.node.submit_payload(s.w.consortium.keys[0], access.RECEIPT,
                                      payload(_delegation(s)))  # fmt: skip
        assert s.receipts() == 1

    run(tmp_path, scenario)


@pytest.mark.parametrize(
    ("change", "why"),
    [({"signature": "0x12"}, "malformed"), ({"not_after_ms": -1}, "non-negative"),
     ({"types": "Observation,Condition"}, "sorted"), ({"app": ""}, "client id"),
     ({"delegate": "0x1234"}, "address")],
)  # fmt: skip
def test_a_malformed_delegation_is_refused(change: dict[str, Any], why: str) -> None:
    good = SignedDelegation.sign(
        Delegation.of_types(7, DR_B.address, "app", {"Observation"}, 1), DR_B
    ).to_json()
    assert SignedDelegation.from_json(good, 7).delegation.allows("Observation")
    with pytest.raises(InvalidInput, match=why):
        SignedDelegation.from_json({**good, **change}, 7)
