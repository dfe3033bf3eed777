"""Check that every NATS server of the ordering cluster syncs each write to disk.

JetStream's default ``sync_interval`` acknowledges a write at once but flushes it
to disk only every two minutes, so a coordinated power failure, or an OS crash
together with process pauses, can lose blocks that nodes already took as ordered.
Only servers configured with ``sync_interval: always`` keep what they
acknowledged. A server reports that in its monitoring endpoint ``/jsz`` as
``config.sync_always``, a field it leaves out when false.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx

from medledger.errors import TransportError, UsageError

_TIMEOUT_S = 5.0


class NatsNotDurable(UsageError):
    """A NATS server, or the set of servers checked, cannot show it keeps acknowledged writes."""


def _shown(url: str) -> str:
    """``url`` without user name and password, for messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(not a URL)"
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


async def _jsz(client: httpx.AsyncClient, url: str) -> dict[str, Any]:
    endpoint = url.rstrip("/") + "/jsz"
    shown = _shown(endpoint)
    try:
        response = await client.get(endpoint)
    except httpx.InvalidURL:
        raise UsageError(f"NATS monitoring URL {_shown(url)!r} is not a URL") from None
    except httpx.HTTPError as exc:
        raise TransportError(f"NATS monitoring endpoint {shown} unreachable: {exc}") from exc
    if response.status_code != 200:
        raise TransportError(f"NATS monitoring endpoint {shown} answered {response.status_code}")
    try:
        body = response.json()
    except ValueError as exc:
        raise TransportError(f"NATS monitoring endpoint {shown} did not answer JSON") from exc
    if not isinstance(body, dict):
        raise TransportError(f"NATS monitoring endpoint {shown} did not answer an object")
    return body


async def check_sync_always(monitor_urls: Sequence[str]) -> None:
    """Raise :class:`NatsNotDurable` unless every server of the cluster syncs always.

    ``monitor_urls`` are the servers' HTTP monitoring URLs; together they must
    reach as many distinct servers as the JetStream cluster has, so that none
    goes unchecked. Raises :class:`TransportError` when one does not answer.
    """
    if not monitor_urls:
        raise NatsNotDurable(
            "no NATS monitoring URL: cannot check that the servers sync every write"
        )
    server_ids: set[str] = set()
    cluster_size = 1
    async with httpx.AsyncClient(timeout=_TIMEOUT_S) as client:
        for url in monitor_urls:
            jsz = await _jsz(client, url)
            config = jsz.get("config")
            if not isinstance(config, dict) or config.get("sync_always") is not True:
                raise NatsNotDurable(
                    f"NATS server at {_shown(url)} does not sync every write to disk: "
                    "set sync_interval: always in its jetstream configuration"
                )
            server_ids.add(str(jsz.get("server_id")))
            meta = jsz.get("meta_cluster")
            size = meta.get("cluster_size") if isinstance(meta, dict) else None
            if isinstance(size, int):
                cluster_size = max(cluster_size, size)
    if len(server_ids) < cluster_size:
        raise NatsNotDurable(
            f"the NATS monitoring URLs reach {len(server_ids)} of the cluster's "
            f"{cluster_size} servers; give every server's, so that each is checked "
            "to sync every write"
        )
