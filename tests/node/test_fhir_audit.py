"""A patient's audit trail as FHIR AuditEvents: the BALP mapping of each read and
break-glass grant, then the routes over three real nodes, where a hospital system's
chart read shows up in the patient's trail and only the patient or a guardian sees it.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from medledger.access import glass
from medledger.access.audit import Read, Receipt, audit_log, break_glass_notices
from medledger.access.contract import SET_GUARDIANS
from medledger.access.delegation import Delegation, SignedDelegation
from medledger.crypto import merkle
from medledger.crypto.keys import PrivateKey
from medledger.ledger.contracts import identity
from medledger.ledger.timestamps import NS_PER_MS, NS_PER_S
from medledger.node.fhir.audit_events import (
    SUBTYPE_SYSTEM,
    audit_events,
    break_glass_event,
    patient_of_event,
    read_event,
)
from medledger.node.fhir.bundle import served
from medledger.node.fhir.tokens import Session, Tokens
from medledger.records.fhir import validate_resource
from medledger.records.fhir_search import Found, UnsupportedSearch, parse_query, search
from tests.access.chain import DR_A, PHARMACIST_A, Ledger
from tests.access.chain import PATIENT as CHAIN_PATIENT
from tests.access.test_state_types import _approve, _ask
from tests.ledger.consortium import key
from tests.node.network import NETWORK_ID, Network
from tests.node.test_fhir_api import OTHER, PATIENT, SCENE, _fhir, _get, _token, net

__all__ = ["net"]

GUARDIAN = key("fhir-audit:guardian")
READER, NODE = key("fhir-audit:reader").address, key("fhir-audit:node").address
CUSTODIANS = [key(f"fhir-audit:custodian-{n}").address for n in range(3)]
RECORD = "ab" * 16
READ_DIGEST = "0x" + "cd" * 32
GRANT = "0x" + "ef" * 32
#: 2026-12-03T10:00:00.123456789Z
AT_NS = 1_796_292_000 * NS_PER_S + 123_456_789


def _receipt(n: int, *, at_ns: int, proven: bool = True) -> Receipt:
    return Receipt(
        receipt="0x" + f"{n:02x}" * 32, custodian=CUSTODIANS[n], index=40 + n, timestamp_ns=at_ns,
        checkpoint_size=64 if proven else None,
        proof=(bytes([n]) * 32, bytes([n + 1]) * 32) if proven else (),
    )  # fmt: skip


def _read(**changes: Any) -> Read:
    fields: dict[str, Any] = {
        "read": READ_DIGEST, "grant": GRANT, "reader": READER, "record_id": RECORD, "version": 1,
        "resource_type": "Observation", "author": CUSTODIANS[2], "category": "labs",
        "purpose": "TREAT", "emergency": False,
        # The later receipt first: the event is recorded at the earlier.
        "receipts": (_receipt(1, at_ns=AT_NS + 5 * NS_PER_MS), _receipt(0, at_ns=AT_NS)),
        "via": None, "app": None, "threshold": 2,
    }  # fmt: skip
    return Read(**{**fields, **changes})


def _valid(found: Found) -> dict[str, Any]:
    """The event as served, after the project's FHIR validation passed it."""
    resource = served(found)
    validate_resource(resource, "audit-event")
    assert found.resource_type == "AuditEvent"
    return resource


def _agents(event: dict[str, Any], code: str) -> list[dict[str, Any]]:
    return [a for a in event["agent"] if a["type"]["coding"][0]["code"] == code]


def _details(entity: dict[str, Any]) -> dict[str, str]:
    return {d["type"]: d.get("valueString") or d["valueBase64Binary"] for d in entity["detail"]}


def test_a_read_is_a_balp_read_with_every_receipt() -> None:
    event = _valid(read_event(_read(), PATIENT.address))
    assert event["type"] == {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
                             "code": "rest", "display": "Restful Operation"}  # fmt: skip
    assert [(s["system"], s["code"]) for s in event["subtype"]] == [
        ("http://hl7.org/fhir/restful-interaction", "read")]  # fmt: skip
    assert (event["action"], event["outcome"]) == ("R", "0")
    assert event["recorded"] == "2026-12-03T10:00:00.123Z"
    assert "outcomeDesc" not in event
    (reader,) = _agents(event, "IRCP")
    assert reader["who"]["identifier"]["value"] == READER and reader["requestor"] is True
    assert reader["policy"] == [f"urn:medledger:grant:{GRANT}"]
    act_reason = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
    assert reader["purposeOfUse"] == [{"coding": [{"system": act_reason, "code": "TREAT"}]}]
    custodians = _agents(event, "110152")
    assert [a["who"]["identifier"]["value"] for a in custodians] == CUSTODIANS[1::-1]
    assert not any(a["requestor"] for a in custodians)
    assert not _agents(event, "110150") and not _agents(event, "110153")  # not delegated
    assert event["source"]["observer"]["identifier"]["value"] == CUSTODIANS[0]
    patient, record, *receipts = event["entity"]
    assert patient["what"] == {"reference": f"Patient/{PATIENT.address}"}
    assert (patient["role"]["code"], patient["type"]["code"]) == ("1", "1")
    assert record["what"] == {"reference": f"Observation/{RECORD}/_history/1"}
    assert (record["role"]["code"], record["type"]["code"]) == ("4", "2")
    assert _details(record) == {"read": READ_DIGEST, "author": CUSTODIANS[2], "category": "labs"}
    assert [r["what"]["identifier"]["value"] for r in receipts] == ["0x" + "01" * 32,
                                                                   "0x" + "00" * 32]  # fmt: skip
    first = _details(receipts[1])
    assert (first["custodian"], first["index"], first["checkpoint"]) == (CUSTODIANS[0], "40", "64")
    assert base64.b64decode(first["inclusion-proof"]) == bytes(32) + bytes([1]) * 32
    assert first["timestamp"] == "2026-12-03T10:00:00.123Z"


def test_a_delegated_read_of_a_later_version_names_the_app_and_the_node() -> None:
    event = _valid(read_event(_read(version=3, via=NODE, app="ehr-b"), PATIENT.address))
    assert event["subtype"][0]["code"] == "vread"
    assert event["entity"][1]["what"]["reference"] == f"Observation/{RECORD}/_history/3"
    (app,) = _agents(event, "110150")
    assert app["who"] == {"display": "ehr-b"} and app["requestor"] is False
    (node,) = _agents(event, "110153")
    assert node["who"]["identifier"]["value"] == NODE and node["requestor"] is False
    assert _agents(event, "IRCP")[0]["requestor"] is True


def test_a_receipt_not_yet_proven_has_no_checkpoint_and_a_short_read_says_so() -> None:
    read = _read(receipts=(_receipt(0, at_ns=AT_NS, proven=False),))
    event = _valid(read_event(read, PATIENT.address))
    receipt = event["entity"][2]
    assert set(_details(receipt)) == {"custodian", "index", "timestamp"}
    assert "not yet" in receipt["description"]
    assert event["outcomeDesc"] == "1 of the 2 custodians a record takes released"
    proven = _valid(read_event(_read(), PATIENT.address))["entity"][2]
    assert "not yet" not in proven["description"]


def test_a_patient_s_own_read_names_no_grant() -> None:
    event = _valid(read_event(_read(grant=None, reader=PATIENT.address, purpose="PATRQT"),
                              PATIENT.address))  # fmt: skip
    (reader,) = _agents(event, "IRCP")
    assert reader["who"]["identifier"]["value"] == PATIENT.address and "policy" not in reader
    assert reader["purposeOfUse"][0]["coding"][0]["code"] == "PATRQT"


@pytest.mark.parametrize("purpose", ["TREAT", "ETREAT", "HPAYMT", "HRESCH", "PUBHLTH"])
def test_a_grant_s_purpose_of_use_is_its_act_reason_code(purpose: str) -> None:
    event = _valid(read_event(_read(purpose=purpose), PATIENT.address))
    (coding,) = _agents(event, "IRCP")[0]["purposeOfUse"][0]["coding"]
    assert coding["code"] == purpose


def test_a_purpose_that_is_no_act_reason_is_shown_as_text() -> None:
    event = _valid(read_event(_read(purpose="audit"), PATIENT.address))
    assert _agents(event, "IRCP")[0]["purposeOfUse"] == [{"text": "audit"}]


def _notice(**changes: Any) -> dict[str, Any]:
    return {"grant": GRANT, "requester": READER, "categories": ["allergies", "medications"],
            "purpose": "ETREAT", "approvers": [CUSTODIANS[1]], "granted_ns": AT_NS,
            "expires_ns": AT_NS + 3600 * NS_PER_S, **changes}  # fmt: skip


def test_a_break_glass_grant_is_an_emergency_event_of_our_own_subtype() -> None:
    event = _valid(break_glass_event(_notice(), PATIENT.address, NODE))
    assert (event["type"]["code"], event["action"], event["outcome"]) == ("110113", "E", "0")
    assert event["subtype"] == [{"system": SUBTYPE_SYSTEM, "code": "break-glass",
                                 "display": "Break-glass grant"}]  # fmt: skip
    assert event["recorded"] == "2026-12-03T10:00:00.123Z"
    (requester,) = _agents(event, "IRCP")
    assert requester["who"]["identifier"]["value"] == READER and requester["requestor"] is True
    assert [p["coding"][0]["code"] for p in requester["purposeOfUse"]] == ["ETREAT"]
    (approver,) = _agents(event, "AUTHEN")
    assert approver["who"]["identifier"]["value"] == CUSTODIANS[1]
    assert event["source"]["observer"]["identifier"]["value"] == NODE
    patient, grant = event["entity"]
    assert patient["what"]["reference"] == f"Patient/{PATIENT.address}"
    assert grant["what"]["identifier"]["value"] == GRANT
    categories = [d["valueString"] for d in grant["detail"] if d["type"] == "category"]
    assert categories == ["allergies", "medications"]
    glass = _valid(break_glass_event(_notice(purpose="BTG"), PATIENT.address, NODE))
    codes = [p["coding"][0]["code"] for p in _agents(glass, "IRCP")[0]["purposeOfUse"]]
    assert codes == ["ETREAT", "BTG"]


def test_a_reviewed_break_glass_grant_is_still_one_event(tmp_path: Path) -> None:
    """The notices also hold each grant's review, which names no terms (a regression:
    the trail of a patient whose break-glass grant was reviewed failed to build)."""
    ledger = Ledger(tmp_path)
    terms = {"categories": ["allergies"], "emergency": True, "purpose": "ETREAT"}
    grant = _ask(ledger, DR_A, **terms)
    _approve(ledger, grant, DR_A, DR_A, PHARMACIST_A)
    reviewer = key("fhir-audit:privacy-officer")
    ledger.ok(ledger.consortium.keys[1], identity.REGISTER_PARTICIPANT,
              {"address": reviewer.address, "role": "officer"})  # fmt: skip
    review = {"grant": "0x" + grant.hex(), "finding": "justified"}
    assert ledger.send(reviewer, glass.REVIEW, review) is None
    notices = break_glass_notices(ledger.store, CHAIN_PATIENT.address)
    events = audit_events([], notices, patient=CHAIN_PATIENT.address, observer=NODE)
    assert [e.resource["entity"][1]["what"]["identifier"]["value"] for e in events] == [
        "0x" + grant.hex()]  # fmt: skip
    assert all(_valid(e) for e in events)


def test_ids_are_stable_name_the_patient_and_differ_per_read_record_and_version() -> None:
    base = read_event(_read(), PATIENT.address).logical_id
    assert read_event(_read(), PATIENT.address).logical_id == base
    assert len(base) <= 64 and patient_of_event(base) == PATIENT.address
    others = {
        read_event(_read(version=2), PATIENT.address).logical_id,
        read_event(_read(record_id="12" * 16), PATIENT.address).logical_id,
        read_event(_read(read="0x" + "00" * 32), PATIENT.address).logical_id,
        read_event(_read(), OTHER.address).logical_id,
        break_glass_event(_notice(), PATIENT.address, NODE).logical_id,
    }
    assert base not in others and len(others) == 5
    for junk in ("", base.upper(), base + "0", "Observation-1", base.replace("-", "")):
        assert patient_of_event(junk) is None


def test_the_trail_lists_reads_then_break_glass_grants() -> None:
    events = audit_events([_read(), _read(version=2)], [_notice()], patient=PATIENT.address,
                          observer=NODE)  # fmt: skip
    assert [e.resource["subtype"][0]["code"] for e in events] == ["read", "vread", "break-glass"]
    assert all(_valid(e) for e in events)

    def found(subtype: str) -> set[str]:
        query = parse_query([("subtype", subtype)], resource_type="AuditEvent")
        return {e.resource["subtype"][0]["code"] for e in search(query, events)}

    assert found(f"{SUBTYPE_SYSTEM}|break-glass") == {"break-glass"}
    assert found("vread,break-glass") == {"vread", "break-glass"}
    assert found("http://hl7.org/fhir/restful-interaction|") == {"read", "vread"}
    assert found("other|read") == set()
    with pytest.raises(UnsupportedSearch):
        parse_query([("subtype", "read")], resource_type="Observation")


# Over three real nodes: the scene of test_fhir_api.py, a guardian for its patient.


def _tokens(net: Network) -> Tokens:
    _token(net)  # the node makes its token store on first use
    tokens: Tokens = net.nodes["hospital-b"].server.config.app.state.tokens
    return tokens


def _person_token(net: Network, person: PrivateKey, types: set[str] | None = None) -> str:
    """A token for a person's own app, as SMART App Launch issues one."""
    expires_ns = time.time_ns() + 300 * NS_PER_S
    member = net.nodes["hospital-b"].member.address
    delegation = Delegation.of_types(NETWORK_ID, member, "my-app",
                                     {"AuditEvent"} if types is None else types,
                                     expires_ns // NS_PER_MS)  # fmt: skip
    session = Session(person.address, "my-app", "patient/AuditEvent.rs",
                      SignedDelegation.sign(delegation, person), expires_ns)  # fmt: skip
    return _tokens(net).issue(session)


@pytest.fixture(scope="module")
def trail(net: Network) -> Iterator[Network]:
    """The scene, a guardian named by the patient, the hospital system's chart read and a
    checkpoint that covers its receipts."""
    asyncio.run(net.submit("hospital-a", PATIENT, SET_GUARDIANS, {"guardians": [GUARDIAN.address]}))
    _fhir(_get(net, "/Observation", _token(net), patient=PATIENT.address))
    asyncio.run(net.checkpoint("hospital-b"))
    yield net


def _search(net: Network, token: str, status: int = 200, **params: str) -> dict[str, Any]:
    return _fhir(_get(net, "/AuditEvent", token, **params), status)


def test_the_patient_finds_the_system_s_read_with_its_app_and_receipts(trail: Network) -> None:
    node = trail.nodes["hospital-b"]
    reads = audit_log(node.service.node, PATIENT.address)
    bundle = _search(trail, _person_token(trail, PATIENT), patient=PATIENT.address)
    assert bundle["type"] == "searchset" and bundle["total"] == len(reads) >= 5
    events = [e["resource"] for e in bundle["entry"]]
    for event in events:
        validate_resource(event, "audit-event")
    recorded = [e["recorded"] for e in events]
    assert recorded == sorted(recorded)  # oldest first
    lab = SCENE.records_b["lab3.json"]
    event = next(e for e in events if e["entity"][1]["what"]["reference"].startswith(
        f"Observation/{lab}/"))  # fmt: skip
    assert [a["who"] for a in event["agent"] if a["type"]["coding"][0]["code"] == "110150"] == [
        {"display": "ehr-b"}]  # fmt: skip
    via = [a["who"]["identifier"]["value"] for a in event["agent"]
           if a["type"]["coding"][0]["code"] == "110153"]  # fmt: skip
    assert via == [node.member.address]
    read = next(r for r in reads if r.record_id == lab)
    receipts = event["entity"][2:]
    assert [r["what"]["identifier"]["value"] for r in receipts] == [
        r.receipt for r in read.receipts]  # fmt: skip
    # Each receipt checks against the cosigned checkpoint on its own.
    checkpoint = node.service.node.checkpoint()
    assert checkpoint is not None
    for receipt in receipts:
        details = _details(receipt)
        index, size = int(details["index"]), int(details["checkpoint"])
        raw = base64.b64decode(details["inclusion-proof"])
        proof = [raw[i : i + 32] for i in range(0, len(raw), 32)]
        leaf = merkle.leaf_hash(node.service.node.store.tx_by_index(index).raw)
        assert size == checkpoint.head.size
        merkle.verify_inclusion(leaf, index, size, proof, checkpoint.head.root)
    one = _fhir(_get(trail, f"/AuditEvent/{event['id']}", _person_token(trail, PATIENT)))
    assert one == event


def test_the_trail_pages_and_filters_by_date(trail: Network) -> None:
    token = _person_token(trail, PATIENT)
    everything = _search(trail, token, patient=PATIENT.address)
    first = _search(trail, token, patient=f"Patient/{PATIENT.address}", _count="2")
    assert first["total"] == everything["total"] and len(first["entry"]) == 2
    following = next(link["url"] for link in first["link"] if link["relation"] == "next")
    second = _fhir(httpx.get(following, headers={"Authorization": f"Bearer {token}"}))
    ids = [e["resource"]["id"] for e in first["entry"] + second["entry"]]
    assert ids == [e["resource"]["id"] for e in everything["entry"][:4]]
    assert _search(trail, token, patient=PATIENT.address, date="lt2020")["total"] == 0
    today = time.strftime("%Y-%m-%d", time.gmtime())
    later = _search(trail, token, patient=PATIENT.address, date=f"ge{today}", _sort="-date")
    assert later["total"] == everything["total"]
    recorded = [e["resource"]["recorded"] for e in later["entry"]]
    assert recorded == sorted(recorded, reverse=True)
    reads = _search(trail, token, patient=PATIENT.address,
                    subtype="http://hl7.org/fhir/restful-interaction|read")  # fmt: skip
    assert reads["total"] == everything["total"]
    glass = _search(trail, token, patient=PATIENT.address, subtype=f"{SUBTYPE_SYSTEM}|break-glass")
    assert glass["total"] == 0  # nobody broke the glass here


def test_a_guardian_reads_the_trail(trail: Network) -> None:
    token = _person_token(trail, GUARDIAN)
    bundle = _search(trail, token, patient=PATIENT.address)
    assert bundle["total"] >= 5
    event = bundle["entry"][0]["resource"]
    assert _fhir(_get(trail, f"/AuditEvent/{event['id']}", token))["id"] == event["id"]


def _refused(response: httpx.Response, status: int) -> None:
    outcome = _fhir(response, status)
    assert outcome["resourceType"] == "OperationOutcome"


def test_only_the_patient_or_a_guardian_sees_the_trail(trail: Network) -> None:
    event = _search(trail, _person_token(trail, PATIENT), patient=PATIENT.address)["entry"][0]
    logical_id = event["resource"]["id"]
    for token in (_token(trail), _person_token(trail, OTHER),
                  _person_token(trail, GUARDIAN, {"Observation"})):  # fmt: skip
        _refused(_get(trail, "/AuditEvent", token, patient=PATIENT.address), 403)
        _refused(_get(trail, f"/AuditEvent/{logical_id}", token), 403)
    # The other patient's own (empty) trail is theirs to see.
    assert _search(trail, _person_token(trail, OTHER), patient=OTHER.address)["total"] == 0
    _refused(_get(trail, "/AuditEvent", None, patient=PATIENT.address), 401)


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({}, 400),  # no patient
        ({"patient": f"{PATIENT.address},{GUARDIAN.address}"}, 400),  # two
        ({"patient": PATIENT.address, "agent": READER}, 400),  # not served
        ({"patient": PATIENT.address, "code": "x"}, 400),
        ({"patient": PATIENT.address, "subtype": "a|b|c"}, 400),
        ({"patient": PATIENT.address, "date": "yesterday"}, 400),
        ({"patient": "pat-a"}, 404),  # no pseudonym
    ],
)
def test_searches_that_are_refused(trail: Network, params: dict[str, str], status: int) -> None:
    _refused(_get(trail, "/AuditEvent", _person_token(trail, PATIENT), **params), status)


def test_an_event_not_in_the_trail_is_not_found(trail: Network) -> None:
    token = _person_token(trail, PATIENT)
    missing = f"{PATIENT.address[2:].lower()}-{'0' * 22}"
    for logical_id in (missing, "not-an-event", SCENE.records_b["lab3.json"]):
        _refused(_get(trail, f"/AuditEvent/{logical_id}", token), 404)


def test_the_capability_statement_declares_the_audit_search(trail: Network) -> None:
    statement = _fhir(httpx.get(trail.nodes["hospital-b"].url + "/fhir/metadata"))
    audit = next(r for r in statement["rest"][0]["resource"] if r["type"] == "AuditEvent")
    assert [i["code"] for i in audit["interaction"]] == ["read", "search-type"]
    assert [p["name"] for p in audit["searchParam"]] == ["_id", "patient", "date", "subtype"]
