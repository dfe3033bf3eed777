"""Reading files for an import (records/fhir_sources.py): NDJSON line by line, with errors
naming file and line; folders read whole, with files of other types named, not dropped."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from medledger.crypto.json_numbers import JsonDecimal
from medledger.records.errors import InvalidRecord
from medledger.records.fhir_sources import Entry, Loaded, Skipped, load_sources, read_files


def observation(fhir_id: str, value: str = "7.20") -> str:
    """One line of NDJSON, its decimal written as given: its digits are its precision."""
    body = {"resourceType": "Observation", "id": fhir_id, "status": "final",
            "code": {"text": "x"}, "valueQuantity": {"value": 0}}  # fmt: skip
    return json.dumps(body).replace('"value": 0', f'"value": {value}')


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def origins(items: list[Any]) -> list[str]:
    return [i.origin if isinstance(i, Loaded) else i.source for i in items]


def test_ndjson_is_read_a_line_at_a_time_and_blank_lines_hold_nothing(tmp_path: Path) -> None:
    lines = [observation("a"), "", observation("b", "100.0"), "   ", observation("c")]
    path = write(tmp_path / "Observation.ndjson", "\r\n".join(lines) + "\n")
    items = list(read_files([path]))
    assert origins(items) == [
        "Observation.ndjson:1",
        "Observation.ndjson:3",
        "Observation.ndjson:5",
    ]
    first = items[0]
    assert isinstance(first, Loaded)
    (entry,) = first.entries
    assert entry == Entry("Observation.ndjson:1", entry.resource, None)
    value = entry.resource["valueQuantity"]["value"]  # type: ignore[index]
    assert isinstance(value, JsonDecimal) and value.text == "7.20"
    assert items[1].entries[0].resource["valueQuantity"]["value"].text == "100.0"  # type: ignore[union-attr]


def test_a_bad_line_is_refused_by_file_and_line_and_the_rest_is_read(tmp_path: Path) -> None:
    lines = [observation("a"), '{"resourceType": "Observation", ', observation("c"),
             '{"resourceType": "Observation", "value": NaN}']  # fmt: skip
    path = tmp_path / "labs.ndjson"
    # The last line is not UTF-8.
    path.write_bytes("\n".join(lines).encode() + b"\n\xc3\x28\n")
    items = list(read_files([path]))
    assert origins(items) == [f"labs.ndjson:{n}" for n in (1, 2, 3, 4, 5)]
    refused = [i for i in items if isinstance(i, InvalidRecord)]
    assert [(r.source, r.resource, r.problem) for r in refused] == [
        ("labs.ndjson:2", "line", "not valid JSON (column 33)"),
        ("labs.ndjson:4", "line", "not valid JSON"),
        ("labs.ndjson:5", "line", "not valid JSON"),
    ]
    assert str(refused[0]) == "labs.ndjson:2: line: not valid JSON (column 33)"


def test_a_bundle_on_a_line_is_expanded_with_its_full_urls(tmp_path: Path) -> None:
    bundle = {"resourceType": "Bundle", "id": "b1", "type": "collection", "entry": [
        {"fullUrl": "urn:uuid:1", "resource": json.loads(observation("a"))},
        {"resource": json.loads(observation("b"))},
    ]}  # fmt: skip
    path = write(tmp_path / "export.NDJSON", json.dumps(bundle) + "\n")
    (loaded,) = read_files([path])
    assert isinstance(loaded, Loaded)
    assert [(e.source, e.full_url) for e in loaded.entries] == [
        ("export.NDJSON:1#entry[0]", "urn:uuid:1"),
        ("export.NDJSON:1#entry[1]", None),
    ]
    assert loaded.bundles == (("Bundle/b1", "collection"),)


def test_a_malformed_bundle_on_a_line_refuses_that_line(tmp_path: Path) -> None:
    bad = {"resourceType": "Bundle", "type": "collection", "entry": [{"fullUrl": "x"}]}
    path = write(tmp_path / "x.ndjson", json.dumps(bad) + "\n" + observation("a") + "\n")
    refused, after = read_files([path])
    assert isinstance(refused, InvalidRecord) and isinstance(after, Loaded)
    assert (refused.source, refused.field) == ("x.ndjson:1", "entry[0].resource")


def test_an_unreadable_ndjson_file_is_one_refusal(tmp_path: Path) -> None:
    (item,) = read_files([tmp_path / "gone.ndjson"])
    assert isinstance(item, InvalidRecord)
    assert (item.source, item.resource, item.problem) == (
        "gone.ndjson",
        "file",
        "not readable (No such file or directory)",
    )


def test_a_folder_names_every_file_it_does_not_read(tmp_path: Path) -> None:
    write(tmp_path / "a.json", observation("a"))
    write(tmp_path / "sub" / "b.ndjson", observation("b") + "\n" + observation("c") + "\n")
    write(tmp_path / "sub" / "c.xml", "<Observation/>")
    write(tmp_path / "README.md", "# export")
    write(tmp_path / ".hidden", "")
    items = list(read_files([tmp_path]))
    assert origins(items) == [".hidden", "README.md", "a.json", "sub/b.ndjson:1",
                              "sub/b.ndjson:2", "sub/c.xml"]  # fmt: skip
    skipped = [i for i in items if isinstance(i, Skipped)]
    assert [s.source for s in skipped] == [".hidden", "README.md", "sub/c.xml"]
    assert skipped[0].problem == "not read: only .json and .ndjson files are"
    # load_sources, for callers that write whatever resources they are given, yields the
    # resources and refusals only.
    assert [item[0] for item in load_sources([tmp_path]) if isinstance(item, tuple)] == [
        "a.json",
        "sub/b.ndjson:1",
        "sub/b.ndjson:2",
    ]


def test_a_json_file_keeps_its_line_and_column_in_errors(tmp_path: Path) -> None:
    (item,) = read_files([write(tmp_path / "r.json", '{\n  "resourceType": ]')])
    assert isinstance(item, InvalidRecord)
    assert (item.source, item.resource, item.problem) == (
        "r.json",
        "file",
        "not valid JSON (line 2, column 19)",
    )
