"""A node's configuration: a TOML file, overridden by ``MEDLEDGER_NODE_*`` variables.

Every limit the node's API enforces lives here (request body size, clock skew,
signature lifetime, request rates), never as a literal in a route.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from medledger.errors import UsageError
from medledger.node.errors import MalformedRequest
from medledger.node.signature_base import HttpRequest
from medledger.node.signatures import SignatureLimits

ENV_PREFIX = "MEDLEDGER_NODE_"
CONFIG_ENV = "MEDLEDGER_NODE_CONFIG"
MiB = 1 << 20
# Addresses that mean "every interface": a node listening on one cannot derive from it
# the name its clients address it by.
_WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})  # noqa: S104 (compared with, never bound)


class NodeSettings(BaseSettings):
    """One institution's node."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,31}$", description="the institution's short name")
    data_dir: Path = Field(description="ledger state, vault and seen request nonces")
    genesis: Path = Field(description="the network's genesis transaction, shared out of band")
    member_key: Path = Field(description="keystore of the institution's ledger key")
    custodian_key: Path = Field(description="keystore the custodian's X25519 key derives from")
    host: str = "127.0.0.1"
    port: int = Field(default=8700, ge=1, le=65535)
    public_authority: str | None = Field(
        default=None,
        description="host[:port] clients address this node by, which every request must be "
        "signed for; default: host:port. Behind a reverse proxy, the proxy's public name",
    )
    orderer: Literal["embedded", "nats"] = "embedded"
    ordering_path: Path | None = Field(
        default=None, description="the embedded sequencer's file, shared by the nodes of a machine"
    )
    nats_urls: list[str] = Field(default_factory=list)
    nats_monitor_urls: list[str] = Field(
        default_factory=list,
        description="every NATS server's HTTP monitoring URL; the node checks each syncs always",
    )
    state_url: str | None = Field(default=None, description="default: SQLite in data_dir")
    vault_url: str | None = Field(default=None, description="default: SQLite in data_dir")
    public_scheme: Literal["http", "https"] = Field(
        default="http",
        description="the scheme clients reach the node by (https behind a TLS proxy): the "
        "FHIR base URL and the token endpoint SMART clients sign for are built from it",
    )
    peers: list[str] = Field(
        default_factory=list,
        description="base URLs of the other members' nodes, whose vaults and custodians a "
        "FHIR query reaches on a reader's behalf",
    )
    issuer_url: str | None = Field(
        default=None, description="the https URL health cards name as issuer (iss)"
    )
    max_body_bytes: int = Field(default=16 * MiB, ge=1024)
    clock_skew_s: int = Field(default=30, ge=0, le=600)
    max_signature_lifetime_s: int = Field(default=300, ge=1, le=3600)
    rate_limit_per_s: float = Field(
        default=10.0, gt=0, description="verified requests one signing key may make per second"
    )
    rate_limit_burst: int = Field(
        default=120, ge=1, description="verified requests one signing key may make at once"
    )
    auth_failures_per_s: float = Field(
        default=5.0, gt=0, description="failed authentications a client address may have per second"
    )
    auth_failure_burst: int = Field(
        default=100, ge=1, description="failed authentications one client address may have at once"
    )
    state_committer: Literal["process", "thread"] = Field(
        default="process", description="where the state tree is hashed: a process of its own "
        "uses another core; a thread suits a small node"
    )
    checkpoint_interval_s: float = Field(
        default=10.0, gt=0, le=3600,
        description="a head is proposed at most this long after the last checkpoint",
    )
    max_records_per_write: int = Field(
        default=512, ge=1, le=4096,
        description="records one upload may carry; clients read it from the node",
    )
    export_file_bytes: int = Field(
        default=64 * MiB, ge=1024,
        description="a bulk export's NDJSON file is split once it passes this many bytes",
    )
    export_ttl_s: int = Field(
        default=3600, ge=1, description="a finished bulk export's files are deleted this long after"
    )
    export_jobs_per_principal: int = Field(
        default=2, ge=1, description="bulk exports one participant may have running at once"
    )
    checkpoint_every_entries: int = Field(
        default=1000, ge=1, description="...or as soon as this many entries wait for one"
    )
    check_store_on_start: bool = Field(
        default=True, description="replay the log and compare before serving (ledger check)"
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("public_authority")
    @classmethod
    def _normal_authority(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if any(char in value for char in "/?#@"):
            raise ValueError("must be host[:port], without scheme, user or path")
        # Clients leave a default port out of what they sign, for https as for http.
        return _authority(value).removesuffix(":443")

    @model_validator(mode="after")
    def _addressable(self) -> NodeSettings:
        if self.public_authority is None and self.host in _WILDCARD_HOSTS:
            raise ValueError(
                f"host {self.host!r} listens on every address: set public_authority to the "
                "host[:port] clients use"
            )
        return self

    @property
    def authority(self) -> str:
        """The host[:port] every signed request must be addressed to, as signatures carry it."""
        if self.public_authority is not None:
            return self.public_authority
        host = f"[{self.host}]" if ":" in self.host else self.host
        return _authority(f"{host}:{self.port}")

    @property
    def base_url(self) -> str:
        """The URL clients know the node by, without a trailing slash."""
        return f"{self.public_scheme}://{self.authority}"

    @property
    def signature_limits(self) -> SignatureLimits:
        return SignatureLimits(self.clock_skew_s, self.max_signature_lifetime_s)

    @property
    def ordering_file(self) -> Path:
        return self.ordering_path or self.data_dir / "ordering.db"

    @property
    def state_database(self) -> str:
        return self.state_url or str(self.data_dir / "ledger.db")

    @property
    def vault_database(self) -> str:
        return self.vault_url or str(self.data_dir / "vault.db")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls)


def _authority(value: str) -> str:
    """``value`` (host[:port]) as a verifier derives ``@authority`` from a request to it."""
    try:
        return HttpRequest.parse("GET", f"http://{value}/", ()).authority
    except MalformedRequest as exc:
        raise ValueError(f"not a host[:port]: {exc}") from None


def load_settings(path: Path | None = None) -> NodeSettings:
    """Settings from ``path`` (a TOML file), with the environment taking precedence."""

    class FromFile(NodeSettings):
        model_config = SettingsConfigDict(toml_file=path)

    if path is not None and not path.is_file():
        raise UsageError(f"no node configuration file at {path}")
    try:
        return FromFile()  # type: ignore[call-arg]  # the fields come from file and environment
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'file'}: {error['msg']}"
            for error in exc.errors()
        )
        raise UsageError(f"node configuration: {problems}") from None
