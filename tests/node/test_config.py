"""The node's settings for where it is addressed and how fast it may be called."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from medledger.errors import UsageError
from medledger.node.config import NodeSettings, load_settings

REQUIRED = {"name": "solo", "data_dir": Path("data"), "genesis": Path("genesis.tx"),
            "member_key": Path("member.json"), "custodian_key": Path("custodian.json")}  # fmt: skip


def settings(**changes: Any) -> NodeSettings:
    return NodeSettings(**{**REQUIRED, **changes})


@pytest.mark.parametrize(
    ("changes", "authority"),
    [
        ({}, "127.0.0.1:8700"),
        ({"host": "Node-A.Example", "port": 8443}, "node-a.example:8443"),
        ({"host": "10.0.0.5", "port": 80}, "10.0.0.5"),
        ({"host": "::1", "port": 8701}, "[::1]:8701"),
        ({"public_authority": "Medledger.Example.ORG"}, "medledger.example.org"),
        ({"public_authority": "medledger.example.org:443"}, "medledger.example.org"),
        ({"public_authority": "medledger.example.org:80"}, "medledger.example.org"),
        ({"public_authority": "medledger.example.org:8443"}, "medledger.example.org:8443"),
        ({"host": "0.0.0.0", "public_authority": "[2001:DB8::1]:9000"}, "[2001:db8::1]:9000"),
    ],
)
def test_the_authority_requests_must_be_signed_for(changes: dict[str, Any], authority: str) -> None:
    """As a signer's library writes @authority: lower case, without the default port."""
    assert settings(**changes).authority == authority


@pytest.mark.parametrize(
    "value",
    ["https://medledger.example.org", "medledger.example.org/v1", "user@medledger.example.org",
     "medledger.example.org:99999", "medledger example", ""],
)  # fmt: skip
def test_a_public_authority_is_a_host_and_port_only(value: str) -> None:
    with pytest.raises(ValidationError, match=r"public_authority\n.*host\[:port\]"):
        settings(public_authority=value)


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_a_node_on_every_interface_must_be_told_its_public_authority(
    host: str, tmp_path: Path
) -> None:
    config = tmp_path / "node.toml"
    config.write_text("".join(f'{k} = "{v}"\n' for k, v in {**REQUIRED, "host": host}.items()))
    with pytest.raises(UsageError, match="set public_authority"):
        load_settings(config)


def test_the_public_authority_and_limits_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "node.toml"
    config.write_text("".join(f'{k} = "{v}"\n' for k, v in REQUIRED.items()))
    monkeypatch.setenv("MEDLEDGER_NODE_PUBLIC_AUTHORITY", "node.example.org")
    monkeypatch.setenv("MEDLEDGER_NODE_RATE_LIMIT_PER_S", "2.5")
    loaded = load_settings(config)
    assert loaded.authority == "node.example.org" and loaded.rate_limit_per_s == 2.5


def test_a_clinic_gets_rate_limits_without_configuring_any() -> None:
    defaults = settings()
    assert defaults.rate_limit_per_s == 10 and defaults.rate_limit_burst == 120
    assert defaults.auth_failures_per_s == 5 and defaults.auth_failure_burst == 100
    for wrong in ({"rate_limit_per_s": 0}, {"rate_limit_burst": 0},
                  {"auth_failures_per_s": -1}, {"auth_failure_burst": 0}):  # fmt: skip
        with pytest.raises(ValidationError):
            settings(**wrong)
