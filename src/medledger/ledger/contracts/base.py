"""What a contract is: deterministic handlers that turn a transaction into writes.

Handlers do no I/O and read no clock: they see the transaction, the orderer's
timestamp and a read-only view of state, and return the writes to make. That is
what lets every node reach the same state from the same log.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from medledger.crypto.keys import Address
from medledger.errors import UsageError
from medledger.ledger.errors import UnknownTransactionType
from medledger.ledger.tx import SignedTransaction


@dataclass(frozen=True)
class TxContext:
    """Everything a handler may know about the transaction it executes."""

    tx_id: bytes
    sender: Address
    nonce: int
    tx_type: str
    payload: Mapping[str, Any]
    #: Position the transaction takes in the accepted log if it is accepted.
    index: int
    #: The ordering service's timestamp of the block, the same on every node.
    timestamp_ns: int
    network_id: int
    log: LogView

    @classmethod
    def of(
        cls, stx: SignedTransaction, *, index: int, timestamp_ns: int, log: LogView
    ) -> TxContext:
        tx = stx.tx
        return cls(
            tx_id=stx.tx_id,
            sender=tx.sender,
            nonce=tx.nonce,
            tx_type=tx.tx_type,
            payload=tx.payload,
            index=index,
            timestamp_ns=timestamp_ns,
            network_id=tx.network_id,
            log=log,
        )


class LogView(Protocol):
    """Read access to the accepted log as of the start of the current block."""

    @property
    def committed_size(self) -> int: ...

    def root(self, size: int) -> bytes:
        """RFC 6962 root of the first ``size`` entries; ``size <= committed_size``."""
        ...

    def timestamp(self, size: int) -> int:
        """Orderer timestamp of entry ``size - 1``: the time of a log of ``size`` entries."""
        ...


class StateView(Protocol):
    def get(self, ns: str, key: str) -> Any | None:
        """The JSON value stored under ``(ns, key)``, or None."""
        ...


@dataclass(frozen=True)
class Write:
    """Set ``(ns, key)`` to a JSON value, or delete it when ``value`` is None."""

    ns: str
    key: str
    value: Any | None


Handler = Callable[[TxContext, StateView], Sequence[Write]]


class ContractRegistry:
    """Maps transaction types to their handlers; domain packages register theirs.

    ``version`` names the rules the handlers implement; with the set of types it is the
    protocol a genesis pins, so that nodes replaying one log run the same contracts.
    """

    def __init__(self, version: str = "medledger-ledger/1") -> None:
        self.version = version
        self._handlers: dict[str, Handler] = {}

    def register(self, tx_type: str, handler: Handler) -> None:
        if tx_type in self._handlers:
            raise UsageError(f"a handler for {tx_type!r} is already registered")
        self._handlers[tx_type] = handler

    def register_all(self, handlers: Mapping[str, Handler]) -> None:
        for tx_type, handler in handlers.items():
            self.register(tx_type, handler)

    def handler(self, tx_type: str) -> Handler:
        try:
            return self._handlers[tx_type]
        except KeyError:
            raise UnknownTransactionType(
                f"no contract handles transactions of type {tx_type!r}"
            ) from None

    @property
    def types(self) -> frozenset[str]:
        return frozenset(self._handlers)

    def protocol(self) -> dict[str, str]:
        """``{"version", "types"}``: the rules' version and a digest of the types handled."""
        digest = hashlib.sha256("\n".join(sorted(self._handlers)).encode()).hexdigest()
        return {"version": self.version, "types": "0x" + digest}
