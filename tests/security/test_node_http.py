"""Attacks on the nodes' HTTP layer, one row each, against three real node servers on
127.0.0.1 with the settings a node has by default: what the attacker sends, and the
refusal that must come back.

- a request signed for node A, replayed at node B or C: 401 WrongAuthority;
- a request signed for evil.example, sent to node A, B or C: 401 WrongAuthority;
- a burst from one key beyond its allowance: 429 SignerRateLimited with Retry-After,
  and no nonce kept for the refused requests;
- a flood naming someone else's keyid, badly signed: 401, then 429 for the flooding
  address, and the victim's allowance untouched;
- a flood replaying someone else's captured request: 401 ReplayedRequest, then 429,
  and the victim's allowance untouched;
- a page of another site framing the portal: the browser refuses to render it.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator, Sequence

import httpx
import pytest

from medledger.crypto.keys import PrivateKey
from medledger.node.signatures import new_nonce, sign_request
from tests.ledger.consortium import key
from tests.node.network import Network, RunningNode, running_network

PATH = "/v1/ledger/status"
IN_FLIGHT_MAX = 16
IN_FLIGHT = httpx.Limits(max_connections=IN_FLIGHT_MAX)


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with running_network(tmp_path_factory.mktemp("attacks")) as network:
        yield network


def signed_for(authority: str, signer: PrivateKey) -> dict[str, str]:
    """The headers of a request to ``authority`` as they go over the wire, Host included."""
    now = int(time.time())
    headers = sign_request(signer, method="GET", url=f"http://{authority}{PATH}", body=b"",
                           created=now, expires=now + 60, nonce=new_nonce())  # fmt: skip
    return {**headers, "Host": authority}


def authority_of(node: RunningNode) -> str:
    return node.url.removeprefix("http://")


def send_all(
    node: RunningNode, requests: Sequence[dict[str, str]], source: str = "127.0.0.1"
) -> list[httpx.Response]:
    """Send every request to ``node`` at once, over connections from loopback address
    ``source``, so that a flood arrives faster than any allowance refills."""

    async def send() -> list[httpx.Response]:
        transport = httpx.AsyncHTTPTransport(local_address=source)
        async with httpx.AsyncClient(transport=transport, limits=IN_FLIGHT) as http:
            return list(
                await asyncio.gather(*(http.get(f"{node.url}{PATH}", headers=h) for h in requests))
            )

    return asyncio.run(send())


def refused(answer: httpx.Response, status: int, error: str) -> bool:
    body = answer.json()
    return answer.status_code == status and body["error"] == error and bool(body["message"])


def retry_after(answer: httpx.Response) -> int:
    seconds = int(answer.headers["retry-after"])
    assert seconds >= 1
    return seconds


@pytest.mark.parametrize(
    ("signed_at", "sent_to"),
    [
        ("hospital-a", "hospital-b"),
        ("hospital-a", "insurer"),
        ("evil.example", "hospital-a"),
        ("evil.example", "hospital-b"),
        ("evil.example", "insurer"),
    ],
)
def test_a_request_signed_for_another_authority_is_refused(
    net: Network, signed_at: str, sent_to: str
) -> None:
    caller = key(f"attack:authority:{signed_at}:{sent_to}")
    authority = authority_of(net.nodes[signed_at]) if signed_at in net.nodes else signed_at
    captured = signed_for(authority, caller)
    if signed_at in net.nodes:
        (original,) = send_all(net.nodes[signed_at], [captured])
        assert original.status_code == 200
    (answer,) = send_all(net.nodes[sent_to], [captured])
    assert refused(answer, 401, "WrongAuthority")
    assert authority in answer.json()["message"]


def _nonces_of(node: RunningNode, signer: PrivateKey) -> int:
    path = node.service.settings.data_dir / "request-nonces.db"
    with sqlite3.connect(path) as db:
        (count,) = db.execute(
            "SELECT count(*) FROM seen_nonce WHERE signer = ?", (signer.address,)
        ).fetchone()
    return int(count)


def test_a_burst_from_one_key_is_held_to_its_allowance(net: Network) -> None:
    node = net.nodes["hospital-a"]
    settings = node.service.settings
    greedy, bystander = key("attack:burst:greedy"), key("attack:burst:bystander")
    burst = [signed_for(authority_of(node), greedy) for _ in range(2 * settings.rate_limit_burst)]
    started = time.monotonic()
    answers = send_all(node, burst)
    elapsed = time.monotonic() - started
    accepted = [a for a in answers if a.status_code == 200]
    limited = [a for a in answers if a.status_code != 200]
    assert settings.rate_limit_burst <= len(accepted)
    assert len(accepted) <= settings.rate_limit_burst + settings.rate_limit_per_s * elapsed + 1
    assert limited and all(refused(a, 429, "SignerRateLimited") for a in limited)
    assert all(greedy.address in a.json()["message"] and retry_after(a) for a in limited)
    # A replay of one of its requests is still a replay, counted against whoever sends it.
    first = next(h for h, a in zip(burst, answers, strict=True) if a.status_code == 200)
    (replayed,) = send_all(node, [first])
    assert refused(replayed, 401, "ReplayedRequest")
    # Another key at the same time is not held back.
    (other,) = send_all(node, [signed_for(authority_of(node), bystander)])
    assert other.status_code == 200
    # Refused requests leave no nonce behind: the store holds one per accepted request.
    assert _nonces_of(node, greedy) == len(accepted)


def _flood(
    node: RunningNode, source: str, requests: Sequence[dict[str, str]], failure: str
) -> None:
    """More failing requests than an address may have, at once from ``source``: the
    first are refused as failures, the rest held off without being checked."""
    settings = node.service.settings
    started = time.monotonic()
    answers = send_all(node, requests, source)
    elapsed = time.monotonic() - started
    failed = [a for a in answers if a.status_code == 401]
    held = [a for a in answers if a.status_code != 401]
    assert all(refused(a, 401, failure) for a in failed)
    # Requests already in flight when the allowance ran out are still checked.
    most = settings.auth_failure_burst + settings.auth_failures_per_s * elapsed + IN_FLIGHT_MAX
    assert settings.auth_failure_burst <= len(failed) <= most
    assert held and all(refused(a, 429, "TooManyFailedAuthentications") for a in held)
    assert all(retry_after(a) for a in held)


def _keeps_its_allowance(node: RunningNode, victim: PrivateKey, spent: int) -> None:
    burst = node.service.settings.rate_limit_burst
    answers = send_all(node, [signed_for(authority_of(node), victim) for _ in range(burst - spent)])
    assert all(a.status_code == 200 for a in answers)


def _flood_size(node: RunningNode) -> int:
    return node.service.settings.auth_failure_burst + 2 * IN_FLIGHT_MAX + 30


def test_a_flood_under_someone_elses_keyid_spends_only_the_flooders_allowance(
    net: Network,
) -> None:
    node = net.nodes["hospital-a"]
    victim, attacker = key("attack:spoof:victim"), key("attack:spoof:attacker")
    forged = []
    for _ in range(_flood_size(node)):
        headers = signed_for(authority_of(node), attacker)
        named = headers["Signature-Input"].replace(attacker.address, victim.address)
        forged.append({**headers, "Signature-Input": named})
    _flood(node, "127.0.0.2", forged, "SignatureMismatch")
    _keeps_its_allowance(node, victim, spent=0)


def test_a_flood_of_someone_elses_captured_request_spends_only_the_flooders_allowance(
    net: Network,
) -> None:
    node = net.nodes["hospital-a"]
    victim = key("attack:replay:victim")
    captured = signed_for(authority_of(node), victim)
    (original,) = send_all(node, [captured])
    assert original.status_code == 200
    _flood(node, "127.0.0.3", [captured] * _flood_size(node), "ReplayedRequest")
    _keeps_its_allowance(node, victim, spent=1)


def test_a_page_of_another_site_cannot_frame_the_portal(net: Network) -> None:
    browser = pytest.importorskip("tests.portal.browser")
    if browser.BROWSER_MISSING is not None:
        pytest.skip(browser.BROWSER_MISSING)
    portal = f"{net.nodes['hospital-a'].url}/portal/"
    with browser.browser_page() as (page, problems):
        page.goto(f"{net.nodes['insurer'].url}/v1/health")
        page.set_content(f'<iframe src="{portal}"></iframe>')
        (child,) = page.main_frame.child_frames
        assert child.url != portal and child.query_selector("#signin") is None
    assert any("frame-ancestors" in p for p in problems), problems
