"""FHIR JSON from files and folders: Bundles expanded into their entries' resources, and
NDJSON (FHIR Bulk Data: one resource a line) read line by line.

Numbers are kept as written (``parse_json``): in FHIR a decimal's digits are its precision.
A folder is read whole, sorted: its ``*.json`` and ``*.ndjson`` files; any other file in
it is :class:`Skipped`, named so that the caller reports it rather than losing it unseen.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from medledger.crypto.json_numbers import parse_json
from medledger.records.errors import InvalidRecord
from medledger.records.fhir import resource_label
from medledger.records.fhir_codes import REQUIRED_CODES, check_code

__all__ = ["NDJSON", "READ", "Entry", "Loaded", "Skipped", "expand", "load_sources", "read_files"]

NDJSON = ".ndjson"
#: The file types a folder is read for.
READ = (".json", NDJSON)


class Entry(NamedTuple):
    """One resource as read: where it came from, its parsed JSON, and the ``fullUrl`` of
    the Bundle entry that held it, by which the other entries may refer to it."""

    source: str
    resource: object
    full_url: str | None = None


@dataclass(frozen=True)
class Loaded:
    """One JSON document, a file or a line of an NDJSON file, and the resources in it."""

    #: The file's name as sources name it; ``name:line`` for a line of an NDJSON file.
    origin: str
    entries: tuple[Entry, ...]
    #: Every Bundle in the document, outermost first, as (label, type).
    bundles: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Skipped:
    """A file in a folder that is not read: neither FHIR JSON nor NDJSON."""

    source: str

    @property
    def problem(self) -> str:
        return f"not read: only {' and '.join(READ)} files are"


def expand(obj: object, source: str) -> list[tuple[str, object]]:
    """Split a Bundle into its entries' resources (recursively); keep anything else."""
    bundles: list[tuple[str, str]] = []
    return [(e.source, e.resource) for e in _expand(obj, source, None, bundles)]


def _expand(
    obj: object, source: str, full_url: str | None, bundles: list[tuple[str, str]]
) -> list[Entry]:
    if not isinstance(obj, dict) or obj.get("resourceType") != "Bundle":
        return [Entry(source, obj, full_url)]
    label = resource_label("Bundle", obj)
    bundle_type = obj.get("type")
    if bundle_type is None:
        raise InvalidRecord(source, label, "type", "required")
    check_code(bundle_type, REQUIRED_CODES["Bundle", "type"], "type", source, label)
    bundles.append((label, bundle_type))
    entries = obj.get("entry", [])
    if not isinstance(entries, list):
        raise InvalidRecord(source, label, "entry", "is not a JSON array")
    resources: list[Entry] = []
    for i, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if resource is None:
            raise InvalidRecord(source, label, f"entry[{i}].resource", "required")
        url = entry.get("fullUrl")
        resources += _expand(resource, f"{source}#entry[{i}]",
                             url if isinstance(url, str) else None, bundles)  # fmt: skip
    return resources


def read_files(paths: Sequence[Path]) -> Iterator[Loaded | InvalidRecord | Skipped]:
    """Read files and folders (every ``*.json`` and ``*.ndjson`` inside, sorted).

    A file argument is named by its file name, a folder's file by its path relative to
    the folder; a file argument is read as NDJSON if its name ends so, as JSON otherwise.
    A bad file or line yields an :class:`InvalidRecord` so a batch keeps going.
    """
    for path in paths:
        if path.is_dir():
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                name = file.relative_to(path).as_posix()
                if file.suffix.lower() in READ:
                    yield from _read_file(file, name)
                else:
                    yield Skipped(name)
        else:
            yield from _read_file(path, path.name)


def load_sources(paths: Sequence[Path]) -> Iterator[tuple[str, object] | InvalidRecord]:
    """Every resource of :func:`read_files` as ``(source, resource)``, and every refusal.
    Files it skips are not its caller's concern: a caller that reports them reads
    :func:`read_files`."""
    for item in read_files(paths):
        if isinstance(item, Loaded):
            yield from ((entry.source, entry.resource) for entry in item.entries)
        elif isinstance(item, InvalidRecord):
            yield item


def _read_file(path: Path, name: str) -> Iterator[Loaded | InvalidRecord]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        problem = f"not readable ({exc.strerror or type(exc).__name__})"
        yield InvalidRecord(name, "file", "", problem)
        return
    if path.suffix.lower() == NDJSON:
        yield from _read_lines(data, name)
    else:
        yield _document(data, name, "file")


def _read_lines(data: bytes, name: str) -> Iterator[Loaded | InvalidRecord]:
    for number, line in enumerate(data.split(b"\n"), start=1):
        if line.strip():  # blank lines, a last newline included, hold no resource
            yield _document(line, f"{name}:{number}", "line")


def _document(data: bytes, origin: str, what: str) -> Loaded | InvalidRecord:
    try:
        parsed = parse_json(data)
    except json.JSONDecodeError as exc:
        # A line of NDJSON is one line: its column says where.
        where = f"line {exc.lineno}, " if what == "file" else ""
        where += f"column {exc.colno}"
        return InvalidRecord(origin, what, "", f"not valid JSON ({where})")
    except (ValueError, RecursionError):  # bad encoding, NaN/Infinity, absurd nesting
        return InvalidRecord(origin, what, "", "not valid JSON")
    bundles: list[tuple[str, str]] = []
    try:
        entries = _expand(parsed, origin, None, bundles)
    except InvalidRecord as exc:
        return exc
    return Loaded(origin, tuple(entries), tuple(bundles))
