"""A throwaway three-server JetStream cluster for tests that need a real NATS."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from medledger.ledger.ordering.nats_servers import LocalNatsCluster


@pytest.fixture(name="nats_cluster")
def nats_cluster_fixture(tmp_path: Path) -> Iterator[LocalNatsCluster]:
    """Three clustered nats-server processes on 127.0.0.1, stopped after the test."""
    with LocalNatsCluster(tmp_path / "nats", size=3) as cluster:
        yield cluster
