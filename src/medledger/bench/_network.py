"""The consortium every benchmark runs against: three founders, one node, embedded order."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from medledger.access.settings import AccessSettings
from medledger.crypto.keys import PrivateKey
from medledger.institution import Institution, Parts, running
from medledger.ledger.genesis import Founder, build_genesis
from medledger.ledger.ordering.embedded import EmbeddedOrderer
from medledger.ledger.tx import SignedTransaction
from medledger.protocol import contract_set

#: The throughput runs have one doctor ask a patient many times at once, which the
#: genesis limits on open requests exist to refuse.
UNLIMITED_REQUESTS = AccessSettings(
    max_open_requests=10**6, max_open_per_requester=10**6
).to_settings()


def bench_genesis(
    network_id: int, founders: Sequence[PrivateKey], custodian_keys: Sequence[bytes]
) -> SignedTransaction:
    """Founders with their custodian keys, 2-of-3 votes and checkpoints."""
    return build_genesis(
        network_id=network_id,
        name="bench",
        founders=[
            Founder(f"inst-{i}", f"Institution {i}", key.address, custodian)
            for i, (key, custodian) in enumerate(zip(founders, custodian_keys, strict=True))
        ],
        signer=founders[0],
        vote_threshold=2,
        checkpoint_threshold=2,
        roles=["doctor", "nurse", "verifier"],
        protocol=contract_set().protocol(),
        settings=UNLIMITED_REQUESTS,
    )


@asynccontextmanager
async def institution_in(
    work: Path, genesis: SignedTransaction, key: PrivateKey
) -> AsyncIterator[Institution]:
    """The first founder's institution on the embedded orderer, in ``work``."""
    parts = Parts(genesis=genesis, state_url=str(work / "ledger.db"),
                  vault_url=str(work / "vault.db"), member=key)  # fmt: skip
    async with running(parts, EmbeddedOrderer(work / "ordering.db")) as institution:
        yield institution
