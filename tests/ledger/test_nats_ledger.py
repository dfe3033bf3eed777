"""Three ledger nodes over a three-server JetStream cluster: several machines, on loopback."""

from __future__ import annotations

import asyncio
from pathlib import Path

import nats
import pytest

from medledger.ledger.node import LedgerNode
from medledger.ledger.ordering.nats import NatsOrderer, stream_name
from medledger.ledger.ordering.nats_servers import LocalNatsCluster
from tests.ledger.consortium import NETWORK_ID, Consortium, make_consortium, start_node
from tests.ledger.test_node import subject_tx

from .nats_fixtures import nats_cluster_fixture  # noqa: F401

pytestmark = pytest.mark.nats


async def _stream_leader(cluster: LocalNatsCluster) -> int:
    nc = await nats.connect(cluster.urls)
    try:
        info = (await nc.jetstream().stream_info(stream_name(NETWORK_ID))).cluster
        assert info is not None and info.leader is not None
        return cluster.names.index(info.leader)
    finally:
        await nc.close()


async def _node(c: Consortium, cluster: LocalNatsCluster, tmp_path: Path, i: int) -> LedgerNode:
    orderer = await NatsOrderer.connect(cluster.urls, network_id=NETWORK_ID, replicas=3)
    return await start_node(c, str(tmp_path / f"state-{i}.db"), orderer, i)


async def _stop(node: LedgerNode) -> None:
    await node.stop()
    await node.orderer.close()
    node.store.close()


async def _agree(nodes: list[LedgerNode], size: int) -> None:
    for node in nodes:
        await node.wait_for_size(size, timeout=60)
    assert {n.size for n in nodes} == {size}
    assert len({n.root() for n in nodes}) == 1
    assert len({await n.state_root_at(size) for n in nodes}) == 1


def test_three_nodes_agree_through_server_loss_and_node_restart(
    nats_cluster: LocalNatsCluster, tmp_path: Path
) -> None:
    async def body() -> None:
        c = make_consortium()
        nodes = [await _node(c, nats_cluster, tmp_path, i) for i in range(3)]
        try:
            batches = [[subject_tx(c, f"n{i}-p{j}").encode() for j in range(20)] for i in range(3)]
            results = await asyncio.gather(
                *(n.submit_raw_many(b) for n, b in zip(nodes, batches, strict=True))
            )
            assert all(o.accepted for part in results for o in part)
            await _agree(nodes, 61)

            nats_cluster.kill(await _stream_leader(nats_cluster))
            more = [subject_tx(c, f"after-kill-{j}").encode() for j in range(20)]
            assert all(o.accepted for o in await nodes[2].submit_raw_many(more))
            await _agree(nodes, 81)

            await _stop(nodes[1])
            while_down = [subject_tx(c, f"while-down-{j}").encode() for j in range(20)]
            assert all(o.accepted for o in await nodes[0].submit_raw_many(while_down))
            nodes[1] = await _node(c, nats_cluster, tmp_path, 1)
            await _agree(nodes, 101)
            late = [subject_tx(c, f"late-{j}").encode() for j in range(5)]
            assert all(o.accepted for o in await nodes[1].submit_raw_many(late))
            await _agree(nodes, 106)
        finally:
            for node in nodes:
                await _stop(node)

    asyncio.run(asyncio.wait_for(body(), 150))
