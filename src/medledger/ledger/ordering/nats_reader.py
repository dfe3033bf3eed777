"""Reading a network's blocks from JetStream: one ephemeral push consumer at a time.

A feed yields the blocks of one consumer, checked for gaps against the sequence the
reader expects next; when its server dies, the connection drops messages or a
sequence is skipped, the feed gives up and the orderer opens a new one from the next
expected block (ordering/nats.py).
"""

from __future__ import annotations

import logging

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, Header

from medledger.errors import TransportError
from medledger.ledger.ordering.base import Block, MalformedBlock, decode_block_payload

_log = logging.getLogger(__name__)

# The reader's consumer sends a heartbeat this often when idle; after
# _MISSED_HEARTBEATS silent intervals it is presumed lost (its server died).
_HEARTBEAT = 1.0
_MISSED_HEARTBEATS = 3
# Creating a reader's consumer takes milliseconds; one that does not answer
# within this was most likely placed on a server that just died (the cluster
# takes a few seconds to notice), so give up on it and ask again.
_CONSUMER_CREATE_TIMEOUT = 1.0
# An abandoned reader consumer is removed by the server after this long.
_INACTIVE_THRESHOLD = 30.0
# Status of a JetStream control message (idle heartbeat or flow-control request).
_CONTROL_STATUS = "100"


async def open_feed(
    nc: Client, js: JetStreamContext, stream: str, start_seq: int, *, closing: bool
) -> Feed | None:
    """Subscribe a new consumer of ``stream`` from ``start_seq``; ``None`` on a transient
    failure, or once the connection is closed while its orderer is ``closing``."""
    if nc.is_closed:
        if closing:
            return None
        raise TransportError("the NATS connection was closed under the reader")
    inbox = nc.new_inbox()
    try:
        # Subscribe before the consumer exists so its first messages have a taker.
        sub = await nc.subscribe(inbox)
    except nats.errors.Error as exc:
        _log.warning("cannot subscribe to read %s: %r", stream, exc)
        return None
    config = ConsumerConfig(
        deliver_subject=inbox,
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=start_seq,
        # Each reader tracks its own position; the server need not.
        ack_policy=AckPolicy.NONE,
        flow_control=True,
        idle_heartbeat=_HEARTBEAT,
        # A lost consumer is replaced, not recovered: keep it cheap.
        mem_storage=True,
        num_replicas=1,
        inactive_threshold=_INACTIVE_THRESHOLD,
    )
    try:
        await js.add_consumer(stream, config, timeout=_CONSUMER_CREATE_TIMEOUT)
    except (nats.errors.Error, TimeoutError) as exc:
        _log.warning("cannot create a consumer on %s at %d: %r", stream, start_seq, exc)
        await _unsubscribe(sub)
        return None
    return Feed(nc, js, sub, stream)


class Feed:
    """The messages of one push consumer, checked for gaps against the expected sequence."""

    def __init__(self, nc: Client, js: JetStreamContext, sub: Subscription, stream: str) -> None:
        self._nc = nc
        self._js = js
        self._sub = sub
        self._stream = stream
        self._delivered = 0

    async def next_block(self, expected: int) -> Block | None:
        """Return block ``expected``, or ``None`` when this feed cannot provide it."""
        while True:
            try:
                msg = await self._sub.next_msg(timeout=_HEARTBEAT * _MISSED_HEARTBEATS)
            except nats.errors.TimeoutError:
                _log.warning("reader of %s lost its consumer; resubscribing", self._stream)
                return None
            except nats.errors.Error:
                # The connection closed; the caller decides whether that is an error.
                return None
            status = msg.headers.get(Header.STATUS) if msg.headers else None
            if status == _CONTROL_STATUS:
                if not await self._control(msg, expected):
                    return None
                continue
            if status is not None:
                _log.warning("reader of %s got status %s; resubscribing", self._stream, status)
                return None
            seq, timestamp_ns = _sequence_and_time(msg)
            if seq < expected:
                continue
            if seq > expected:
                _log.warning(
                    "reader of %s expected block %d, got %d; resubscribing",
                    self._stream,
                    expected,
                    seq,
                )
                if self._delivered == 0:
                    await self._check_exists(expected)
                return None
            self._delivered += 1
            return Block(seq=seq, timestamp_ns=timestamp_ns, txs=decode_block_payload(msg.data))

    async def close(self) -> None:
        # The consumer itself is left to expire (inactive_threshold): deleting
        # it would stall recovery whenever its server is the one that died.
        await _unsubscribe(self._sub)

    async def _control(self, msg: Msg, expected: int) -> bool:
        """Handle a heartbeat or flow-control request; ``False`` if messages were lost."""
        assert msg.headers is not None
        try:
            # Flow control asks us to confirm we have processed everything sent
            # so far; we have, since messages are handled in arrival order.
            if msg.reply:
                await self._nc.publish(msg.reply)
            stalled = msg.headers.get(Header.CONSUMER_STALLED)
            if stalled:
                await self._nc.publish(stalled)
        except nats.errors.Error:
            return False
        # A heartbeat names the last stream sequence the consumer sent; if that
        # is at or past the one we wait for, it was lost on the way.
        last_sent = msg.headers.get(Header.LAST_STREAM)
        if last_sent is not None and int(last_sent) >= expected:
            _log.warning(
                "reader of %s missed blocks %d..%s; resubscribing",
                self._stream,
                expected,
                last_sent,
            )
            return False
        return True

    async def _check_exists(self, seq: int) -> None:
        """Raise if the stream has no message ``seq``: a hole no resubscription can fill."""
        try:
            await self._js.get_msg(self._stream, seq)
        except nats.js.errors.NotFoundError as exc:
            raise TransportError(f"stream {self._stream} has no block {seq}") from exc
        except (nats.errors.Error, TimeoutError):
            # Cannot tell right now; the next subscription will look again.
            return


def _sequence_and_time(msg: Msg) -> tuple[int, int]:
    """Stream sequence and stored timestamp (ns) from a JetStream delivery's reply subject.

    Parsed here rather than through ``msg.metadata`` because that converts the
    timestamp to a datetime and loses the nanoseconds.
    """
    tokens = (msg.reply or "").split(".")
    # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>, or
    # the newer form with <domain>.<account hash> after ACK and a random suffix.
    if len(tokens) == 9:
        offset = 0
    elif len(tokens) >= 11:
        offset = 2
    else:
        raise MalformedBlock(f"not a JetStream delivery: reply subject {msg.reply!r}")
    if tokens[0] != "$JS" or tokens[1] != "ACK":
        raise MalformedBlock(f"not a JetStream delivery: reply subject {msg.reply!r}")
    try:
        return int(tokens[5 + offset]), int(tokens[7 + offset])
    except ValueError as exc:
        raise MalformedBlock(f"bad JetStream metadata in {msg.reply!r}") from exc


async def _unsubscribe(sub: Subscription) -> None:
    try:
        await sub.unsubscribe()
    except nats.errors.Error:
        # Already gone with the connection; nothing left to release.
        return
