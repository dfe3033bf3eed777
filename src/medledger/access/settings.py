"""What a network's genesis decides for its access contracts.

Genesis carries them as named settings (ledger/genesis.py): the roles whose members
may write records, and the limits that keep one requester from flooding a patient or
breaking the glass at will. Anything genesis leaves out takes the default here; a
setting of the wrong shape is refused where it is read, the same way on every node.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from medledger.errors import UsageError
from medledger.ledger.contracts.base import StateView
from medledger.ledger.contracts.membership import network_config

DAY_S = 24 * 3600


@dataclass(frozen=True)
class AccessSettings:
    #: Clinical roles that write to a chart; a verifier or an administrator does not.
    author_roles: tuple[str, ...] = ("doctor", "nurse", "lab")
    #: Requests waiting for one patient's approval, so that nobody can bury their
    #: approvals: in all, and from any one requester. Break-glass requests, which the
    #: patient does not approve, are bounded by their own daily limit instead.
    max_open_requests: int = 32
    max_open_per_requester: int = 8
    #: How long a request waits for its approvals before it lapses.
    request_ttl_s: int = 7 * DAY_S
    #: Break-glass requests one clinician may make in any 24 hours.
    break_glass_per_day: int = 3
    #: Who reviews break-glass grants, and how soon.
    reviewer_role: str = "officer"
    review_within_s: int = 3 * DAY_S

    def __post_init__(self) -> None:
        if not self.author_roles or not all(isinstance(r, str) for r in self.author_roles):
            raise UsageError("settings.author_roles: expected a non-empty list of roles")
        for name in ("max_open_requests", "max_open_per_requester", "request_ttl_s",
                     "break_glass_per_day", "review_within_s"):  # fmt: skip
            value = getattr(self, name)
            if type(value) is not int or not 1 <= value <= 10 * 366 * DAY_S:
                raise UsageError(f"settings.{name}: expected a positive integer, got {value!r}")
        if not isinstance(self.reviewer_role, str) or not self.reviewer_role:
            raise UsageError("settings.reviewer_role: expected a role")

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> AccessSettings:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in settings.items() if k in known}
        if isinstance(values.get("author_roles"), list):
            values["author_roles"] = tuple(values["author_roles"])
        try:
            return cls(**values)
        except TypeError as exc:
            raise UsageError(f"settings: {exc}") from None

    def to_settings(self) -> dict[str, Any]:
        values = asdict(self)
        values["author_roles"] = list(self.author_roles)
        return values


def access_settings(view: StateView) -> AccessSettings:
    return AccessSettings.from_settings(network_config(view).get("settings", {}))
