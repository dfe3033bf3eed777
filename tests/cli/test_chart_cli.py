"""``records import``, ``records push`` and ``patient find`` from the shell: one patient's
chart from a folder of several people's records, in a sandbox home and at a real node."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from medledger.node.identities import write_keystore
from tests.data import FHIR_EXAMPLES as EXAMPLES
from tests.ledger.consortium import key
from tests.node.network import Network, running_network
from tests.records.test_chart import EXAMPLE_CHART, EXAMPLE_OTHERS, EXAMPLE_SHARED

PASSPHRASE = "chart cli passphrase"
EXAMPLE_MRN = "urn:oid:1.2.36.146.595.217.0.1|12345"


def medledger(*args: str, home: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDLEDGER_")}
    env["MEDLEDGER_PASSPHRASE"] = PASSPHRASE
    if home is not None:
        env["MEDLEDGER_HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "medledger", *args], env=env,
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip


def test_a_folder_of_many_people_into_one_sandbox_chart(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert medledger("init", "--scrypt-n", "1024", home=home).returncode == 0
    added = medledger("patient", "add", "alice", "--scrypt-n", "1024", home=home)
    address = added.stdout.split(" as ")[1].strip().rstrip(".")

    # Ten Patients and no word on which is alice's: refused before anything is written.
    ambiguous = medledger("records", "import", "--patient", "alice", str(EXAMPLES), home=home)
    assert ambiguous.returncode == 2, ambiguous.stderr
    assert "the files name 10 patients" in ambiguous.stderr
    assert "--source-patient" in ambiguous.stderr and "Traceback" not in ambiguous.stderr
    listed = medledger("records", "list", "--patient", "alice", "--json", home=home)
    assert json.loads(listed.stdout) == []

    imported = medledger("records", "import", "--patient", "alice", str(EXAMPLES),
                         "--source-patient", "example", "--json", home=home)  # fmt: skip
    assert imported.returncode == 3, imported.stderr
    report = json.loads(imported.stdout)
    written = [w["source"] for w in report["written"]]
    assert written == [s for s in EXAMPLE_CHART if s != "diagnosticReport-example2.json"]
    assert [(r["source"], r["field"]) for r in report["rejected"]] == [
        *EXAMPLE_OTHERS, ("diagnosticReport-example2.json", "contained[25].resourceType")
    ]  # fmt: skip
    assert {s["source"]: s["resource"] for s in report["shared"]} == EXAMPLE_SHARED
    assert report["skipped"] == [
        {"source": "README.md", "problem": "not read: only .json and .ndjson files are"}
    ]
    assert report["indexed"] == 1
    assert f"34 resources rejected ({len(written)} written)" in imported.stderr

    # The same as text: the set-aside named and counted.
    shared = [str(EXAMPLES / f"{n}-example1.json") for n in ("location", "practitioner")]
    again = medledger("records", "import", "--patient", "alice", *shared, home=home)
    assert again.returncode == 0, again.stderr
    assert (
        "2 institution-level resources not sealed into the chart (Location 1, Practitioner 1)"
        in again.stdout
    )
    assert "shared practitioner-example1.json: Practitioner/example" in again.stdout

    found = medledger("patient", "find", "--identifier", EXAMPLE_MRN, "--json", home=home)
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout) == [{"patient": address, "enrolled": True}]
    unknown = medledger("patient", "find", "--identifier", "urn:x|SECRET-1", home=home)
    assert unknown.returncode == 3 and "identifier 1: no patient here" in unknown.stdout
    assert "SECRET-1" not in unknown.stdout + unknown.stderr
    malformed = medledger("patient", "find", "--identifier", "SECRET-2", home=home)
    assert malformed.returncode == 2 and "SECRET-2" not in malformed.stderr


def test_ndjson_into_a_sandbox_chart(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert medledger("init", "--scrypt-n", "1024", home=home).returncode == 0
    assert medledger("patient", "add", "bob", "--scrypt-n", "1024", home=home).returncode == 0
    lines = [_observation("Patient/b1", "o1"), _observation("Patient/b1", "o2")]
    export = tmp_path / "Observation.ndjson"
    export.write_text("\n".join(json.dumps(line) for line in lines) + "\n{\n")
    imported = medledger("records", "import", "--patient", "bob", str(export), "--json", home=home)
    assert imported.returncode == 3, imported.stderr
    report = json.loads(imported.stdout)
    assert [w["source"] for w in report["written"]] == [
        "Observation.ndjson:1",
        "Observation.ndjson:2",
    ]
    assert [(r["source"], r["resource"]) for r in report["rejected"]] == [
        ("Observation.ndjson:3", "line")
    ]


def _observation(subject: str, fhir_id: str) -> dict[str, Any]:
    return {"resourceType": "Observation", "id": fhir_id, "status": "final",
            "code": {"text": "glucose"}, "subject": {"reference": subject}}  # fmt: skip


DR_A, DR_B, PATIENT = key("chart-cli:dr-a"), key("chart-cli:dr-b"), key("chart-cli:patient")


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    async def set_up(network: Network) -> None:
        await network.register_staff("hospital-a", DR_A, "doctor")
        await network.register_staff("hospital-b", DR_B, "doctor")
        await network.register_patient(PATIENT)

    with running_network(tmp_path_factory.mktemp("nodes"), ["hospital-a", "hospital-b"]) as network:
        asyncio.run(set_up(network))
        yield network


def test_push_a_chart_and_find_its_patient_at_a_node(
    net: Network, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDLEDGER_PASSPHRASE", PASSPHRASE)
    keys = {name: tmp_path / f"{name}.json" for name in ("dr-a", "dr-b")}
    write_keystore(keys["dr-a"], DR_A, scrypt_n=1024)
    write_keystore(keys["dr-b"], DR_B, scrypt_n=1024)
    a, b = net.nodes["hospital-a"].url, net.nodes["hospital-b"].url
    folder = tmp_path / "export"
    folder.mkdir()
    for name in (
        "patient-example1.json",
        "patient-example2.json",
        "observation-example1.json",
        "observation-example2.json",
        "organization-example1.json",
    ):
        (folder / name).write_text((EXAMPLES / name).read_text())
    (folder / "notes.txt").write_text("from the old system")
    at_a = ("--key", str(keys["dr-a"]), "--node", a)

    pushed = medledger("records", "push", str(folder), "--patient", PATIENT.address,
                       "--source-patient", "example", *at_a, "--json")  # fmt: skip
    assert pushed.returncode == 3, pushed.stderr
    report = json.loads(pushed.stdout)
    assert len(report["written"]) == 2 and report["indexed"] == 1
    assert report["rejected"] == [
        "observation-example2.json: Observation/f001.subject.reference: names another patient "
        "than this chart's",
        "patient-example2.json: Patient/f001: is another patient than this chart's",
    ]
    assert report["shared"] == [
        {"source": "organization-example1.json", "resource": "Organization/hl7"}
    ]
    assert [s["source"] for s in report["skipped"]] == ["notes.txt"]

    found = medledger("patient", "find", "--identifier", EXAMPLE_MRN, *at_a, "--json")
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout) == [{"patient": PATIENT.address, "enrolled": True}]
    # Staff of another institution may not ask hospital A, and hospital B knows nothing.
    refused = medledger("patient", "find", "--identifier", EXAMPLE_MRN,
                        "--key", str(keys["dr-b"]), "--node", a)  # fmt: skip
    assert refused.returncode == 3 and "403" in refused.stderr and "not staff" in refused.stderr
    elsewhere = medledger("patient", "find", "--identifier", EXAMPLE_MRN,
                          "--key", str(keys["dr-b"]), "--node", b, "--json")  # fmt: skip
    assert elsewhere.returncode == 3 and json.loads(elsewhere.stdout) == [None]
