"""NatsOrderer against a real three-server JetStream cluster (replicas=3)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Coroutine
from contextlib import aclosing
from typing import Any, TypeVar

import nats
import pytest

from medledger.errors import TransportError, UsageError
from medledger.ledger.ordering.base import Block
from medledger.ledger.ordering.nats import NatsOrderer, _transient
from medledger.ledger.ordering.nats_servers import LocalNatsCluster

# Imported for pytest, which finds the fixture by its name "nats_cluster".
from .nats_fixtures import nats_cluster_fixture  # noqa: F401

pytestmark = pytest.mark.nats

_T = TypeVar("_T")
NETWORK = 42


def run(coro: Coroutine[Any, Any, _T], timeout: float = 40.0) -> _T:
    """Run one test body on a fresh event loop, failing instead of hanging."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def txs_for(block: int, count: int = 3) -> list[bytes]:
    """Distinct transactions per block, so no two blocks share a payload."""
    return [f"block {block} tx {i} ".encode() + bytes(range(256)) for i in range(count)]


async def take(
    orderer: NatsOrderer, after_seq: int, count: int, out: list[Block] | None = None
) -> list[Block]:
    """The next ``count`` blocks after ``after_seq``, also appended to ``out`` as they come."""
    out = [] if out is None else out
    async with aclosing(orderer.blocks(after_seq)) as blocks:
        async for block in blocks:
            out.append(block)
            if len(out) == count:
                break
    return out


def assert_chain(blocks: list[Block], first: int, last: int) -> None:
    assert [b.seq for b in blocks] == list(range(first, last + 1))
    times = [b.timestamp_ns for b in blocks]
    assert times == sorted(times)
    assert times[0] > 0


@pytest.mark.parametrize(
    ("err_code", "transient"),
    [
        (10005, True),  # no suitable peers for placement: the cluster is still forming
        (10158, True),  # another node's identical block is being stored
        (10058, False),  # stream name in use with another configuration
        (10071, False),  # wrong last sequence
    ],
)
def test_which_jetstream_refusals_are_tried_again(err_code: int, transient: bool) -> None:
    refused = nats.js.errors.BadRequestError(code=400, err_code=err_code, description="refused")
    assert _transient(refused) is transient


def test_append_and_read_back_in_order(nats_cluster: LocalNatsCluster) -> None:
    async def body() -> None:
        orderer = await NatsOrderer.connect(nats_cluster.urls, network_id=NETWORK)
        try:
            sent = [txs_for(i, count=1 + i % 4) for i in range(1, 21)]
            seqs = [await orderer.append(txs) for txs in sent]
            assert seqs == list(range(1, 21))
            assert await orderer.last_seq() == 20
            got = await take(orderer, 0, 20)
            assert_chain(got, 1, 20)
            assert [list(b.txs) for b in got] == sent
        finally:
            await orderer.close()

    run(body())


def test_empty_stream_and_empty_block(nats_cluster: LocalNatsCluster) -> None:
    async def body() -> None:
        orderer = await NatsOrderer.connect(nats_cluster.urls, network_id=NETWORK)
        try:
            assert await orderer.last_seq() == 0
            assert await orderer.append([b"", b"x"]) == 1
            (block,) = await take(orderer, 0, 1)
            assert block.txs == (b"", b"x")
        finally:
            await orderer.close()

    run(body())


def test_two_nodes_see_the_same_blocks(nats_cluster: LocalNatsCluster) -> None:
    async def body() -> None:
        first = await NatsOrderer.connect(nats_cluster.urls, network_id=NETWORK)
        # The second node lists the servers in another order, so it likely
        # connects elsewhere; it finds the stream the first one created.
        second = await NatsOrderer.connect(nats_cluster.urls[::-1], network_id=NETWORK)
        try:
            appends = [(first if i % 2 else second).append(txs_for(i)) for i in range(30)]
            seqs = await asyncio.gather(*appends)
            assert sorted(seqs) == list(range(1, 31))
            seen_by_first, seen_by_second = await asyncio.gather(
                take(first, 0, 30), take(second, 0, 30)
            )
            assert seen_by_first == seen_by_second
            assert_chain(seen_by_first, 1, 30)
            assert sorted(b.txs for b in seen_by_first) == sorted(
                tuple(txs_for(i)) for i in range(30)
            )
        finally:
            await first.close()
            await second.close()

    run(body())


def test_reader_starts_after_a_given_block_then_follows(nats_cluster: LocalNatsCluster) -> None:
    async def body() -> None:
        orderer = await NatsOrderer.connect(nats_cluster.urls, network_id=NETWORK)
        try:
            for i in range(10):
                await orderer.append(txs_for(i))
            reader = asyncio.create_task(take(orderer, 6, 7))
            await asyncio.sleep(0.2)
            for i in range(10, 13):
                await orderer.append(txs_for(i))
            got = await reader
            assert_chain(got, 7, 13)
            assert [list(b.txs) for b in got] == [txs_for(i) for i in range(6, 13)]
        finally:
            await orderer.close()

    run(body())


def test_retried_append_is_not_ordered_twice(nats_cluster: LocalNatsCluster) -> None:
    async def body() -> None:
        orderer = await NatsOrderer.connect(nats_cluster.urls, network_id=NETWORK)
        try:
            assert await orderer.append(txs_for(1)) == 1
            assert await orderer.append(txs_for(1)) == 1
            assert await orderer.append(txs_for(2)) == 2
            assert await orderer.last_seq() == 2
        finally:
            await orderer.close()

    run(body())


def test_identical_blocks_appended_at_once_by_several_nodes_are_ordered_once(
    nats_cluster: LocalNatsCluster,
) -> None:
    """Every node submits the genesis at its first start: the second publisher of a block
    the stream is still storing must get that block's sequence, not an error."""

    async def body() -> None:
        nodes = [await NatsOrderer.connect(nats_cluster.urls, network_id=NETWORK + 1)
                 for _ in range(3)]  # fmt: skip
        try:
            for block in range(1, 11):
                seqs = await asyncio.gather(*(n.append(txs_for(block)) for n in nodes))
                assert seqs == [block] * 3
            assert await nodes[0].last_seq() == 10
        finally:
            for node in nodes:
                await node.close()

    run(body())


async def _server_of(cluster: LocalNatsCluster, stream: str, *, consumer: bool) -> int:
    """Index of the stream leader, or of the server hosting the stream's live push consumer."""
    nc = await nats.connect(cluster.urls)
    try:
        js = nc.jetstream()
        if consumer:
            bound = [c for c in await js.consumers_info(stream) if c.push_bound]
            assert len(bound) == 1
            cluster_info = bound[0].cluster
        else:
            cluster_info = (await js.stream_info(stream)).cluster
        assert cluster_info is not None and cluster_info.leader is not None
        return cluster.names.index(cluster_info.leader)
    finally:
        await nc.close()


def test_survives_losing_the_stream_leader_and_the_reader_server(
    nats_cluster: LocalNatsCluster,
) -> None:
    async def body() -> None:
        orderer = await NatsOrderer.connect(nats_cluster.urls, network_id=NETWORK)
        try:
            received: list[Block] = []
            reader = asyncio.create_task(take(orderer, 0, 30, received))
            for i in range(10):
                assert await orderer.append(txs_for(i)) == i + 1

            # A crash of the stream leader: appends wait for a new leader.
            leader = await _server_of(nats_cluster, orderer.stream, consumer=False)
            nats_cluster.kill(leader)
            for i in range(10, 20):
                assert await orderer.append(txs_for(i)) == i + 1

            # Bring it back, then crash whichever server feeds the reader (once
            # the reader has caught up, so that it has exactly one consumer).
            await asyncio.to_thread(nats_cluster.restart, leader)
            while len(received) < 20:
                await asyncio.sleep(0.05)
            feeder = await _server_of(nats_cluster, orderer.stream, consumer=True)
            nats_cluster.kill(feeder)
            for i in range(20, 30):
                assert await orderer.append(txs_for(i)) == i + 1

            got = await reader
            assert_chain(got, 1, 30)
            assert [list(b.txs) for b in got] == [txs_for(i) for i in range(30)]
        finally:
            await orderer.close()

    run(body(), timeout=50)


def test_close_ends_readers(nats_cluster: LocalNatsCluster) -> None:
    async def body() -> None:
        orderer = await NatsOrderer.connect(nats_cluster.urls, network_id=NETWORK)
        await orderer.append(txs_for(0))
        got: list[Block] = []
        reader = asyncio.create_task(take(orderer, 0, 2, got))
        while not got:  # the reader is following: now close under it
            await asyncio.sleep(0.01)
        await orderer.close()
        await reader
        assert [b.seq for b in got] == [1]

    run(body())


def test_unreachable_server_raises_transport_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    async def body() -> None:
        with pytest.raises(TransportError) as caught:
            await NatsOrderer.connect([f"nats://127.0.0.1:{port}"], network_id=NETWORK, timeout=1.5)
        assert caught.value.__cause__ is not None

    run(body(), timeout=10)


def test_rejects_a_stream_name_nats_cannot_hold() -> None:
    with pytest.raises(UsageError):
        run(NatsOrderer.connect(["nats://127.0.0.1:1"], network_id=NETWORK, stream="a.b"))
