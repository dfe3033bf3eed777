"""The vault from the shell: init, a patient, import, list, show, verify, and tampering."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from medledger.access import contract as access
from medledger.access.approval import Approval
from medledger.access.custodian import Custodian
from medledger.access.reader import read_record
from medledger.crypto.canonical import canonical_json
from medledger.node.home import CLINICIAN, FOUNDERS, Home
from medledger.node.identities import CUSTODIAN_LABEL, encryption_key
from medledger.records.proof import committed_record
from tests.conftest import new_postgres_database
from tests.data import FHIR_EXAMPLES as EXAMPLES
from tests.records.world import lab_result

PASSPHRASE = "correct horse battery staple"


def medledger(
    home: Path, *args: str, passphrase: str | None = PASSPHRASE, vault_url: str | None = None
) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDLEDGER_")}
    env["MEDLEDGER_HOME"] = str(home)
    if vault_url is not None:
        env["MEDLEDGER_VAULT_URL"] = vault_url
    if passphrase is not None:
        env["MEDLEDGER_PASSPHRASE"] = passphrase
    return subprocess.run(
        [sys.executable, "-m", "medledger", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_a_patient_s_records_go_in_come_out_and_tampering_is_caught(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert medledger(home, "init", "--scrypt-n", "1024").returncode == 0
    added = medledger(home, "patient", "add", "alice", "--scrypt-n", "1024")
    assert added.returncode == 0, added.stderr

    # The HL7 examples are about ten people: the chart takes those about Patient/example.
    imported = medledger(home, "records", "import", "--patient", "alice", str(EXAMPLES),
                         "--source-patient", "example", "--json")  # fmt: skip
    assert imported.returncode == 3, imported.stderr
    report = json.loads(imported.stdout)
    assert len(report["written"]) == 21 and report["checkpoint"] is not None
    assert len(report["rejected"]) == 34 and len(report["shared"]) == 17
    rejected = {r["source"]: r for r in report["rejected"]}
    assert rejected["diagnosticReport-example1.json"]["field"] == "subject.reference"
    assert rejected["diagnosticReport-example2.json"]["field"].startswith("contained[")
    assert "34 resources rejected (21 written)" in imported.stderr

    listed = json.loads(medledger(home, "records", "list", "--patient", "alice", "--json").stdout)
    assert len(listed) == 21
    entry = next(r for r in report["written"] if r["source"] == "observation-example1.json")
    record = entry["record_id"]
    shown = medledger(home, "records", "show", record[:8], "--patient", "alice", "--json")
    assert shown.returncode == 0, shown.stderr
    original = json.loads((EXAMPLES / "observation-example1.json").read_text())
    assert canonical_json(json.loads(shown.stdout)["resource"]) == canonical_json(original)

    proof = medledger(home, "records", "proof", record, "--patient", "alice")
    assert proof.returncode == 0, proof.stderr
    (tmp_path / "proof.json").write_text(proof.stdout)
    checked = medledger(home, "records", "check-proof", str(tmp_path / "proof.json"),
                        "--patient", "alice", "--json")  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    assert json.loads(checked.stdout)["record"] == f"{entry['record_id']} v1"
    forged = json.loads(proof.stdout)
    forged["header"]["category"] = "administrative"
    (tmp_path / "forged.json").write_text(json.dumps(forged))
    refused = medledger(home, "records", "check-proof", str(tmp_path / "forged.json"),
                        "--patient", "alice")  # fmt: skip
    assert refused.returncode == 3 and "commitment" in refused.stderr

    verified = medledger(home, "verify", "--json")
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["ok"] is True

    engine = create_engine(f"sqlite:///{home / 'vault.db'}")
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE vault_records SET category = 'imaging' WHERE record_id = :r"),
            {"r": bytes.fromhex(entry["record_id"])},
        )
    engine.dispose()
    tampered = medledger(home, "verify", "--json")
    assert tampered.returncode == 3
    problems = json.loads(tampered.stdout)["problems"]
    assert [(p["subject"], p["check"]) for p in problems] == [
        (f"{entry['record_id']} v1", "signature")
    ]
    assert "verify found 1 problems" in tampered.stderr


def test_mistakes_get_one_clear_line_and_a_usage_exit_code(tmp_path: Path) -> None:
    home = tmp_path / "home"
    missing = medledger(home, "verify")
    assert missing.returncode == 2 and "medledger init" in missing.stderr
    assert medledger(home, "init", "--scrypt-n", "1024").returncode == 0
    again = medledger(home, "init", "--scrypt-n", "1024")
    assert again.returncode == 2 and "already holds" in again.stderr
    unknown = medledger(home, "records", "import", "--patient", "bob", str(EXAMPLES))
    assert unknown.returncode == 2 and "no key named 'patient-bob'" in unknown.stderr
    no_secret = medledger(home, "patient", "add", "bob", "--scrypt-n", "1024", passphrase=None)
    assert no_secret.returncode == 2 and "MEDLEDGER_PASSPHRASE" in no_secret.stderr
    wrong = medledger(home, "patient", "add", "bob", "--scrypt-n", "1024", passphrase="wrong")
    assert wrong.returncode == 0
    # bob's keystore was sealed under another passphrase than this shell's.
    mismatch = medledger(home, "records", "show", "00" * 16, "--patient", "bob")
    assert mismatch.returncode == 3 and "keystore" in mismatch.stderr.lower()
    assert "Traceback" not in mismatch.stderr


@pytest.mark.postgres
def test_the_vault_can_live_in_postgresql(tmp_path: Path, postgres_url: str) -> None:
    url = new_postgres_database(postgres_url)
    home = tmp_path / "home"
    assert medledger(home, "init", "--scrypt-n", "1024", vault_url=url).returncode == 0
    added = medledger(home, "patient", "add", "pat", "--scrypt-n", "1024", vault_url=url)
    assert added.returncode == 0
    files = [str(EXAMPLES / "observation-example1.json"), str(EXAMPLES / "patient-example1.json")]
    imported = medledger(home, "records", "import", "--patient", "pat", *files, vault_url=url)
    assert imported.returncode == 0, imported.stderr
    assert medledger(home, "verify", vault_url=url).returncode == 0
    assert not (home / "vault.db").exists()
    # The same home without the URL looks at an empty SQLite vault: nothing verifies.
    assert medledger(home, "verify").returncode == 3


def test_the_audit_shows_each_read_of_a_patient_s_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    lab = tmp_path / "lab.json"
    lab.write_text(json.dumps(lab_result()))
    assert medledger(home, "init", "--scrypt-n", "1024").returncode == 0
    assert medledger(home, "patient", "add", "ann", "--scrypt-n", "1024").returncode == 0
    imported = medledger(home, "records", "import", "--patient", "ann", str(lab), "--json")
    record_id = bytes.fromhex(json.loads(imported.stdout)["written"][0]["record_id"])
    empty = medledger(home, "access", "audit", "--patient", "ann", "--json")
    assert empty.returncode == 0, empty.stderr
    assert json.loads(empty.stdout)["reads"] == []
    # Printed as every --json output is, so scripts that compare text see no change.
    assert empty.stdout == json.dumps(json.loads(empty.stdout)) + "\n"

    monkeypatch.setenv("MEDLEDGER_PASSPHRASE", PASSPHRASE)
    asyncio.run(_read_under_a_grant(Home(home), record_id))

    shown = medledger(home, "access", "audit", "--patient", "ann", "--json")
    assert shown.returncode == 0, shown.stderr
    (read,) = json.loads(shown.stdout)["reads"]
    assert (read["record_id"], read["version"], read["purpose"]) == (record_id.hex(), 1, "TREAT")
    assert len(read["receipts"]) == 3 and read["proven"]
    assert all(r["checkpoint"] and r["proof"] for r in read["receipts"])
    table = medledger(home, "access", "audit", "--patient", "ann")
    # One row for the read, its record named whole, with its time and proof.
    assert table.stdout.count("TREAT") == 1 and f"{record_id.hex()} v1" in table.stdout
    assert "in checkpoint" in table.stdout and "not yet" not in table.stdout


async def _read_under_a_grant(home: Home, record_id: bytes) -> None:
    """Dr Lee asks for Ann's labs, Ann approves, the custodians release, Dr Lee reads."""
    async with home.session(writer=FOUNDERS[0][0]) as session:
        node = session.node
        doctor = home.load_key(CLINICIAN)
        patient = home.load_key(home.patient_name("ann"))
        payload = {
            "patient": patient.address,
            "categories": ["labs"],
            "purpose": "TREAT",
            "duration_s": 3600,
        }
        asked = await node.submit_payload(doctor, access.REQUEST, payload)
        not_after = time.time_ns() // 10**6 + 60_000
        approval = Approval(
            node.network_id, asked.tx_id, patient.address, doctor.address, not_after
        )
        approvals = [approval.signed_by(patient)]
        await node.submit_payload(
            doctor, access.APPROVE, {"request": "0x" + asked.tx_id.hex(), "approvals": approvals}
        )
        custodians = [
            Custodian(
                node,
                home.load_key(ident),
                encryption_key(home.load_key(f"{ident}-custodian"), CUSTODIAN_LABEL),
            )
            for ident, _ in FOUNDERS
        ]
        stored = session.store.get(record_id)
        record = committed_record(stored, "0x" + session.store.vault_id.hex(), node)
        text = await read_record(doctor, asked.tx_id, record, custodians=custodians, threshold=2)
        assert json.loads(text)["resourceType"] == "Observation"
        await session.checkpoint()


def test_a_patient_sets_policies_as_json_or_as_a_fhir_consent(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert medledger(home, "init", "--scrypt-n", "1024").returncode == 0
    assert medledger(home, "patient", "add", "bea", "--scrypt-n", "1024").returncode == 0
    shown = medledger(home, "policy", "show", "--patient", "bea", "--category", "labs", "--json")
    assert json.loads(shown.stdout)["version"] == 0
    default = medledger(home, "policy", "show", "--patient", "bea", "--category", "labs")
    assert "labs: approved by patient; for ETREAT, TREAT;" in default.stdout
    policy = {
        "approvers": {"k_of": 2, "of": [{"patient": True}, {"role": "doctor"}, {"role": "nurse"}]},
        "purposes": ["TREAT"],
        "max_duration_s": 3600,
    }
    (tmp_path / "policy.json").write_text(json.dumps(policy))
    no_category = medledger(
        home, "policy", "set", str(tmp_path / "policy.json"), "--patient", "bea"
    )
    assert no_category.returncode == 2 and "--category" in no_category.stderr
    labs = medledger(
        home,
        "policy",
        "set",
        str(tmp_path / "policy.json"),
        "--patient",
        "bea",
        "--category",
        "labs",
    )
    assert labs.returncode == 0, labs.stderr
    consent = medledger(
        home, "policy", "show", "--patient", "bea", "--category", "labs", "--consent"
    )
    document = json.loads(consent.stdout)
    assert document["resourceType"] == "Consent"
    document["provision"]["class"][0]["code"] = "imaging"
    (tmp_path / "consent.json").write_text(json.dumps(document))
    imaging = medledger(home, "policy", "set", str(tmp_path / "consent.json"), "--patient", "bea")
    assert imaging.returncode == 0, imaging.stderr
    shown = medledger(home, "policy", "show", "--patient", "bea", "--category", "imaging",
                      "--json")  # fmt: skip
    assert json.loads(shown.stdout) == {"version": 1, "policy": {**policy, "condition": None}}
    short = medledger(home, "policy", "set", "--approvers", "2 of patient, doctor, nurse",
                      "--category", "labs", "--patient", "bea")  # fmt: skip
    assert short.returncode == 0, short.stderr
    shown = medledger(home, "policy", "show", "--patient", "bea", "--category", "labs")
    assert "labs: approved by 2 of patient, doctor, nurse; for ETREAT, TREAT" in shown.stdout
    unmet = medledger(home, "policy", "set", "--approvers", "3 of patient, doctor",
                      "--category", "labs", "--patient", "bea")  # fmt: skip
    assert unmet.returncode == 3 and "3 of 2 cannot be met" in unmet.stderr
    both = medledger(home, "policy", "set", str(tmp_path / "policy.json"), "--approvers",
                     "patient", "--category", "labs", "--patient", "bea")  # fmt: skip
    assert both.returncode == 2 and "not both" in both.stderr
    document["provision"]["type"] = "deny"
    (tmp_path / "deny.json").write_text(json.dumps(document))
    refused = medledger(home, "policy", "set", str(tmp_path / "deny.json"), "--patient", "bea")
    assert refused.returncode == 3 and "permit" in refused.stderr
