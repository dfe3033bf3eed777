"""What the node does with every HTTP request before and after its route: a body limit,
headers every answer carries, metrics and one structured log line.

Plain ASGI rather than a framework middleware: it runs on every request, and the
framework's wrapper costs more than the rest of a health check.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("medledger.node.http")

# On every answer, the API's and the portal's: no content-type guessing (a JSON answer
# echoing input must never run as a script or page), and no Referer carrying paths,
# which name addresses and record ids, to wherever a link leads.
EVERY_RESPONSE = ((b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"))


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "medledger_http_requests", "API requests by route and status",
            ["method", "route", "status"], registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "medledger_http_request_seconds", "API request latency by route",
            ["method", "route"], registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )  # fmt: skip
        self.log_size = Gauge(
            "medledger_ledger_size", "transactions in this node's log", registry=self.registry
        )
        self.request_nonces = Gauge(
            "medledger_request_nonces", "request nonces kept against replay",
            registry=self.registry,
        )  # fmt: skip
        self.rate_tracked = Gauge(
            "medledger_http_rate_tracked",
            "signing keys and client addresses whose allowance is partly spent",
            ["kind"], registry=self.registry,
        )  # fmt: skip


def route_of(scope: Scope) -> str:
    # The route's template, never the path itself: paths carry addresses and record ids.
    return str(getattr(scope.get("route"), "path", "unmatched"))


class Observed:
    def __init__(self, app: ASGIApp, *, metrics: Metrics, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.limit = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message["headers"] = [*message.get("headers", ()), *EVERY_RESPONSE]
            await send(message)

        declared = dict(scope["headers"]).get(b"content-length")
        body: Receive | None = receive
        if declared is None:
            # No declared length (chunked): read the body here, up to the limit, and hand
            # the route what was read. Every route reads whole bodies anyway.
            body = await self._buffered(receive)
        elif not declared.isdigit() or int(declared) > self.limit:
            body = None
        if body is None:
            refusal = {"error": "BodyTooLarge", "message": self._too_large}
            await JSONResponse(refusal, status_code=413)(scope, receive, observed)
            return
        started = time.perf_counter()
        try:
            await self.app(scope, body, observed)
        finally:
            self._record(scope, status, time.perf_counter() - started)

    async def _buffered(self, receive: Receive) -> Receive | None:
        """The whole body as one message, or None if it is over the limit."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return _replay(message, receive)
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                return None
            if not message.get("more_body", False):
                return _replay({"type": "http.request", "body": b"".join(chunks)}, receive)

    @property
    def _too_large(self) -> str:
        return f"request bodies are limited to {self.limit} bytes"

    def _record(self, scope: Scope, status: int, elapsed: float) -> None:
        method, route = str(scope["method"]), route_of(scope)
        self.metrics.requests.labels(method, route, str(status)).inc()
        self.metrics.latency.labels(method, route).observe(elapsed)
        extra: dict[str, Any] = {"route": route, "status": status, "ms": round(elapsed * 1000, 2)}
        log.info("%s %s %d %.1f ms", method, route, status, elapsed * 1000, extra=extra)


def _replay(first: Message, then: Receive) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return first
        return await then()

    return receive
