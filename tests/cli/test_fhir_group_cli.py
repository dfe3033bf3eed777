"""``medledger fhir group add`` and ``list`` from the shell: a node keeps a named list of
patients for bulk export; and what is refused."""

from __future__ import annotations

from pathlib import Path

from medledger.node.fhir.groups import GroupRegistry
from tests.cli.test_chart_cli import medledger
from tests.cli.test_fhir_cli import _node_config
from tests.ledger.consortium import key

ALICE, BOB = key("cli:group-alice"), key("cli:group-bob")


def test_a_group_is_kept_listed_and_refused_when_malformed(tmp_path: Path) -> None:
    config = str(_node_config(tmp_path))
    added = medledger("fhir", "group", "add", "diabetes-clinic", "--patient", ALICE.address,
                      "--patient", BOB.address.lower(), "--config", config)  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert "2 patients" in added.stdout
    listed = medledger("fhir", "group", "list", "--config", config)
    assert listed.stdout.split() == ["diabetes-clinic", ALICE.address, BOB.address]
    group = GroupRegistry(tmp_path / "data").get("diabetes-clinic")
    assert group is not None and group.members == (ALICE.address, BOB.address)

    refused = medledger("fhir", "group", "add", "bad", "--patient", "0x1234", "--config", config)
    assert refused.returncode != 0 and "pseudonym" in refused.stderr
    unnamed = medledger("fhir", "group", "add", "a b", "--patient", ALICE.address,
                        "--config", config)  # fmt: skip
    assert unnamed.returncode != 0 and "group name" in unnamed.stderr
    listed = medledger("fhir", "group", "list", "--config", config)
    assert listed.stdout.split()[0] == "diabetes-clinic" and len(listed.stdout.splitlines()) == 1
