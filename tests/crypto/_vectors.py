"""Load the known-answer data files kept next to the crypto tests."""

import json
from pathlib import Path
from typing import Any

_DIR = Path(__file__).parent / "vectors"


def load(name: str) -> Any:
    """Return the parsed JSON data file ``vectors/<name>``."""
    return json.loads((_DIR / name).read_text(encoding="utf-8"))
