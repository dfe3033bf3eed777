"""AnonCreds issuer set-up takes seconds (it searches for safe primes): do it once a session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from medledger.credentials import zk


@pytest.fixture(scope="session")
def tails_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One tails directory for the session, and issuers created once per identity."""
    original, made = zk.create_issuer, {}

    def cached(issuer: str, ids: tuple[str, str, str], **kwargs: Any) -> Any:
        # The first list's timestamp is kept: later ones only need to follow it.
        key = (issuer, ids, kwargs["tails_dir"], kwargs["max_credentials"])
        if key not in made:
            made[key] = original(issuer, ids, **kwargs)
        return made[key]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(zk, "create_issuer", cached)
        yield tmp_path_factory.mktemp("tails")
