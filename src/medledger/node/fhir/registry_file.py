"""One JSON object in a file of the node's data directory, replaced whole: the FHIR
registries (Backend Services clients, public apps, Groups) are each one such file."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any


class RegistryFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.path.read_text()))
        except FileNotFoundError:
            return {}

    def save(self, entries: Mapping[str, Any]) -> None:
        """Written to a temporary file, synced and renamed: a crash leaves the old
        registry or the new one, never half of one."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".partial")
        with partial.open("w") as file:
            json.dump(entries, file, indent=2, sort_keys=True)
            file.flush()
            os.fsync(file.fileno())
        partial.replace(self.path)
