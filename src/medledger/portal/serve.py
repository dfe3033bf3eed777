"""Serve the portal's page and, beside it, the npm packages its scripts import.

The packages (the noble cryptography libraries, pinned in package.json) are
installed next to this file by ``make``; the page maps their bare import names
to ``/portal/vendor/`` with an import map, so no bundler is needed.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

HERE = Path(__file__).parent
STATIC = HERE / "static"
VENDOR = HERE / "node_modules"


def mount_portal(app: FastAPI) -> None:
    # The more specific mount first: /portal would otherwise answer for /portal/vendor.
    app.mount("/portal/vendor", StaticFiles(directory=VENDOR, check_dir=False), name="vendor")
    app.mount("/portal", StaticFiles(directory=STATIC, html=True), name="portal")
