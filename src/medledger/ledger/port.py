"""What a client needs of a ledger, wherever it runs: its network, its state, and to submit.

A :class:`~medledger.ledger.node.LedgerNode` in process satisfies it, and so does a
node's API seen from elsewhere (``medledger.node.proven_state.RemoteLedger``, whose state
is believed only when proven into a cosigned checkpoint). Code written against it
works the same on a sandbox home and on a consortium's node.
"""

from __future__ import annotations

from typing import Any, Protocol

from medledger.crypto.keys import PrivateKey
from medledger.ledger.contracts.base import StateView


class Ledger(Protocol):
    network_id: int

    @property
    def store(self) -> StateView: ...

    async def submit_payload(
        self, key: PrivateKey, tx_type: str, payload: dict[str, Any]
    ) -> Any: ...
