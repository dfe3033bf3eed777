"""Bytes as the ledger's JSON spells them: ``0x`` and hex digits, nothing else."""

from __future__ import annotations

import re

_HEX = re.compile(r"0x(?:[0-9a-fA-F]{2})*")


def parse_hex(value: object, length: int | None = None) -> bytes:
    """``0x``-prefixed hex (of ``length`` bytes, if given) as bytes; raises ValueError.

    A pattern, not ``bytes.fromhex`` alone: that skips spaces, so two spellings would
    name the same bytes and a short value could pass for a long one.
    """
    if not isinstance(value, str) or not _HEX.fullmatch(value):
        raise ValueError("expected 0x-prefixed hex")
    if length is not None and len(value) != 2 + 2 * length:
        raise ValueError(f"expected {length} bytes as 0x-prefixed hex")
    return bytes.fromhex(value[2:])
