"""Options every command of the CLI spells the same way."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

HomeOption = Annotated[
    Path | None,
    typer.Option(
        "--home", help="The medledger home (default: $MEDLEDGER_HOME or ./medledger-home)."
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON only.")]
ScryptOption = Annotated[
    int, typer.Option("--scrypt-n", min=1024, help="Keystore scrypt cost (a power of two).")
]
PatientOption = Annotated[str, typer.Option(help="The patient's alias.")]
