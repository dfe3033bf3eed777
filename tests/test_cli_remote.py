"""The clinician's, patient's and operator's commands against a running local network:
a lab result pushed at hospital A, asked for at hospital B, approved by the patient,
read through the custodians of all three nodes, audited and revoked, all from the shell."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from medledger.crypto.canonical import canonical_json
from medledger.node.network import consecutive_free_ports
from medledger.records.synthetic import generate_patients
from medledger.records.synthetic_checkup import CheckupResults, checkup_observations
from tests.records.world import lab_result

PASSPHRASE = "remote cli passphrase"
(CHART,) = generate_patients(1, seed=23, records_per_patient=12)
CHECKUP = checkup_observations(str(CHART.patient["id"]), datetime(2026, 11, 20, tzinfo=UTC),
                               CheckupResults(5.8, 24.1, 118, 76, "never"), seed=23)  # fmt: skip


def medledger(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MEDLEDGER_PASSPHRASE": PASSPHRASE}
    command = [sys.executable, "-m", "medledger", *args]
    return subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=180, check=False
    )


def ok(*args: str) -> str:
    done = medledger(*args)
    assert done.returncode == 0, f"{args}: {done.stderr}"
    return done.stdout


def test_a_record_goes_from_hospital_a_to_a_doctor_at_hospital_b_from_the_shell(
    tmp_path: Path,
) -> None:
    net = tmp_path / "net"
    base = consecutive_free_ports(3)
    up = json.loads(ok("network", "up", "--dir", str(net), "--base-port", str(base),
                       "--orderer", "embedded", "--scrypt-n", "1024", "--json"))  # fmt: skip
    a, b, insurer = (up["nodes"][n]["url"] for n in ("hospital-a", "hospital-b", "insurer"))
    try:
        names = ("dr-a", "dr-b", "patient", "stranger")
        keys = {name: tmp_path / f"{name}.json" for name in names}
        for path in keys.values():
            ok("key", "new", str(path), "--scrypt-n", "1024")
        address = {name: ok("key", "show", str(path)).strip() for name, path in keys.items()}
        ok("staff", "add", address["dr-a"], "--role", "doctor", "--name", "Dr Ada Park",
           "--key", str(net / "keys" / "hospital-a.json"), "--node", a)  # fmt: skip
        ok("staff", "add", address["dr-b"], "--role", "doctor",
           "--key", str(net / "keys" / "hospital-b.json"), "--node", b)  # fmt: skip
        ok("patient", "register", "--key", str(keys["patient"]), "--node", a)

        resource = lab_result()
        lab = tmp_path / "lab.json"
        lab.write_text(json.dumps(resource))
        pushed = json.loads(ok("records", "push", str(lab), "--patient", address["patient"],
                               "--key", str(keys["dr-a"]), "--node", a, "--json"))  # fmt: skip
        record = pushed["written"][0]["record_id"]
        mine = json.loads(ok("records", "list", "--key", str(keys["patient"]), "--node", a,
                             "--json"))  # fmt: skip
        assert [r["record_id"] for r in mine] == [record]
        # A unique prefix is enough; the patient's key decrypts.
        opened = ok("records", "show", record[:6], "--key", str(keys["patient"]), "--node", a)
        assert json.loads(opened) == json.loads(canonical_json(resource))

        # The patient's policy for labs: two of the patient, Dr A and any doctor at B.
        patient_at = ("--key", str(keys["patient"]), "--node", b)
        hospital_b = ok("ledger", "status", "--key", str(keys["patient"]), "--node", b, "--json")
        rule = f"2 of patient, {address['dr-a']}, doctor@{json.loads(hospital_b)['member']}"
        ok("policy", "set", "--category", "labs", "--approvers", rule, *patient_at)
        shown = ok("policy", "show", "--category", "labs", *patient_at)
        assert f"labs: approved by {rule}; for ETREAT, TREAT" in shown

        request = ok("access", "request", "--patient", address["patient"], "--category", "labs",
                     "--key", str(keys["dr-b"]), "--node", b, "-q").strip()  # fmt: skip
        waiting = ok("access", "list", *patient_at)
        assert "1 request waiting for your answer" in waiting and request in waiting
        assert f"{address['dr-b']} (doctor at Hospital B) asks for labs" in waiting
        shown = ok("access", "show", request[:10], *patient_at)
        assert address["dr-b"] in shown and "labs" in shown and "TREAT" in shown
        # What the patient signs names the request in full: a node could list another
        # request under a prefix.
        prefixed = medledger("access", "approve", request[:10], *patient_at)
        assert prefixed.returncode == 2 and "whole request id" in prefixed.stderr
        approved = json.loads(ok("access", "approve", request, *patient_at, "--json"))
        # The patient alone is one of two.
        assert approved["status"] == "pending"
        approved = json.loads(ok("access", "approve", request, "--key", str(keys["dr-a"]),
                                 "--node", a, "--json"))  # fmt: skip
        assert approved["status"] == "granted" and approved["grant_status"] == "active"

        # Dr B lists what the grant covers and reads by a prefix.
        covered = json.loads(ok("records", "list", "--of", address["patient"], "--grant", request,
                                "--key", str(keys["dr-b"]), "--node", a, "--json"))  # fmt: skip
        assert [r["record_id"] for r in covered] == [record]
        record = record[:8]

        custodians = ["--custodian", a, "--custodian", b, "--custodian", insurer]
        read = ok("records", "read", record, "--grant", request, *custodians,
                  "--key", str(keys["dr-b"]), "--node", a)  # fmt: skip
        assert read.strip().encode() == canonical_json(resource)

        audit = json.loads(ok("access", "audit", "--key", str(keys["patient"]), "--node", a,
                              "--wait-s", "30", "--json"))  # fmt: skip
        (seen,) = audit["reads"]
        assert (seen["reader"], seen["record_id"], seen["version"]) == (
            address["dr-b"], mine[0]["record_id"], 1
        )
        assert len(seen["receipts"]) == 3 and seen["proven"]
        table = ok("access", "audit", "--key", str(keys["patient"]), "--node", a)
        assert f"{mine[0]['record_id']} v1" in table and address["dr-b"] in table

        ok("access", "revoke", request, "--key", str(keys["patient"]), "--node", b)
        assert "granted, now revoked" in ok("access", "show", request, *patient_at)
        again = medledger("records", "read", record, "--grant", request, *custodians,
                          "--key", str(keys["dr-b"]), "--node", a)  # fmt: skip
        assert again.returncode == 3 and "revoked" in again.stderr
        stranger = medledger("access", "show", request, "--key", str(keys["stranger"]), "--node", b)
        # A stranger cannot tell a request they are no party to from one that does not exist.
        assert stranger.returncode == 3 and "404 UnknownRequest: no request" in stranger.stderr
        # The CLI asks for a checkpoint covering the log as it stands: the revocation it
        # just made is proven at once.
        shown = json.loads(ok("access", "grant", request, "--key", str(keys["patient"]),
                              "--node", a, "--json"))  # fmt: skip
        assert shown["status"] == "revoked" and shown["proven"]["status"] == "revoked"
        assert shown["proven"]["checkpoint"] > 0

        # Credentials: hospital A issues from its checkup; the insurer learns two facts.
        chart = tmp_path / "checkup"
        chart.mkdir()
        for i, r in enumerate([CHART.patient, *CHECKUP, *CHART.resources]):
            (chart / f"{i:02d}.json").write_text(json.dumps(r))
        ok("records", "push", str(chart), "--patient", address["patient"],
           "--key", str(keys["dr-a"]), "--node", a)  # fmt: skip
        ok("credentials", "setup", "--key", str(net / "keys" / "hospital-a.json"), "--node", a,
           "--max-credentials", "10")  # fmt: skip
        wallet = tmp_path / "wallet" / "me.sealed"
        wallet.parent.mkdir()
        ok("credentials", "get", "--format", "anoncreds", "--wallet", str(wallet),
           "--key", str(keys["patient"]), "--node", a)  # fmt: skip
        card = tmp_path / "card.svg"
        ok("credentials", "get", "--format", "health-card", "--wallet", str(wallet),
           "--qr", str(card), "--key", str(keys["patient"]), "--node", a)  # fmt: skip
        assert card.read_text().lstrip().startswith("<?xml")
        ok("staff", "add", address["stranger"], "--role", "verifier",
           "--key", str(net / "keys" / "insurer.json"), "--node", insurer)  # fmt: skip
        issuer = json.loads(ok("ledger", "status", "--key", str(keys["patient"]), "--node", a,
                               "--json"))["member"]  # fmt: skip
        asked, answered = tmp_path / "request.json", tmp_path / "presentation.json"
        ok("credentials", "ask", "--predicate", "hba1c_x10 < 65", "--predicate", "non_smoker >= 1",
           "--purpose", "COVERAGE", "--issuer", issuer, "--out", str(asked),
           "--key", str(keys["stranger"]), "--node", insurer)  # fmt: skip
        shown = ok("credentials", "present", str(asked), "--wallet", str(wallet),
                   "--out", str(answered), "--key", str(keys["patient"]), "--node", a)  # fmt: skip
        assert "purpose COVERAGE" in shown and "prove hba1c_x10 < 65" in shown
        check = ("credentials", "verify", str(asked), str(answered),
                 "--key", str(keys["stranger"]), "--node", insurer)  # fmt: skip
        verified = json.loads(ok(*check, "--json"))
        assert verified["facts"] == {"hba1c_x10 < 65": True, "non_smoker >= 1": True}
        replayed = medledger(*check)
        assert replayed.returncode == 3 and "already verified" in replayed.stderr

        # The patient checks every record of theirs at hospital A against its proof, and
        # hands one proof to the insurer, who checks it against the consortium alone.
        patient_at_a = ("--key", str(keys["patient"]), "--node", a)
        verified = json.loads(ok("verify", *patient_at_a, "--json"))
        assert verified["ok"] and verified["records"] == 1 + 1 + len(CHECKUP) + len(CHART.resources)
        proof = tmp_path / "proof.json"
        proof.write_text(ok("records", "proof", mine[0]["record_id"], *patient_at_a))
        checked = ok("records", "check-proof", str(proof), "--key", str(keys["stranger"]),
                     "--node", insurer)  # fmt: skip
        assert f"Record {mine[0]['record_id']} v1 by {address['dr-a']}" in checked
        forged = json.loads(proof.read_text())
        forged["header"]["category"] = "administrative"
        proof.write_text(json.dumps(forged))
        refused = medledger("records", "check-proof", str(proof), "--key", str(keys["stranger"]),
                            "--node", insurer)  # fmt: skip
        assert refused.returncode == 3 and "commitment" in refused.stderr

        # Hospital B ends Dr B's role: Dr B can ask for nothing more.
        ok("staff", "remove", address["dr-b"], "--key", str(net / "keys" / "hospital-b.json"),
           "--node", b)  # fmt: skip
        late = medledger("access", "request", "--patient", address["patient"], "--category",
                         "labs", "--key", str(keys["dr-b"]), "--node", b)  # fmt: skip
        assert late.returncode == 3, late.stdout

        # Hospital B's staff, named, and Dr B shown as gone; Dr A listed at hospital A.
        listed = ok("staff", "list", "--key", str(keys["patient"]), "--node", a)
        assert "Dr Ada Park" in listed and address["dr-a"] in listed
        at_b = json.loads(ok("staff", "list", "--key", str(keys["patient"]), "--node", b,
                             "--json"))  # fmt: skip
        assert [(p["address"], p["active"]) for p in at_b] == [(address["dr-b"], False)]
        assert "removed" in ok("staff", "list", "--key", str(keys["patient"]), "--node", b)

        # A fourth institution made its keys elsewhere; two members vote it in.
        ok("institution", "init", "lab-d", "--name", "Lab D", "--dir", str(tmp_path / "lab-d"),
           "--scrypt-n", "1024")  # fmt: skip
        card = str(tmp_path / "lab-d" / "lab-d.card.json")
        keys_of = ("hospital-a", "hospital-b")
        operator = {n: ("--key", str(net / "keys" / f"{n}.json")) for n in keys_of}
        proposed = ok("members", "admit", card, *operator["hospital-a"], "--node", a)
        proposal = proposed.split()[1].rstrip(":")
        assert "admit Lab D" in proposed
        voted = ok("members", "vote", proposal, *operator["hospital-b"], "--node", b)
        assert "executed" in voted
        twice = medledger("members", "vote", proposal, *operator["hospital-a"], "--node", a)
        assert twice.returncode == 3
        members = json.loads(ok("members", "list", "--key", str(keys["patient"]), "--node", a,
                                "--json"))  # fmt: skip
        assert sorted(m["name"] for m in members) == ["Hospital A", "Hospital B", "Insurer",
                                                       "Lab D"]  # fmt: skip

        # The operator's check: the node's store is what a replay of its log gives.
        checked = json.loads(ok("ledger", "check", "--config",
                                str(net / "nodes" / "hospital-a" / "node.toml"), "--json"))
        assert checked["ok"] and checked["entries"] > 20
    finally:
        ok("network", "down", "--dir", str(net))
