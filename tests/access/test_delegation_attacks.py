"""Attacks on the delegation protocol by a dishonest custodian or a dishonest node, in
process over one ledger (tests/access/test_release.py's scene): a receipt must name the
app and the node the holder's delegation named for *this* read, and a delegation is good
only for the node it names; a patient's delegation for her own records (an owner read,
access/owner.py) likewise, and nobody else's passes for hers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from medledger.access import contract as access
from medledger.access.audit import audit_log
from medledger.access.custodian import ReleaseAsk
from medledger.access.delegation import Delegation, SignedDelegation, digest_of
from medledger.access.errors import BadApproval, NotPatient
from medledger.access.receipts import receipt_payload
from medledger.access.release import OWNER_READ, Release
from medledger.crypto.keys import PrivateKey
from medledger.ledger.errors import Conflict, TransactionRejected
from tests.access.test_delegation import HOUR_MS, _delegation, _now_ms
from tests.access.test_release import DR_B, Scene, run


def _release(
    s: Scene, signer: PrivateKey, under: SignedDelegation | None = None
) -> tuple[Release, bytes]:
    """A release of the lab signed by ``signer``, naming the delegation it is asked under."""
    release = Release.of(s.w.node.network_id, s.grant, [s.lab.commitment], bytes(32),
                         _now_ms() + 60_000, delegation=digest_of(under))  # fmt: skip
    return release, release.sign(signer)


def _receipt(s: Scene, release: Release, asked: bytes, delegation: Any) -> dict[str, Any]:
    return receipt_payload(s.grant, records=[s.lab.sealed], release=release, asked=asked,
                           delegation=delegation)  # fmt: skip


def test_a_custodian_cannot_relabel_the_app_a_delegated_read_was_for(tmp_path: Path) -> None:
    """The node read for app ``ehr-app`` under delegation D1. A dishonest custodian holds
    another delegation of the same holder to the same node (D2, app ``other-app``: every
    delegated receipt carries its delegation, and members see every receipt) and logs its
    receipt for this read under D2. The release the node signed names D1, so the ledger
    refuses it, and the patient's audit names the app that asked."""

    async def scenario(s: Scene) -> None:
        node, dishonest = s.w.consortium.keys[1], s.w.consortium.keys[0]
        asked_for = _delegation(s, types={"Observation"})  # D1, what the node read under
        # D2: the same holder and node, another app and session.
        other = SignedDelegation.sign(
            Delegation(s.w.node.network_id, node.address, "other-app", "*", _now_ms() + HOUR_MS),
            DR_B,
        )
        release, asked = _release(s, node, asked_for)
        with pytest.raises(TransactionRejected):
            await s.w.node.submit_payload(dishonest, access.RECEIPT,
                                          _receipt(s, release, asked, other))  # fmt: skip
        # The honest custodians log the read under the delegation it was made under.
        await s.w.node.submit_payload(s.w.consortium.keys[2], access.RECEIPT,
                                      _receipt(s, release, asked, asked_for))  # fmt: skip
        (read,) = audit_log(s.w.node, s.patient.address)
        assert read.app == "ehr-app"

    run(tmp_path, scenario)


def test_a_captured_delegation_is_no_good_to_another_node(tmp_path: Path) -> None:
    """A dishonest member copies node 1's delegation out of a receipt and signs a release
    of its own under it: refused by a custodian, and by the ledger if logged anyway."""

    async def scenario(s: Scene) -> None:
        node, thief = s.w.consortium.keys[1], s.w.consortium.keys[2]
        captured = _delegation(s, delegate=node)
        release, asked = _release(s, thief, captured)
        before = s.receipts()
        with pytest.raises(BadApproval):
            await s.custodians[0].release(ReleaseAsk(release, asked, (s.lab,), captured))
        with pytest.raises(TransactionRejected) as caught:
            await s.w.node.submit_payload(thief, access.RECEIPT,
                                          _receipt(s, release, asked, captured))  # fmt: skip
        assert caught.value.code == "bad_approval"
        assert s.receipts() == before

    run(tmp_path, scenario)


def test_a_delegated_release_is_logged_once_per_custodian(tmp_path: Path) -> None:
    """A custodian (or the node) replaying one delegated read's receipt cannot pad the
    patient's audit: the read is keyed by its release and custodian."""

    async def scenario(s: Scene) -> None:
        node, custodian = s.w.consortium.keys[1], s.w.consortium.keys[0]
        delegation = _delegation(s)
        release, asked = _release(s, node, delegation)
        body = _receipt(s, release, asked, delegation)
        await s.w.node.submit_payload(custodian, access.RECEIPT, body)
        with pytest.raises(Conflict):
            await s.w.node.submit_payload(custodian, access.RECEIPT, body)
        assert s.receipts() == 1

    run(tmp_path, scenario)


def test_a_delegation_cannot_reach_a_patient_the_holder_has_no_grant_on(tmp_path: Path) -> None:
    """The delegation is the holder's, not a grant: under it a node reads only what the
    holder's grants cover. Another patient's lab, under the holder's grant: refused."""

    async def scenario(s: Scene) -> None:
        node, delegation = s.w.consortium.keys[1], _delegation(s)
        release = Release.of(s.w.node.network_id, s.grant, [s.others_lab.commitment], bytes(32),
                             _now_ms() + 60_000, delegation=digest_of(delegation))  # fmt: skip
        ask = ReleaseAsk(release, release.sign(node), (s.others_lab,), delegation)
        before = s.receipts()
        with pytest.raises(Exception, match="scope"):
            await s.custodians[0].release(ask)
        assert s.receipts() == before

    run(tmp_path, scenario)


def test_a_custodian_cannot_log_a_delegated_read_as_the_holders_own(tmp_path: Path) -> None:
    """Dropping the delegation from the receipt (to hide the node and the app from the
    patient's audit) leaves a release the holder did not sign: refused by every node."""

    async def scenario(s: Scene) -> None:
        node, custodian = s.w.consortium.keys[1], s.w.consortium.keys[0]
        release, asked = _release(s, node, _delegation(s))
        with pytest.raises(TransactionRejected) as caught:
            await s.w.node.submit_payload(custodian, access.RECEIPT,
                                          _receipt(s, release, asked, None))  # fmt: skip
        assert caught.value.code == "bad_approval"
        assert s.receipts() == 0

    run(tmp_path, scenario)


def _owner_release(
    s: Scene, signer: PrivateKey, under: SignedDelegation | None
) -> tuple[Release, bytes]:
    """An owner release of the patient's lab (no grant) signed by ``signer``."""
    release = Release.of(s.w.node.network_id, OWNER_READ, [s.lab.commitment], bytes(32),
                         _now_ms() + 60_000, delegation=digest_of(under))  # fmt: skip
    return release, release.sign(signer)


def test_a_node_cannot_pass_a_holders_delegation_off_as_the_patients(tmp_path: Path) -> None:
    """The node holds Dr B's delegation and asks for the patient's own records under it
    (no grant, so no category or record limit): the delegation does not speak for the
    patient, and the custodian and the ledger both refuse."""

    async def scenario(s: Scene) -> None:
        node, custodian = s.w.consortium.keys[1], s.w.consortium.keys[0]
        holders = _delegation(s)
        release, asked = _owner_release(s, node, holders)
        with pytest.raises(NotPatient):
            await s.custodians[0].release(ReleaseAsk(release, asked, (s.lab,), holders))
        body = receipt_payload(OWNER_READ, records=[s.lab.sealed], release=release,
                               asked=asked, delegation=holders)  # fmt: skip
        with pytest.raises(TransactionRejected) as caught:
            await s.w.node.submit_payload(custodian, access.RECEIPT, body)
        assert caught.value.code == "not_patient"
        assert s.receipts() == 0

    run(tmp_path, scenario)


def test_a_captured_patient_delegation_is_no_good_to_another_node(tmp_path: Path) -> None:
    """A dishonest member copies the patient's delegation to node 1 out of an owner
    receipt and signs an owner release of its own under it: refused."""

    async def scenario(s: Scene) -> None:
        node, thief = s.w.consortium.keys[1], s.w.consortium.keys[2]
        captured = _delegation(s, delegate=node, signer=s.patient)
        release, asked = _owner_release(s, thief, captured)
        with pytest.raises(BadApproval):
            await s.custodians[0].release(ReleaseAsk(release, asked, (s.lab,), captured))
        body = receipt_payload(OWNER_READ, records=[s.lab.sealed], release=release,
                               asked=asked, delegation=captured)  # fmt: skip
        with pytest.raises(TransactionRejected) as caught:
            await s.w.node.submit_payload(thief, access.RECEIPT, body)
        assert caught.value.code == "bad_approval"
        assert s.receipts() == 0

    run(tmp_path, scenario)


def test_a_custodian_cannot_hide_the_node_or_app_of_an_owner_read(tmp_path: Path) -> None:
    """The node read the patient's lab for her app under D1. A dishonest custodian logs
    its receipt without the delegation (as if she had asked herself) or under her other
    delegation to the same node (another app): both refused; the audit names D1's app."""

    async def scenario(s: Scene) -> None:
        node, dishonest = s.w.consortium.keys[1], s.w.consortium.keys[0]
        asked_for = _delegation(s, signer=s.patient)
        other = SignedDelegation.sign(
            Delegation(s.w.node.network_id, node.address, "other-app", "*", _now_ms() + HOUR_MS),
            s.patient,
        )
        release, asked = _owner_release(s, node, asked_for)
        for delegation, code in ((None, "not_patient"), (other, "bad_approval")):
            body = receipt_payload(OWNER_READ, records=[s.lab.sealed], release=release,
                                   asked=asked, delegation=delegation)  # fmt: skip
            with pytest.raises(TransactionRejected) as caught:
                await s.w.node.submit_payload(dishonest, access.RECEIPT, body)
            assert caught.value.code == code
        await s.w.node.submit_payload(dishonest, access.RECEIPT,
                                      receipt_payload(OWNER_READ, records=[s.lab.sealed],
                                                      release=release, asked=asked,
                                                      delegation=asked_for))  # fmt: skip
        (read,) = audit_log(s.w.node, s.patient.address)
        assert (read.reader, read.via, read.app) == (s.patient.address, node.address, "ehr-app")

    run(tmp_path, scenario)
