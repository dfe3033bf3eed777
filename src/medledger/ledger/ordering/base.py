"""The ordering service contract: blocks of opaque transactions in one total order.

An ordering backend knows nothing of what it orders. It gives every block a
contiguous sequence number (1, 2, 3, ...) and a timestamp, stores it durably
before acknowledging it, and replays the same blocks in the same order to every
node that asks. Nodes verify and execute the transactions themselves.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from medledger.errors import InvalidInput

_LENGTH = struct.Struct(">I")
#: What a block body adds to each transaction it holds.
LENGTH_PREFIX = _LENGTH.size


class MalformedBlock(InvalidInput):
    """A block payload read from the ordering service could not be decoded."""


@dataclass(frozen=True)
class Block:
    """One ordered block: its sequence number, the orderer's timestamp, its transactions."""

    seq: int
    timestamp_ns: int
    txs: tuple[bytes, ...]


class Orderer(Protocol):
    """What a ledger node needs from an ordering backend."""

    async def append(self, txs: Sequence[bytes]) -> int:
        """Order ``txs`` as one block, durably; return the block's sequence number."""
        ...

    def blocks(self, after_seq: int) -> AsyncIterator[Block]:
        """Yield every block with ``seq > after_seq`` in order, then new ones as they come.

        The iterator never ends on its own; the caller stops consuming it.
        """
        ...

    async def head_seq(self) -> int:
        """The sequence number of the last block ordered so far, by anyone."""
        ...

    async def close(self) -> None:
        """Release connections and files. Acknowledged blocks stay durable."""
        ...


def encode_block_payload(txs: Sequence[bytes]) -> bytes:
    """Length-prefix each transaction: the wire and storage form of a block body."""
    parts: list[bytes] = []
    for tx in txs:
        parts.append(_LENGTH.pack(len(tx)))
        parts.append(tx)
    return b"".join(parts)


def decode_block_payload(payload: bytes) -> tuple[bytes, ...]:
    """Inverse of :func:`encode_block_payload`; raises :class:`MalformedBlock`."""
    txs: list[bytes] = []
    offset = 0
    size = len(payload)
    while offset < size:
        if offset + _LENGTH.size > size:
            raise MalformedBlock(f"truncated length prefix at byte {offset}")
        (length,) = _LENGTH.unpack_from(payload, offset)
        offset += _LENGTH.size
        if offset + length > size:
            raise MalformedBlock(
                f"transaction of {length} bytes overruns the block at byte {offset}"
            )
        txs.append(payload[offset : offset + length])
        offset += length
    return tuple(txs)
