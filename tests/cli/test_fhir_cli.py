"""``medledger fhir client add`` and ``list`` from the shell: a system registered at a node
with its public keys and the participant it reads as; and what is refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from jwcrypto import jwk

from medledger.node.fhir.clients import ClientRegistry
from medledger.node.fhir.groups import GroupRegistry
from medledger.node.identities import PASSPHRASE_ENV, write_keystore
from tests.cli.test_chart_cli import PASSPHRASE, medledger
from tests.ledger.consortium import key

SYSTEM = key("cli:ehr-system")


def _node_config(tmp_path: Path) -> Path:
    config = tmp_path / "node.toml"
    settings = {"name": "hospital-a", "data_dir": str(tmp_path / "data"),
                "genesis": str(tmp_path / "genesis.tx"), "member_key": str(tmp_path / "m.json"),
                "custodian_key": str(tmp_path / "c.json")}  # fmt: skip
    config.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in settings.items()))
    return config


def test_a_system_is_registered_and_listed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSPHRASE_ENV, PASSPHRASE)
    config = _node_config(tmp_path)
    keystore = str(tmp_path / "system.json")
    public = tmp_path / "jwks.json"
    client_key = jwk.JWK.generate(kty="EC", crv="P-384", kid="k1")
    public.write_text(json.dumps({"keys": [client_key.export_public(as_dict=True)]}))
    write_keystore(tmp_path / "system.json", SYSTEM, scrypt_n=1024)
    added = medledger("fhir", "client", "add", "ehr", "--jwks", str(public),
                      "--principal-key", keystore, "--config", str(config))  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert SYSTEM.address in added.stdout
    listed = medledger("fhir", "client", "list", "--config", str(config))
    assert listed.stdout.split() == ["ehr"]
    client = ClientRegistry(tmp_path / "data").get("ehr")
    assert client is not None and client.principal == SYSTEM.address

    private = tmp_path / "private.json"
    private.write_text(json.dumps({"keys": [json.loads(client_key.export_private())]}))
    refused = medledger("fhir", "client", "add", "leaky", "--jwks", str(private),
                        "--principal-key", keystore, "--config", str(config))  # fmt: skip
    assert refused.returncode != 0 and "public keys only" in refused.stderr
    unreadable = medledger("fhir", "client", "add", "x", "--jwks", str(tmp_path / "none.json"),
                           "--principal-key", keystore, "--config", str(config))  # fmt: skip
    assert unreadable.returncode != 0 and "--jwks" in unreadable.stderr
    assert medledger("fhir", "client", "list", "--config", str(config)).stdout.split() == ["ehr"]

    # One id names one client: an app may not take the system's, nor the system an app's.
    uri = ["--redirect-uri", "https://viewer.example/cb"]
    taken = medledger("fhir", "app", "add", "ehr", *uri, "--config", str(config))
    assert taken.returncode != 0 and "already registered here as a Backend" in taken.stderr
    assert medledger("fhir", "app", "add", "viewer", *uri, "--config", str(config)).returncode == 0
    taken = medledger("fhir", "client", "add", "viewer", "--jwks", str(public),
                      "--principal-key", keystore, "--config", str(config))  # fmt: skip
    assert taken.returncode != 0 and "already registered here as an app" in taken.stderr


def test_the_readme_registrations_run_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = text[text.index("### The FHIR API for an institution's systems") :]
    section = section[: section.index("\n### ", 1)]
    blocks = [block.split("```", 1)[0] for block in section.split("```text\n")[1:]]
    command = "set -e\n" + "\n".join(blocks)
    monkeypatch.setenv(PASSPHRASE_ENV, PASSPHRASE)
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parent.parent)
    _node_config(tmp_path).rename(tmp_path / "node.toml")
    client_key = jwk.JWK.generate(kty="EC", crv="P-384", kid="k1")
    (tmp_path / "ehr-public-jwks.json").write_text(
        json.dumps({"keys": [client_key.export_public(as_dict=True)]})
    )
    write_keystore(tmp_path / "keys" / "ehr-service-account.json", SYSTEM, scrypt_n=1024)
    done = subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert ClientRegistry(tmp_path / "data").client_ids() == ["ehr"]
    groups = GroupRegistry(tmp_path / "data").get("diabetes-clinic")
    assert groups is not None and len(groups.members) == 2
    assert "chart-viewer\tChart Viewer\thttps://chart-viewer.example/callback" in done.stdout
