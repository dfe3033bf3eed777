"""The Groups a node keeps: named lists of patients (pseudonyms) for bulk export.

An institution names a cohort (a clinic's list, a study's) with ``medledger fhir group
add``; a system exports it with ``Group/{id}/$export``. A Group is the institution's own
list, kept off the ledger in a file of the node's data directory and read at every
request, so a change needs no restart. It gives no access: an export or a read of the
Group covers only the members whose charts the token may read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medledger.crypto.keys import Address, to_checksum_address
from medledger.errors import UsageError
from medledger.node.fhir.registry_file import RegistryFile

__all__ = ["Group", "GroupRegistry"]

REGISTRY_FILE = "fhir-groups.json"
#: A FHIR id that is not a record id (32 hex digits), so ``Group/{id}`` names one or the other.
_NAME = re.compile(r"(?![0-9a-f]{32}$)[A-Za-z0-9\-.]{1,64}")
_PSEUDONYM = re.compile(r"0x[0-9a-fA-F]{40}")


@dataclass(frozen=True)
class Group:
    name: str
    members: tuple[Address, ...]

    @classmethod
    def of(cls, name: str, members: Iterable[str]) -> Group:
        """A Group from a name and pseudonyms as given; the same patient counts once."""
        if not _NAME.fullmatch(name):
            raise UsageError("group name: 1 to 64 letters, digits, - and ., not a record id")
        listed = list(members)
        if not listed:
            raise UsageError("a group has at least one member (--patient 0x...)")
        bad = next((m for m in listed if not _PSEUDONYM.fullmatch(m)), None)
        if bad is not None:
            raise UsageError(f"not a patient pseudonym (0x and 40 hex digits): {bad[:64]}")
        return cls(name, tuple(dict.fromkeys(to_checksum_address(m) for m in listed)))

    def resource(self, readable: Iterable[Address]) -> dict[str, Any]:
        """The Group as FHIR R4, naming only the members in ``readable``."""
        shown = [m for m in self.members if m in frozenset(readable)]
        group: dict[str, Any] = {
            "resourceType": "Group", "id": self.name, "type": "person", "actual": True,
            "name": self.name, "quantity": len(shown),
        }  # fmt: skip
        if shown:
            group["member"] = [{"entity": {"reference": f"Patient/{m}"}} for m in shown]
        return group


class GroupRegistry:
    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / REGISTRY_FILE

    def _load(self) -> dict[str, Any]:
        return RegistryFile(self.path).load()

    def get(self, name: str) -> Group | None:
        members = self._load().get(name)
        return None if members is None else Group.of(name, members)

    def add(self, group: Group) -> None:
        """Keep or replace a group; written to a temporary file and renamed, so a crash
        leaves the old registry or the new one."""
        groups = self._load()
        groups[group.name] = list(group.members)
        RegistryFile(self.path).save(groups)

    def groups(self) -> list[Group]:
        return [Group.of(name, members) for name, members in sorted(self._load().items())]
