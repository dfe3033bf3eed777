"""Where a searched value lives in a resource: a path of element names, and
FHIRPath's walk along it."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any


class _Kind(enum.Enum):
    INSTANT = "instant"  # date, dateTime, instant: a string
    PERIOD = "Period"
    TIMING = "Timing"


@dataclass(frozen=True)
class _Element:
    """Where a date or code lives: a path of element names from the resource, and the
    JSON names of its last step with their kinds (a choice element has several)."""

    path: tuple[str, ...]
    names: tuple[tuple[str, _Kind], ...]
    label: str  # as the specification writes it: "period", "effective[x]"


def _plain(path: str, kind: _Kind = _Kind.INSTANT) -> _Element:
    *steps, last = path.split(".")
    return _Element(tuple(steps), ((last, kind),), last)


def _choice(name: str, *kinds: _Kind) -> _Element:
    suffixes = {_Kind.INSTANT: ("DateTime",), _Kind.PERIOD: ("Period",), _Kind.TIMING: ("Timing",)}
    named = tuple((name + suffix, kind) for kind in kinds for suffix in suffixes[kind])
    # Observation.effectiveInstant is an instant, written as a string like a dateTime.
    extra = ((name + "Instant", _Kind.INSTANT),) if name == "effective" else ()
    return _Element((), named + extra, f"{name}[x]")


def _walk(nodes: Iterable[Any], step: str) -> Iterator[Any]:
    """FHIRPath's navigation: a step into each node, lists flattened."""
    for node in nodes:
        if isinstance(node, Mapping):
            value = node.get(step)
            if isinstance(value, list):
                yield from value
            elif value is not None:
                yield value


def _element_values(resource: Mapping[str, Any], element: _Element) -> Iterator[tuple[Any, _Kind]]:
    nodes: list[Any] = [resource]
    for step in element.path:
        nodes = list(_walk(nodes, step))
    for name, kind in element.names:
        for value in _walk(nodes, name):
            yield value, kind
