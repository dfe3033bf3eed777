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
NodeOption = Annotated[
    str, typer.Option("--node", envvar="MEDLEDGER_NODE_URL", help="The node's URL.")
]
KeyOption = Annotated[
    Path,
    typer.Option("--key", envvar="MEDLEDGER_KEY", help="Your keystore ($MEDLEDGER_PASSPHRASE)."),
]
DEFAULT_NODE = "http://127.0.0.1:8701"
HomePatientOption = Annotated[
    str | None, typer.Option("--patient", help="In a sandbox home: the patient's alias.")
]
OptionalKeyOption = Annotated[
    Path | None,
    typer.Option("--key", envvar="MEDLEDGER_KEY", help="At a node: your keystore."),
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="Print only the ids.")]
VersionOption = Annotated[int | None, typer.Option(min=1, help="Default: the latest.")]
