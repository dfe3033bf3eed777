"""The page the portal's browser tests drive; a module that needs another kind defines its own."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture
def page() -> Iterator[Any]:
    # Imported here: browser.py skips what needs Playwright, which a conftest cannot do.
    from tests.portal.browser import clean_page

    with clean_page() as fresh:
        yield fresh
