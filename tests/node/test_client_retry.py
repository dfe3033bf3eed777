"""A NodeClient waits out a rate limit as the node asks and sends a freshly signed copy."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from medledger.node import client as client_module
from medledger.node.client import MAX_RETRIES, MAX_WAIT_S, NodeClient, NodeRefused
from tests.ledger.consortium import key

LIMITED = {"error": "SignerRateLimited", "message": "over its limit"}


def _node(limited: int, retry_after: str) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    """A node that refuses the first ``limited`` requests with 429, then answers."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) <= limited:
            return httpx.Response(429, json=LIMITED, headers={"Retry-After": retry_after})
        return httpx.Response(200, json={"ok": True})

    return httpx.MockTransport(handle), seen


def _run(limited: int, retry_after: str, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, ...]:
    transport, seen = _node(limited, retry_after)
    outcome, waits = _call(transport, monkeypatch)
    return outcome, seen, waits


def _call(transport: httpx.MockTransport, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, ...]:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(client_module.asyncio, "sleep", sleep)

    async def call() -> Any:
        async with NodeClient("http://node.test", key("retry"), transport=transport) as c:
            return await c.get("/v1/ledger/status")

    try:
        outcome: Any = asyncio.run(call())
    except NodeRefused as refused:
        outcome = refused
    return outcome, waits


@pytest.mark.parametrize(("retry_after", "wait"), [("3", 3.0), ("0", 1.0), ("soon", 1.0),
                                                   ("3600", MAX_WAIT_S)])  # fmt: skip
def test_a_rate_limited_request_is_sent_again_after_the_wait_the_node_names(
    retry_after: str, wait: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    answer, seen, waits = _run(2, retry_after, monkeypatch)
    assert answer == {"ok": True}
    assert waits == [wait, wait]
    # Each copy carries its own nonce: the node would refuse a resent one as a replay.
    signatures = {r.headers["Signature-Input"] for r in seen}
    assert len(seen) == 3 and len(signatures) == 3


def test_a_client_gives_up_after_its_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    refused, seen, waits = _run(MAX_RETRIES + 5, "1", monkeypatch)
    assert isinstance(refused, NodeRefused) and refused.status == 429
    assert refused.error == "SignerRateLimited"
    assert len(seen) == MAX_RETRIES + 1 and len(waits) == MAX_RETRIES


def test_other_refusals_are_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    forbidden = {"error": "Forbidden", "message": "no grant"}
    transport = httpx.MockTransport(lambda _: httpx.Response(403, json=forbidden))
    refused, waits = _call(transport, monkeypatch)
    assert isinstance(refused, NodeRefused) and refused.status == 403 and waits == []
