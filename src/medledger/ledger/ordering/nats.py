"""An ordering backend on a NATS JetStream stream replicated over a cluster.

One stream per consortium network holds every block as one message; the
JetStream stream sequence is the block sequence and the time the stream leader
stored the message is the block timestamp, so every node reads the same blocks
with the same numbers and times. A block is acknowledged only once a quorum of
replicas has stored it, and the stream never discards or deletes a message.

Appends are idempotent within the stream's duplicate window: the message id is
the hash of the block payload, so an append retried after a lost acknowledgement
returns the sequence of the block already stored instead of ordering it twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import TypeVar

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import (
    DiscardPolicy,
    Header,
    PubAck,
    RetentionPolicy,
    StorageType,
    StreamConfig,
    StreamInfo,
)

from medledger.errors import TransportError, UsageError
from medledger.ledger.ordering.base import Block, encode_block_payload
from medledger.ledger.ordering.nats_reader import open_feed

_log = logging.getLogger(__name__)

_T = TypeVar("_T")

# How long an append (or connect) keeps retrying through a leader election or
# a reconnect before giving up. After a server crash nats-server elects a new
# stream or meta leader within its 4-9 s randomised election timeout.
_RETRY_BUDGET = 15.0
# Upper bound of one JetStream API request or publish attempt within that budget.
_REQUEST_TIMEOUT = 2.0
# Pause before retrying a server the client just failed to reach; failing over
# to another server of the pool is immediate.
_RECONNECT_WAIT = 1
# A retried append must land within this window to be recognised as a retry.
_DUPLICATE_WINDOW = 120.0
_FIRST_RESUBSCRIBE_DELAY = 0.1
_MAX_RESUBSCRIBE_DELAY = 2.0

# Failures expected while a server dies, a leader is elected or the client
# reconnects; anything else from NATS is reported at once. (TimeoutError covers
# nats.errors.TimeoutError, which subclasses it.)
_TRANSIENT: tuple[type[BaseException], ...] = (
    TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.OutboundBufferLimitError,
    nats.js.errors.NoStreamResponseError,
    nats.js.errors.ServiceUnavailableError,
)


# Stream names become subject tokens and file names on the servers.
_STREAM_NAME = re.compile(r"[A-Za-z0-9_-]{1,128}")
# Error code of "stream name already in use with a different configuration".
_STREAM_NAME_IN_USE = 10058
# Error code of "duplicate message id is in process": another publisher's identical
# block (every node submits the genesis at its first start) is being stored; once it
# is, the same publish gets that block's sequence back.
_DUPLICATE_IN_PROCESS = 10158
# Error code of "no suitable peers for placement": a cluster still forming, or a server
# restarting, has not yet as many peers online as the stream's replicas.
_NO_PEERS_FOR_PLACEMENT = 10005
_TRANSIENT_CODES = frozenset({_DUPLICATE_IN_PROCESS, _NO_PEERS_FOR_PLACEMENT})


def _transient(exc: BaseException) -> bool:
    """Whether a failed request may succeed if made again."""
    coded = isinstance(exc, nats.js.errors.APIError) and exc.err_code in _TRANSIENT_CODES
    return isinstance(exc, _TRANSIENT) or coded


def stream_name(network_id: int) -> str:
    """The default JetStream stream name of a network."""
    return f"MEDLEDGER_{network_id}"


def block_subject(network_id: int) -> str:
    """The subject a network's blocks are published on."""
    return f"medledger.{network_id}.blocks"


class NatsOrderer:
    """:class:`~medledger.ledger.ordering.base.Orderer` backed by a JetStream stream.

    Create it with :meth:`connect`. Several appends may be awaited concurrently
    on one orderer; each gets its own sequence, in the order the stream leader
    received them.
    """

    def __init__(self, nc: Client, js: JetStreamContext, *, stream: str, subject: str) -> None:
        """Wrap an established connection; use :meth:`connect` instead."""
        self._nc = nc
        self._js = js
        self._stream = stream
        self._subject = subject
        self._closed = False

    @property
    def stream(self) -> str:
        """Name of the JetStream stream holding the blocks."""
        return self._stream

    @classmethod
    async def connect(
        cls,
        servers: Sequence[str],
        *,
        network_id: int,
        replicas: int = 3,
        stream: str | None = None,
        timeout: float = _RETRY_BUDGET,
    ) -> NatsOrderer:
        """Connect to the cluster and create the network's stream if it does not exist.

        ``servers`` should list every server of the cluster so that the client
        can fail over to any of them. An existing stream is used as it is, as
        long as it holds the network's subject. Raises :class:`TransportError`
        if no server answers or the stream cannot be set up within ``timeout``
        seconds.
        """
        if not servers:
            raise UsageError("no NATS server URL given")
        if network_id < 0:
            raise UsageError(f"network id must not be negative, not {network_id}")
        if replicas < 1:
            raise UsageError(f"a stream needs at least one replica, not {replicas}")
        name = stream if stream is not None else stream_name(network_id)
        if not _STREAM_NAME.fullmatch(name):
            raise UsageError(f"stream name {name!r} is not letters, digits, '_' and '-'")
        subject = block_subject(network_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout

        nc = Client()
        orderer = cls(nc, nc.jetstream(timeout=_REQUEST_TIMEOUT), stream=name, subject=subject)
        try:
            # The client retries forever (so it survives any outage once
            # connected); the first connection is bounded here instead.
            await asyncio.wait_for(
                nc.connect(
                    servers=list(servers),
                    name=f"medledger-orderer-{network_id}",
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=_RECONNECT_WAIT,
                    connect_timeout=max(1, round(min(_REQUEST_TIMEOUT, timeout))),
                    error_cb=orderer._on_error,
                    disconnected_cb=orderer._on_disconnected,
                    reconnected_cb=orderer._on_reconnected,
                ),
                timeout,
            )
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            await orderer.close()
            raise TransportError(f"no NATS server reachable at {', '.join(servers)}") from exc

        config = StreamConfig(
            name=name,
            subjects=[subject],
            retention=RetentionPolicy.LIMITS,
            max_msgs=-1,
            max_bytes=-1,
            max_age=0,
            max_msgs_per_subject=-1,
            storage=StorageType.FILE,
            num_replicas=replicas,
            discard=DiscardPolicy.NEW,
            duplicate_window=_DUPLICATE_WINDOW,
            # The ledger is append-only: the history must not be editable
            # through the JetStream API either.
            deny_delete=True,
            deny_purge=True,
        )
        try:
            info = await orderer._retry(
                f"setting up stream {name}",
                lambda: orderer._ensure_stream(config),
                deadline - loop.time(),
            )
            if subject not in (info.config.subjects or []):
                raise UsageError(f"existing stream {name} does not hold subject {subject}")
        except BaseException:
            await orderer.close()
            raise
        return orderer

    async def append(self, txs: Sequence[bytes]) -> int:
        """Order ``txs`` as one block once a quorum stored it; return its sequence.

        Retries through leader elections and reconnects for up to 15 s, then
        raises :class:`TransportError`. Appending a payload identical to one
        appended within the last two minutes returns the earlier block's
        sequence (that is what makes retries safe).
        """
        self._check_open()
        payload = encode_block_payload(txs)
        if len(payload) > self._nc.max_payload:
            raise UsageError(
                f"block of {len(payload)} bytes exceeds the server's "
                f"max_payload of {self._nc.max_payload} bytes"
            )
        msg_id = hashlib.sha256(payload).hexdigest()

        async def publish() -> PubAck:
            # A fresh header dict per attempt: publish() adds to the one it is given.
            return await self._js.publish(
                self._subject,
                payload,
                timeout=_REQUEST_TIMEOUT,
                stream=self._stream,
                headers={Header.MSG_ID.value: msg_id},
            )

        ack = await self._retry(f"appending to {self._stream}", publish, _RETRY_BUDGET)
        return ack.seq

    async def head_seq(self) -> int:
        return await self.last_seq()

    async def last_seq(self) -> int:
        """Sequence of the newest block in the stream (0 when empty)."""
        self._check_open()
        info = await self._retry(
            f"reading {self._stream}",
            lambda: self._js.stream_info(self._stream),
            _RETRY_BUDGET,
        )
        return info.state.last_seq

    async def blocks(self, after_seq: int) -> AsyncGenerator[Block, None]:
        """Yield every block with ``seq > after_seq`` in order, then new ones as they come.

        Reads through an ephemeral push consumer. The consumer lives on one
        server; when that server dies, the connection drops messages, or a
        sequence is skipped, the reader throws the consumer away and creates a
        new one starting at the next expected sequence, so it yields no gap and
        no duplicate. Ends quietly when the orderer is closed; raises
        :class:`TransportError` if the stream turns out to lack a block.
        """
        if after_seq < 0:
            raise UsageError(f"after_seq must not be negative, not {after_seq}")
        expected = after_seq + 1
        delay = _FIRST_RESUBSCRIBE_DELAY
        while not self._closed:
            feed = await open_feed(self._nc, self._js, self._stream, expected, closing=self._closed)
            if feed is None:
                await asyncio.sleep(delay)
                delay = min(2 * delay, _MAX_RESUBSCRIBE_DELAY)
                continue
            try:
                while (block := await feed.next_block(expected)) is not None:
                    yield block
                    expected = block.seq + 1
                    delay = _FIRST_RESUBSCRIBE_DELAY
            finally:
                await feed.close()

    async def close(self) -> None:
        """Close the connection; readers end, pending appends fail. Idempotent."""
        if self._closed:
            return
        self._closed = True
        # Every acknowledged append is already stored by a quorum, so there is
        # nothing to drain; close() flushes whatever is still buffered.
        await self._nc.close()

    async def _on_error(self, exc: Exception) -> None:
        _log.warning("NATS client error on %s: %r", self._stream, exc)

    async def _on_disconnected(self) -> None:
        # The client also reports a disconnection when we close it ourselves.
        if not self._closed:
            _log.warning("orderer of %s disconnected from NATS; reconnecting", self._stream)

    async def _on_reconnected(self) -> None:
        url = self._nc.connected_url
        _log.info("orderer of %s reconnected to %s", self._stream, url.geturl() if url else "?")

    def _check_open(self) -> None:
        if self._closed:
            raise UsageError("the orderer is closed")

    async def _ensure_stream(self, config: StreamConfig) -> StreamInfo:
        name = config.name
        assert name is not None
        try:
            return await self._js.stream_info(name)
        except nats.js.errors.NotFoundError:
            pass
        try:
            return await self._js.add_stream(config)
        except nats.js.errors.BadRequestError as exc:
            # Another node created it since we looked (with another config:
            # e.g. other replicas); use theirs.
            if exc.err_code != _STREAM_NAME_IN_USE:
                raise
        return await self._js.stream_info(name)

    async def _retry(self, what: str, attempt: Callable[[], Awaitable[_T]], budget: float) -> _T:
        """Run ``attempt`` until it succeeds, retrying transient failures for ``budget`` s."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget
        delay = 0.05
        while True:
            remaining = deadline - loop.time()
            try:
                return await asyncio.wait_for(attempt(), max(remaining, 0.001))
            except (TimeoutError, nats.errors.Error) as exc:
                if not _transient(exc):
                    raise TransportError(f"{what} failed: {exc}") from exc
                if self._closed:
                    raise TransportError(f"{what}: the orderer was closed") from exc
                if loop.time() + delay >= deadline:
                    raise TransportError(f"{what}: no answer within {budget:.0f} s") from exc
                _log.debug("%s: %r, retrying", what, exc)
            await asyncio.sleep(delay)
            delay = min(2 * delay, 0.5)
