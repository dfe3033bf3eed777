"""The portal's page in Chromium under the headers its node sends: a Content-Security-Policy
that runs only the page's own files and its import map, breaks nothing the page does, and
keeps the page out of other sites' frames."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from medledger.crypto.keystore import encrypt_keystore
from medledger.portal.serve import STATIC
from tests.ledger.consortium import key
from tests.node.network import Network, running_network
from tests.portal.browser import browser_page, needs_browser, playwright

pytestmark = needs_browser

PASSPHRASE = "headers test passphrase"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with running_network(tmp_path_factory.mktemp("headers"), ["hospital-a", "hospital-b"]) as n:
        yield n


@pytest.fixture
def page() -> Iterator[tuple[Any, list[str]]]:
    with browser_page() as opened:
        yield opened


def directives(policy: str) -> dict[str, str]:
    named = (d.strip().split(" ", 1) for d in policy.split(";") if d.strip())
    return {d[0]: d[1] if len(d) > 1 else "" for d in named}


def import_map_source() -> str:
    """The import map's hash source, from the page's text as this test reads it."""
    page = (STATIC / "index.html").read_text(encoding="utf-8")
    found = re.search(r'<script type="importmap">(.*?)</script>', page, re.S)
    assert found is not None
    digest = hashlib.sha256(found.group(1).encode()).digest()
    return "'sha256-" + base64.b64encode(digest).decode() + "'"


def test_the_page_runs_under_a_strict_policy_and_breaks_none_of_it(
    net: Network, page: tuple[Any, list[str]], tmp_path: Path
) -> None:
    browser, problems = page
    url = net.nodes["hospital-a"].url
    answer = browser.goto(f"{url}/portal/")
    headers = answer.headers
    policy = directives(headers["content-security-policy"])
    assert "'unsafe-inline'" not in headers["content-security-policy"]
    assert "'unsafe-eval'" not in headers["content-security-policy"]
    assert policy["default-src"] == "'none'" and policy["frame-ancestors"] == "'none'"
    assert policy["script-src"] == f"'self' {import_map_source()}"
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    for path in ("/portal/js/app.js", "/portal/vendor/@noble/hashes/sha3.js"):
        served = browser.request.get(f"{url}{path}").headers
        assert served["content-security-policy"] == headers["content-security-policy"], path

    # The page's modules load through the import map (the keystore's scrypt is a noble
    # module): a wrong passphrase is told apart only once they all ran.
    keystore = tmp_path / "patient.json"
    keystore.write_text(json.dumps(encrypt_keystore(key("headers:patient"), PASSPHRASE,
                                                    scrypt_n=1024)))  # fmt: skip
    browser.set_input_files("#keystore", str(keystore))
    browser.fill("#passphrase", "not it")
    browser.click("#signin-button")
    browser.wait_for_selector("#signin-status:text('wrong passphrase')")
    assert problems == [], problems

    # A script slipped into the page does not run.
    with pytest.raises(playwright.Error, match="TrustedScript"):
        browser.add_script_tag(content="window.injected = 1")
    assert browser.evaluate("window.injected") is None
    assert problems and all("TrustedScript" in p or "CSP violation" in p for p in problems)


def test_a_page_of_another_site_cannot_frame_the_portal(
    net: Network, page: tuple[Any, list[str]]
) -> None:
    browser, problems = page
    portal = f"{net.nodes['hospital-a'].url}/portal/"
    # A page of another origin (hospital B's address and port) that puts the portal in a frame.
    browser.goto(f"{net.nodes['hospital-b'].url}/v1/health")
    browser.set_content(f'<iframe src="{portal}"></iframe>')
    (child,) = browser.main_frame.child_frames
    assert child.url != portal and child.query_selector("#signin") is None
    assert any("frame-ancestors" in p for p in problems), problems
