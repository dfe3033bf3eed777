"""The NDJSON files of one bulk export: one series per resource type, split by size.

Each line is one resource as ``json_text`` writes it (decimals with the digits they were
written with). A file is written under a ``.partial`` name, flushed to disk and renamed
once complete, so a file the manifest names is whole; a series moves on to its next
file once the current one passes the byte bound (a resource is never split).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from medledger.crypto.json_numbers import json_text
from medledger.errors import UsageError

__all__ = ["ExportFile", "NdjsonFiles"]

_PARTIAL = ".partial"


@dataclass(frozen=True)
class ExportFile:
    """A complete file: its name in the job's directory, the resource type of its lines
    and how many there are."""

    name: str
    type: str
    count: int


@dataclass
class _Open:
    name: str
    type: str
    file: IO[bytes]
    count: int = 0
    size: int = 0


class NdjsonFiles:
    def __init__(self, directory: Path, max_bytes: int) -> None:
        if max_bytes < 1:
            raise UsageError("an export file's byte bound must be positive")
        self._directory = directory
        self._max_bytes = max_bytes
        self._open: dict[str, _Open] = {}
        self._parts: dict[str, int] = {}
        self.done: list[ExportFile] = []
        directory.mkdir(parents=True, exist_ok=True)

    def write(self, series: str, resources: Iterable[Mapping[str, Any]]) -> None:
        """Append resources to a series (``Observation``, ``errors``): a name of letters
        that the job's file names start with."""
        if not series.isascii() or not series.isalpha():
            raise UsageError("a series is named by letters only")
        for resource in resources:
            line = (json_text(resource) + "\n").encode()
            current = self._open.get(series)
            if current is None:
                current = self._start(series, str(resource["resourceType"]))
            current.file.write(line)
            current.count += 1
            current.size += len(line)
            if current.size >= self._max_bytes:
                self._finish(series)

    def close(self) -> list[ExportFile]:
        """Finish every open file; every complete file, in the order they were finished."""
        for series in list(self._open):
            self._finish(series)
        return list(self.done)

    def discard(self) -> None:
        """Close what is open without finishing it (the job's directory goes next)."""
        for current in self._open.values():
            current.file.close()
        self._open.clear()

    def _start(self, series: str, kind: str) -> _Open:
        part = self._parts[series] = self._parts.get(series, 0) + 1
        name = f"{series}-{part}.ndjson"
        file = (self._directory / (name + _PARTIAL)).open("wb")
        current = self._open[series] = _Open(name, kind, file)
        return current

    def _finish(self, series: str) -> None:
        current = self._open.pop(series)
        current.file.flush()
        os.fsync(current.file.fileno())
        current.file.close()
        final = self._directory / current.name
        (self._directory / (current.name + _PARTIAL)).replace(final)
        self.done.append(ExportFile(current.name, current.type, current.count))
