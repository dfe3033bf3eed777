"""How commands print: JSON for scripts, whole ids and readable times for people.

Ids and addresses are printed whole, never cut to fit a terminal, since people
copy them into the next command: a table wider than the terminal is printed at
its own width rather than squeezed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from medledger.errors import UsageError

# soft_wrap: a line is never broken inside an id or address, however narrow the terminal,
# so people can copy it and scripts can grep it.
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def emit(data: Any, as_json: bool, text: str) -> None:
    if as_json:
        print(json.dumps(data))
    else:
        # Plain text: what a node or another institution typed is never rich markup.
        out.print(text, markup=False)


_ID = re.compile(r"(0x[0-9a-f]{64}|[0-9a-f]{32})")


def unique_prefix(given: str, ids: Iterable[str], among: str) -> str:
    """The one id of ``ids`` that ``given`` begins (ids are lowercase hex), or a usage
    error saying how many matched ``among`` them."""
    prefix = given.lower()
    # A node lists the ids: what is not an id of the expected form counts for nothing.
    found = {i for i in ids if i.startswith(prefix) and _ID.fullmatch(i)}
    if len(found) != 1:
        raise UsageError(f"{len(found) or 'no'} {among} start with {given!r}"
                         + ("; give more digits" if found else ""))  # fmt: skip
    return found.pop()


def print_table(table: Table) -> None:
    needed = Measurement.get(out, out.options.update_width(10_000), table).maximum
    wide = out if needed <= out.width else Console(width=needed)
    wide.print(table)


def utc(timestamp_ns: int) -> str:
    """A ledger time (ns since the epoch) as people read it, in UTC."""
    return datetime.fromtimestamp(timestamp_ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S")


def progress(message: str) -> None:
    err.print(f"[dim]… {message}[/dim]")
