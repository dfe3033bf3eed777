"""Debian's Chromium, headless, driven by Playwright, for the tests that load the portal:
a page that reports every script error and every Content-Security-Policy violation."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import threading
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvicorn
from fastapi import FastAPI

from medledger.crypto.keys import PrivateKey
from medledger.crypto.keystore import encrypt_keystore
from medledger.portal.serve import VENDOR, mount_portal

playwright = pytest.importorskip("playwright.sync_api")

T = TypeVar("T")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Headless, as root, and quiet: no connection leaves this machine.
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"]  # fmt: skip

BROWSER_MISSING = (
    None
    if Path(CHROMIUM).exists() and (VENDOR / "@noble").is_dir()
    else "needs Debian's chromium and the portal's npm packages (make installs both)"
)
needs_browser = pytest.mark.skipif(BROWSER_MISSING is not None, reason=BROWSER_MISSING or "")

# Runs in every document before its own scripts: a violation the browser reports to the
# page is also written to the console, whatever words the browser's own message uses.
_REPORT_VIOLATIONS = """
document.addEventListener('securitypolicyviolation', (e) =>
  console.error(`CSP violation: ${e.effectiveDirective} blocked ${e.blockedURI}`));
"""


def is_policy_violation(text: str) -> bool:
    return any(
        mark in text for mark in ("CSP violation", "Content Security Policy", "Trusted Type")
    )


@contextmanager
def browser_page() -> Iterator[tuple[Any, list[str]]]:
    """A fresh page, and the script errors and policy violations it has had so far."""
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            problems: list[str] = []
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on(
                "console",
                lambda m: problems.append(m.text) if is_policy_violation(m.text) else None,
            )
            page.add_init_script(_REPORT_VIOLATIONS)
            yield page, problems
        finally:
            browser.close()


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    # Playwright's sync API holds this thread's event loop: the node clients get their own.
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, coroutine).result()


def sign_in(page: Any, url: str, keystore: Path, passphrase: str) -> None:
    page.goto(f"{url}/portal/")
    page.set_input_files("#keystore", str(keystore))
    page.fill("#passphrase", passphrase)
    page.click("#signin-button")


#: Screenshots of what the tests saw, for a person to look at after a run.
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "portal"


@contextmanager
def clean_page() -> Iterator[Any]:
    """A page that must end with no script error and no Content-Security-Policy violation."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with browser_page() as (page, problems):
        yield page
    assert problems == [], problems


def write_keystore(
    directory: Path, who: PrivateKey, passphrase: str, name: str = "patient"
) -> Path:
    """``who``'s keystore as the portal's sign-in reads it (cheap to open: scrypt N=1024)."""
    path = directory / f"{name}.json"
    path.write_text(json.dumps(encrypt_keystore(who, passphrase, scrypt_n=1024)))
    return path


@contextmanager
def portal_only(app: FastAPI | None = None) -> Iterator[str]:
    """The portal's files served as a node serves them, beside ``app``'s routes if given
    and no node behind them: the URL."""
    app = app or FastAPI()
    mount_portal(app)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the portal's files are not served")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
