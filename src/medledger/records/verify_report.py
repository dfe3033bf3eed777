"""What verifying a vault found: how much it checked, and each problem by subject."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Problem:
    subject: str
    check: str
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"subject": self.subject, "check": self.check, "detail": self.detail}


@dataclass
class VerifyReport:
    vault: str
    records: int = 0
    batches: int = 0
    checkpoint_size: int | None = None
    checkpoint_quorum: str | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        # Nothing verified is not a pass: an empty vault has nothing to vouch for.
        return not self.problems and self.batches > 0

    def flag(self, subject: str, check: str, detail: str) -> None:
        self.problems.append(Problem(subject, check, detail))

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "vault": self.vault,
            "records": self.records,
            "batches": self.batches,
            "checkpoint": {"size": self.checkpoint_size, "quorum": self.checkpoint_quorum},
            "problems": [p.to_json() for p in self.problems],
        }
