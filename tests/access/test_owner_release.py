"""Owner reads: the patient (or a guardian) has her own records opened by the custodians,
herself or through a node she delegated to, with receipts like any other read; and every
way for someone else to pass as her is refused by the custodian and again by the ledger.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from medledger.access import contract as access
from medledger.access.audit import audit_log
from medledger.access.custodian import ReleaseAsk
from medledger.access.delegation import Delegation, SignedDelegation, digest_of
from medledger.access.errors import ApprovalExpired, BadApproval, NotPatient, OutOfScope
from medledger.access.owner import PURPOSE
from medledger.access.reader import read_records
from medledger.access.receipts import receipt_payload
from medledger.access.release import OWNER_READ, Release
from medledger.access.visibility import may_read_transaction
from medledger.crypto.canonical import canonical_json
from medledger.crypto.keys import PrivateKey
from medledger.ledger.errors import TransactionRejected
from medledger.ledger.tx import SignedTransaction
from medledger.records.proof import CommittedRecord
from tests.access.test_delegation import HOUR_MS, _now_ms
from tests.access.test_release import DR_B, Scene, run
from tests.ledger.consortium import key
from tests.records.world import lab_result

GUARDIAN = key("owner:guardian")
APP = "patient-app"


def _delegation(
    s: Scene, signer: PrivateKey, *, delegate: PrivateKey | None = None, app: str = APP,
    types: set[str] | None = None, ttl_ms: int = HOUR_MS,
) -> SignedDelegation:  # fmt: skip
    node = delegate or s.w.consortium.keys[1]
    delegation = Delegation.of_types(s.w.node.network_id, node.address, app, types,
                                     _now_ms() + ttl_ms)  # fmt: skip
    return SignedDelegation.sign(delegation, signer)


def _owner_ask(
    s: Scene, signer: PrivateKey, delegation: SignedDelegation | None = None, *,
    records: tuple[CommittedRecord, ...] | None = None, ttl_ms: int = 60_000,
    signed_under: SignedDelegation | None = None,
) -> ReleaseAsk:  # fmt: skip
    """An owner release of ``records`` (the patient's lab) signed by ``signer``, naming the
    delegation ``signed_under`` (the one sent, unless said otherwise)."""
    chosen = records or (s.lab,)
    under = delegation if signed_under is None else signed_under
    release = Release.of(s.w.node.network_id, OWNER_READ, [r.commitment for r in chosen],
                         bytes(32), _now_ms() + ttl_ms, delegation=digest_of(under))  # fmt: skip
    return ReleaseAsk(release, release.sign(signer), chosen, delegation)


def _receipt(ask: ReleaseAsk, grant: bytes = OWNER_READ) -> dict[str, Any]:
    return receipt_payload(grant, records=[r.sealed for r in ask.records], release=ask.release,
                           asked=ask.signature, delegation=ask.delegation)  # fmt: skip


async def _name_guardian(s: Scene, guardians: list[PrivateKey]) -> None:
    await s.w.node.submit_payload(s.patient, access.SET_GUARDIANS,
                                  {"guardians": [g.address for g in guardians]})  # fmt: skip


def test_the_patient_reads_her_own_record_and_her_audit_names_her(tmp_path: Path) -> None:
    async def scenario(s: Scene) -> None:
        (text,) = await read_records(s.patient, OWNER_READ, [s.lab], custodians=s.custodians,
                                     threshold=2)  # fmt: skip
        assert text == canonical_json(lab_result())
        assert s.receipts() == 3
        (read,) = audit_log(s.w.node, s.patient.address)
        assert (read.reader, read.grant, read.purpose) == (s.patient.address, None, PURPOSE)
        assert (read.via, read.app, read.emergency) == (None, None, False)
        assert read.complete and read.record_id == s.lab.sealed.header.record_id.hex()

    run(tmp_path, scenario)


def test_a_node_reads_for_the_patient_under_her_delegation(tmp_path: Path) -> None:
    async def scenario(s: Scene) -> None:
        node = s.w.consortium.keys[1]
        delegation = _delegation(s, s.patient, types={"Observation"})
        (text,) = await read_records(node, OWNER_READ, [s.lab], custodians=s.custodians,
                                     threshold=2, delegation=delegation)  # fmt: skip
        assert text == canonical_json(lab_result())
        (read,) = audit_log(s.w.node, s.patient.address)
        assert (read.reader, read.via, read.app) == (s.patient.address, node.address, APP)
        assert read.grant is None and read.complete

    run(tmp_path, scenario)


def test_a_guardians_read_names_the_guardian(tmp_path: Path) -> None:
    async def scenario(s: Scene) -> None:
        await _name_guardian(s, [GUARDIAN])
        node = s.w.consortium.keys[2]
        await read_records(GUARDIAN, OWNER_READ, [s.lab], custodians=s.custodians, threshold=2)
        await read_records(node, OWNER_READ, [s.lab], custodians=s.custodians, threshold=2,
                           delegation=_delegation(s, GUARDIAN, delegate=node))  # fmt: skip
        own, delegated = audit_log(s.w.node, s.patient.address)
        assert (own.reader, own.via) == (GUARDIAN.address, None)
        assert (delegated.reader, delegated.via, delegated.app) == (
            GUARDIAN.address, node.address, APP)  # fmt: skip

    run(tmp_path, scenario)


def test_owner_receipts_are_shown_to_the_patient_and_not_to_strangers(tmp_path: Path) -> None:
    async def scenario(s: Scene) -> None:
        # Only registered parties see transactions: a guardian registered as a person.
        guardian = await s.w.add_patient("guardian", enrol=False)
        await _name_guardian(s, [guardian])
        node = s.w.consortium.keys[1]
        await read_records(node, OWNER_READ, [s.lab], custodians=s.custodians, threshold=2,
                           delegation=_delegation(s, s.patient))  # fmt: skip
        store = s.w.node.store
        receipts = [SignedTransaction.decode(tx.raw).tx for tx in store.iter_txs()
                    if tx.tx_type == access.RECEIPT]  # fmt: skip
        assert len(receipts) == 3
        for tx in receipts:
            assert may_read_transaction(store, s.patient.address, tx)
            assert may_read_transaction(store, guardian.address, tx)
            assert not may_read_transaction(store, s.other.address, tx)
            assert not may_read_transaction(store, DR_B.address, tx)

    run(tmp_path, scenario)


#: Each way to ask for an owner read without speaking for the patient, and its refusal.
REFUSALS = [
    ("a doctor, even one holding a grant on her", NotPatient),
    ("a node's own signature", NotPatient),
    ("a node's delegation to itself", NotPatient),
    ("a guardian she no longer names", NotPatient),
    ("her delegation to another node", BadApproval),
    ("her delegation for another app", BadApproval),
    ("her delegation, for other resource types", OutOfScope),
    ("her delegation, expired", ApprovalExpired),
    ("a record of another patient along hers", OutOfScope),
    ("another patient's record alone", NotPatient),
    ("an expired release", ApprovalExpired),
]


def _refused_ask(s: Scene, case: str) -> ReleaseAsk:
    node, other_node = s.w.consortium.keys[1], s.w.consortium.keys[2]
    if case == "a doctor, even one holding a grant on her":
        return _owner_ask(s, DR_B)
    if case == "a node's own signature":
        return _owner_ask(s, node)
    if case == "a node's delegation to itself":
        return _owner_ask(s, node, _delegation(s, node))
    if case == "a guardian she no longer names":
        return _owner_ask(s, GUARDIAN)
    if case == "her delegation to another node":
        return _owner_ask(s, node, _delegation(s, s.patient, delegate=other_node))
    if case == "her delegation for another app":
        return _owner_ask(s, node, _delegation(s, s.patient, app="other-app"),
                          signed_under=_delegation(s, s.patient))  # fmt: skip
    if case == "her delegation, for other resource types":
        return _owner_ask(s, node, _delegation(s, s.patient, types={"Condition"}))
    if case == "her delegation, expired":
        return _owner_ask(s, node, _delegation(s, s.patient, ttl_ms=-1000))
    if case == "a record of another patient along hers":
        return _owner_ask(s, s.patient, records=(s.lab, s.others_lab))
    if case == "another patient's record alone":
        return _owner_ask(s, s.patient, records=(s.others_lab,))
    if case == "an expired release":
        return _owner_ask(s, s.patient, ttl_ms=-1000)
    raise AssertionError(case)


@pytest.mark.parametrize(("case", "error"), REFUSALS)
def test_nobody_else_gets_an_owner_release(
    tmp_path: Path, case: str, error: type[Exception]
) -> None:
    async def scenario(s: Scene) -> None:
        await _name_guardian(s, [GUARDIAN])
        await _name_guardian(s, [])
        before = s.receipts()
        with pytest.raises(error):
            await s.custodians[0].release(_refused_ask(s, case))
        assert s.receipts() == before

    run(tmp_path, scenario)


@pytest.mark.parametrize(
    ("case", "code"),
    [("a node's own signature", "not_patient"),
     ("a doctor, even one holding a grant on her", "not_patient"),
     ("her delegation to another node", "bad_approval"),
     ("her delegation, for other resource types", "out_of_scope"),
     ("her delegation, expired", "approval_expired"),
     ("an expired release", "approval_expired")],
)  # fmt: skip
def test_every_node_rechecks_an_owner_receipt(tmp_path: Path, case: str, code: str) -> None:
    """A dishonest custodian logs the owner read its own node would refuse: the ledger
    refuses it, whatever that node did."""

    async def scenario(s: Scene) -> None:
        before = s.receipts()
        with pytest.raises(TransactionRejected) as caught:
            await s.w.node.submit_payload(s.w.consortium.keys[0], access.RECEIPT,
                                          _receipt(_refused_ask(s, case)))  # fmt: skip
        assert caught.value.code == code
        assert s.receipts() == before

    run(tmp_path, scenario)


def test_a_receipt_cannot_mix_another_patients_record_into_an_owner_read(
    tmp_path: Path,
) -> None:
    """The receipt names one patient: another's record under it no longer recovers its
    author, so the ledger refuses it."""

    async def scenario(s: Scene) -> None:
        ask = _owner_ask(s, s.patient, records=(s.lab, s.others_lab))
        with pytest.raises(TransactionRejected) as caught:
            await s.w.node.submit_payload(s.w.consortium.keys[0], access.RECEIPT, _receipt(ask))
        assert caught.value.code == "invalid_payload"
        assert s.receipts() == 0

    run(tmp_path, scenario)


def test_grant_reads_and_owner_reads_cannot_be_relabelled(tmp_path: Path) -> None:
    """A custodian cannot log a doctor's grant read as the patient's own (hiding the
    doctor from the audit), nor the patient's own read as one under a doctor's grant:
    each release names what it was asked under."""

    async def scenario(s: Scene) -> None:
        node = s.w.consortium.keys[1]
        doctors = Release.of(s.w.node.network_id, s.grant, [s.lab.commitment], bytes(32),
                             _now_ms() + 60_000)  # fmt: skip
        as_owner = _receipt(ReleaseAsk(doctors, doctors.sign(DR_B), (s.lab,)))
        as_grant = _receipt(_owner_ask(s, s.patient), grant=s.grant)
        delegated = _receipt(_owner_ask(s, node, _delegation(s, s.patient)), grant=s.grant)
        for body, code in ((as_owner, "not_patient"), (as_grant, "bad_approval"),
                           (delegated, "bad_approval")):  # fmt: skip
            with pytest.raises(TransactionRejected) as caught:
                await s.w.node.submit_payload(s.w.consortium.keys[0], access.RECEIPT, body)
            assert caught.value.code == code
        assert s.receipts() == 0

    run(tmp_path, scenario)


def test_an_owner_release_lives_minutes_not_hours(tmp_path: Path) -> None:
    async def scenario(s: Scene) -> None:
        ask = _owner_ask(s, s.patient, ttl_ms=3600 * 1000)
        with pytest.raises(TransactionRejected) as caught:
            await s.w.node.submit_payload(s.w.consortium.keys[0], access.RECEIPT, _receipt(ask))
        assert caught.value.code == "bad_approval"
        assert time.time_ns() // 10**6 < ask.release.not_after_ms

    run(tmp_path, scenario)
