"""Credentials through a node: hospital A becomes an issuer, the patient shows the checkup
records hospital A wrote (checked against its vault) and gets an AnonCreds credential,
an SD-JWT VC and a SMART Health Card; a wallet and an insurer away from any node read
the issuer's documents through the state route; forged evidence is refused."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

import medledger.node.uploads as uploads_module
from medledger.credentials.registry import Registry
from medledger.credentials.request import Predicate
from medledger.credentials.verifier import Verifier, verify_health_card
from medledger.credentials.wallet import Wallet
from medledger.crypto.keys import Address
from medledger.errors import InvalidInput
from medledger.node.api import IssueIn
from medledger.node.client import NodeClient, NodeRefused
from medledger.node.identities import PATIENT_LABEL, encryption_key
from medledger.node.proven_state import ProvenState, RemoteLedger
from medledger.node.uploads import gather_evidence, upload_records
from medledger.records.sealed import open_salted_as_patient
from medledger.records.synthetic import generate_patients
from medledger.records.synthetic_checkup import CheckupResults, checkup_observations
from medledger.records.wire import committed_from_json
from tests.ledger.consortium import key
from tests.node.network import NETWORK_ID, Network, running_network

DR_A, PATIENT, OTHER, INSURER = (key(f"creds:{n}") for n in ("dr-a", "patient", "other", "insurer"))
ASKED = (Predicate.parse("hba1c_x10 < 65"), Predicate.parse("non_smoker >= 1"))


async def _set_up(net: Network) -> None:
    await net.register_staff("hospital-a", DR_A, "doctor")
    await net.register_staff("insurer", INSURER, "verifier")
    for patient in (PATIENT, OTHER):
        await net.register_patient(patient)
    async with net.client("hospital-a", net.nodes["hospital-a"].member) as hospital:
        await hospital.post("/v1/credentials/setup", {"max_credentials": 20})
    (history,) = generate_patients(1, seed=41, records_per_patient=12)
    results = CheckupResults(5.8, 24.1, 118, 76, "never")
    day = datetime(2026, 11, 20, tzinfo=UTC)
    checkup = checkup_observations(str(history.patient["id"]), day, results, seed=41)
    chart = [history.patient, *history.resources, *checkup]
    async with net.client("hospital-a", DR_A) as dr_a:
        sources = [(f"r{i}.json", r) for i, r in enumerate(chart)]
        written, rejected = await upload_records(dr_a, PATIENT.address, sources)
    assert not rejected and len(written) == len(chart)
    # Wallets and verifiers believe the issuer's documents once a checkpoint proves them.
    await net.checkpoint()


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with running_network(tmp_path_factory.mktemp("credentials")) as network:
        asyncio.run(_set_up(network))
        yield network


def test_anoncreds_from_shown_records_proves_two_facts_to_an_insurer_elsewhere(
    net: Network, tmp_path: Path
) -> None:
    async def scenario() -> None:
        async with net.client("hospital-a", PATIENT) as client:
            evidence = await gather_evidence(client)
            state = ProvenState(client)
            registry = Registry(state)
            wallet = Wallet(tmp_path / "wallet.sealed", PATIENT)
            offer = await client.credential_offer()
            request = wallet.request_anoncreds(offer.offer, registry)
            issued = await client.issue(IssueIn(format="anoncreds", evidence=evidence,
                                                offer=offer.offer, request=request))  # fmt: skip
            wallet.store_anoncreds(issued.credential, issued.credential_id, registry)
            rev_reg = json.loads(registry.document(wallet.credentials[0].held().rev_reg_id))
            tails = tmp_path / "tails"
            tails.mkdir()
            name = rev_reg["value"]["tailsHash"]
            (tails / name).write_bytes(await client.tails(name))

            office = NodeClient(net.nodes["insurer"].url, INSURER)
            network = (await office.health()).network
            ledger = RemoteLedger(office, network)
            insurer = Verifier(ledger, INSURER)
            now_ms = int(time.time() * 1000)
            signed = insurer.request(purpose="COVERAGE", fmt="anoncreds", now_ms=now_ms,
                                     predicates=ASKED, issuers=[Address(offer.issuer)])  # fmt: skip
            envelope = await asyncio.to_thread(wallet.present, signed, registry, now_ms=now_ms,
                                               tails_dir=tails)  # fmt: skip
            state.close()
            result = await insurer.verify(signed, envelope, now_ms=now_ms)
            ledger.close()
            await office.close()
        assert result.facts == {str(p): True for p in ASKED}
        assert network == NETWORK_ID

    asyncio.run(scenario())


def test_an_sd_jwt_and_a_health_card_come_from_the_same_records(net: Network) -> None:
    async def scenario() -> None:
        async with net.client("hospital-a", PATIENT) as client:
            evidence = await gather_evidence(client)
            holder = Wallet.new_holder_key()
            sd = await client.issue(IssueIn(format="sd-jwt", evidence=evidence,
                                            holder_jwk=json.loads(holder.export_public())))
            assert sd.credential.count("~") >= 5
            # A card carries what it certifies: the patient and their vaccinations.
            shown = await gather_evidence(client, {"Patient", "Immunization"})
            card = await client.issue(IssueIn(format="health-card", evidence=shown))
            state = ProvenState(client)
            verified = verify_health_card(
                card.credential, Registry(state), now_s=int(time.time())
            )
            state.close()
        assert verified.issuer == "https://hospital-a.invalid"
        assert card.qr_text is not None and card.qr_text.startswith("shc:/")
        assert card.qr is not None and card.qr.lstrip().startswith("<?xml")
        types = {e["resource"]["resourceType"] for e in verified.bundle["entry"]}
        assert types == {"Patient", "Immunization"}

    asyncio.run(scenario())


@pytest.mark.parametrize("forgery", ["altered", "another patient's", "not a patient"])
def test_forged_evidence_and_strangers_are_refused(net: Network, forgery: str) -> None:
    async def attempt() -> None:
        async with net.client("hospital-a", PATIENT) as client:
            evidence = [e.model_dump() for e in await gather_evidence(client)]
        if forgery == "altered":
            text = base64.b64decode(evidence[-1]["resource"]).replace(b'"final"', b'"amended"')
            evidence[-1]["resource"] = base64.b64encode(text).decode()
        caller = {"altered": PATIENT, "another patient's": OTHER, "not a patient": DR_A}[forgery]
        body = {"format": "sd-jwt", "evidence": evidence,
                "holder_jwk": json.loads(Wallet.new_holder_key().export_public())}  # fmt: skip
        async with net.client("hospital-a", caller) as client:
            with pytest.raises(NodeRefused) as refused:
                await client.post("/v1/credentials/issue", body)
        expected = {"altered": (422, "not what its author signed"),
                    "another patient's": (422, "not a record of"),
                    "not a patient": (403, "not a registered patient")}[forgery]  # fmt: skip
        assert refused.value.status == expected[0] and expected[1] in str(refused.value)

    asyncio.run(attempt())


def test_a_patient_s_own_records_are_kept_but_are_no_issuer_s_evidence(net: Network) -> None:
    """A patient writes a home reading into their chart at hospital A; it is theirs to
    keep and read, but hospital A issues nothing from it, and nobody writes for them."""
    reading = {**checkup_observations("home", datetime(2026, 12, 1, tzinfo=UTC),
                                      CheckupResults(5.0, 22.0, 110, 70, "never"), seed=7)[0],
               "id": "home-reading"}  # fmt: skip

    clinicians_record = {**reading, "id": "by-the-clinic"}

    async def scenario() -> None:
        async with net.client("hospital-a", DR_A) as dr_a:
            clinic = [("clinic.json", clinicians_record)]
            (clinicians,), _ = await upload_records(dr_a, OTHER.address, clinic)
        async with net.client("hospital-a", OTHER) as client:
            (written,), rejected = await upload_records(client, OTHER.address,
                                                        [("home.json", reading)])  # fmt: skip
            assert not rejected
            rows = await client.get("/v1/records", {"patient": OTHER.address})
            (row,) = [r for r in rows if r["author"] == OTHER.address]
            assert row["category"] == "labs"
            fetched = committed_from_json(await client.get(f"/v1/records/{row['record_id']}"))
            salt, canonical = open_salted_as_patient(
                fetched.sealed, encryption_key(OTHER, PATIENT_LABEL)
            )
            # Evidence is what the clinic wrote, never the patient's own account.
            assert [e.record_id for e in await gather_evidence(client)] == [clinicians.record_id]
            evidence = [{"record_id": row["record_id"], "version": 1, "salt": "0x" + salt.hex(),
                         "resource": base64.b64encode(canonical).decode()}]  # fmt: skip
            body = {"format": "sd-jwt", "evidence": evidence,
                    "holder_jwk": json.loads(Wallet.new_holder_key().export_public())}  # fmt: skip
            with pytest.raises(NodeRefused) as refused:
                await client.post("/v1/credentials/issue", body)
            assert "not written by this institution's staff" in str(refused.value)
            # The clinicians' records stay theirs: the patient's copy of one is a record of
            # its own, and a version the patient signs of a clinician's is refused.
            (copied,), _ = await upload_records(client, OTHER.address,
                                                [("copy.json", clinicians_record)])  # fmt: skip
            assert copied.record_id != clinicians.record_id and copied.version == 1
            async with net.client("hospital-a", DR_A) as dr_a:
                as_staff_see_it = await uploads_module._listed_versions(dr_a, OTHER.address)

            async def listed_as_for_staff(*_: object) -> object:
                return as_staff_see_it

            async def unchecked(*_: object) -> None:
                return None

            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(uploads_module, "_listed_versions", listed_as_for_staff)
                # The patient's client sees that the version it would follow is not theirs ...
                with pytest.raises(InvalidInput, match="other than it serves it"):
                    await upload_records(client, OTHER.address, [("c.json", clinicians_record)])
                # ... and the vault refuses what a client that did not look signed anyway.
                patch.setattr(uploads_module, "_check_amended", unchecked)
                with pytest.raises(NodeRefused, match="do not amend each other"):
                    await upload_records(client, OTHER.address, [("c.json", clinicians_record)])
            # Into another patient's chart, a patient writes nothing.
            with pytest.raises(NodeRefused) as forbidden:
                await upload_records(client, PATIENT.address, [("x.json", reading)])
            assert forbidden.value.status == 403
        assert written.version == 1

    asyncio.run(scenario())


def test_only_the_institution_sets_up_its_issuer_and_patient_data_stays_unreadable(
    net: Network,
) -> None:
    async def attempt() -> None:
        async with net.client("hospital-a", DR_A) as client:
            with pytest.raises(NodeRefused) as setup:
                await client.post("/v1/credentials/setup", {})
            with pytest.raises(NodeRefused) as grants:
                await client.get("/v1/ledger/state/access.grant", {"key": "0x" + "00" * 32})
        assert setup.value.status == 403 and grants.value.status == 404

    asyncio.run(attempt())
