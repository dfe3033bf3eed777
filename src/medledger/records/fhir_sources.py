"""FHIR JSON from files and folders, Bundles expanded into their entries' resources.

Numbers are kept as written (``parse_json``): in FHIR a decimal's digits are its precision.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

from medledger.crypto.json_numbers import parse_json
from medledger.records.errors import InvalidRecord
from medledger.records.fhir import resource_label
from medledger.records.fhir_codes import REQUIRED_CODES, check_code

__all__ = ["expand", "load_sources"]


def expand(obj: object, source: str) -> list[tuple[str, object]]:
    """Split a Bundle into its entries' resources (recursively); keep anything else."""
    if not isinstance(obj, dict) or obj.get("resourceType") != "Bundle":
        return [(source, obj)]
    label = resource_label("Bundle", obj)
    bundle_type = obj.get("type")
    if bundle_type is None:
        raise InvalidRecord(source, label, "type", "required")
    check_code(bundle_type, REQUIRED_CODES["Bundle", "type"], "type", source, label)
    entries = obj.get("entry", [])
    if not isinstance(entries, list):
        raise InvalidRecord(source, label, "entry", "is not a JSON array")
    resources: list[tuple[str, object]] = []
    for i, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if resource is None:
            raise InvalidRecord(source, label, f"entry[{i}].resource", "required")
        resources += expand(resource, f"{source}#entry[{i}]")
    return resources


def load_sources(paths: Sequence[Path]) -> Iterator[tuple[str, object] | InvalidRecord]:
    """Read JSON files and folders (every ``*.json`` inside, sorted) into resources.

    A file argument is named by its file name, a folder's file by its path relative
    to the folder. A bad file yields an :class:`InvalidRecord` so a batch keeps going.
    """
    for path in paths:
        if path.is_dir():
            for file in sorted(p for p in path.rglob("*.json") if p.is_file()):
                yield from _load_file(file, file.relative_to(path).as_posix())
        else:
            yield from _load_file(path, path.name)


def _load_file(path: Path, source: str) -> Iterator[tuple[str, object] | InvalidRecord]:
    try:
        yield from expand(_read_json(path, source), source)
    except InvalidRecord as exc:
        yield exc


def _read_json(path: Path, source: str) -> object:
    try:
        return parse_json(path.read_bytes())
    except OSError as exc:
        problem = f"not readable ({exc.strerror or type(exc).__name__})"
    except json.JSONDecodeError as exc:
        problem = f"not valid JSON (line {exc.lineno}, column {exc.colno})"
    except (ValueError, RecursionError):  # bad encoding, NaN/Infinity, absurd nesting
        problem = "not valid JSON"
    raise InvalidRecord(source, "file", "", problem)
