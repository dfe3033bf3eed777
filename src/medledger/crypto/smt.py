"""A compact sparse Merkle tree over 256-bit paths: batch updates, proofs, verification.

Hazmat: this is the primitives layer. It hashes and walks a tree whose nodes some
store keeps (:class:`NodeSource`); it decides nothing about which root is trusted.

Every entry is a leaf at the position its path's bits lead to, but no deeper than
it needs to be: a subtree that holds one leaf *is* that leaf, and an empty subtree
hashes as 32 zero bytes. So the root depends only on the set of entries, never on
the order they were written in, and a tree of ``n`` random paths is about
``log2(n)`` deep rather than 256. Hashes (SHA-256) are domain-separated:

- leaf: ``H(0x00 || path || value_hash)``
- node: ``H(0x01 || left || right)``, an empty side being ``EMPTY``

An inclusion proof is the list of sibling hashes from the root down to the leaf.
An exclusion proof is the same list down to where the path ends: at an empty
subtree, or at another leaf whose path shares every bit walked so far (so the
absent path would have had to be in its place). Positions are ``(depth, prefix)``,
the prefix being the path's first ``depth`` bits as an integer.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from medledger.crypto.errors import InvalidProof

__all__ = [
    "EMPTY",
    "NODE_SIZE",
    "PATH_BITS",
    "NodeSource",
    "Position",
    "Proof",
    "check_node",
    "inner",
    "leaf",
    "leaf_hash",
    "node_hash",
    "prove",
    "update",
    "verify",
]

PATH_BITS = 256
EMPTY = bytes(32)
#: A node is its hash, then what was hashed: a kind byte (0 leaf, 1 inner, the same byte
#: that separates the two domains) and two 32-byte halves: the leaf's path and value
#: hash, or the inner node's children. Plain bytes: the update loop makes millions.
NODE_SIZE = 97
_sha256 = hashlib.sha256

Position = tuple[int, int]


def leaf(path: bytes, value_hash: bytes) -> bytes:
    body = b"\x00" + path + value_hash
    return _sha256(body).digest() + body


def inner(left: bytes, right: bytes) -> bytes:
    body = b"\x01" + left + right
    return _sha256(body).digest() + body


def leaf_hash(path: bytes, value_hash: bytes) -> bytes:
    return _sha256(b"\x00" + path + value_hash).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return _sha256(b"\x01" + left + right).digest()


def check_node(node: bytes) -> bytes:
    """A node read from storage, if its hash is the hash of its contents."""
    if len(node) != NODE_SIZE or node[32] > 1 or _sha256(node[32:]).digest() != node[:32]:
        raise ValueError("a stored tree node does not match its hash")
    return node


class NodeSource(Protocol):
    """Where the nodes of one version of the tree are read from."""

    def node(self, depth: int, prefix: int) -> bytes | None:
        """The node at a position, or None where the subtree is empty or inside a leaf."""
        ...


# -- batch update ------------------------------------------------------------------

# One write: (path as an integer, path, value hash or None to delete), sorted by path.
_Item = tuple[int, bytes, bytes | None]


def update(
    source: NodeSource, writes: Mapping[bytes, bytes | None]
) -> tuple[bytes, dict[Position, bytes | None]]:
    """Apply ``writes`` (path -> value hash, None deletes) to the tree ``source`` holds.

    Returns the new root and every position whose node changed (None: now empty).
    Each position is read at most once, so a batch shares the walk of its upper
    levels: the cost is about ``len(writes) * (depth - log2(len(writes)))`` hashes.
    """
    for path in writes:
        if len(path) != 32:
            raise ValueError("a path is 32 bytes")
    items = sorted((int.from_bytes(p, "big"), p, v) for p, v in writes.items())
    changes: dict[Position, bytes | None] = {}
    root = source.node(0, 0)
    if items:
        root = _Updater(source, items, changes).update(0, 0, root, 0, len(items))
    return (EMPTY if root is None else root[:32]), changes


class _Updater:
    """One batch update; the hot path of the state committer, hence the plain slicing."""

    def __init__(
        self, source: NodeSource, items: list[_Item], changes: dict[Position, bytes | None]
    ) -> None:
        self.node = source.node
        self.items = items
        self.changes = changes

    def update(
        self, depth: int, prefix: int, current: bytes | None, lo: int, hi: int
    ) -> bytes | None:
        if current is None or current[32] == 0:
            return self.rebuild(depth, prefix, current, lo, hi)
        shift = PATH_BITS - 1 - depth
        mid = bisect_left(self.items, ((((prefix << 1) | 1) << shift),), lo, hi)
        left_prefix = prefix << 1
        right_prefix = left_prefix | 1
        left = right = None
        left_hash, right_hash = current[33:65], current[65:97]
        if mid > lo:
            child = None if left_hash == EMPTY else self.node(depth + 1, left_prefix)
            left = self.update(depth + 1, left_prefix, child, lo, mid)
            left_hash = EMPTY if left is None else left[:32]
        if hi > mid:
            child = None if right_hash == EMPTY else self.node(depth + 1, right_prefix)
            right = self.update(depth + 1, right_prefix, child, mid, hi)
            right_hash = EMPTY if right is None else right[:32]
        if left_hash == EMPTY:
            if right_hash == EMPTY:
                self.changes[(depth, prefix)] = None
                return None
            return self.collapse(depth, prefix, right_prefix, right, hi > mid)
        if right_hash == EMPTY:
            return self.collapse(depth, prefix, left_prefix, left, mid > lo)
        node = inner(left_hash, right_hash)
        self.changes[(depth, prefix)] = node
        return node

    def collapse(
        self, depth: int, prefix: int, side: int, survivor: bytes | None, written: bool
    ) -> bytes:
        """One side is empty: if the other is a single leaf, it moves up to here."""
        if survivor is None and not written:
            survivor = self.node(depth + 1, side)
        assert survivor is not None
        if survivor[32] == 0:
            self.changes[(depth + 1, side)] = None
            self.changes[(depth, prefix)] = survivor
            return survivor
        node = inner(EMPTY, survivor[:32]) if side & 1 else inner(survivor[:32], EMPTY)
        self.changes[(depth, prefix)] = node
        return node

    def rebuild(
        self, depth: int, prefix: int, current: bytes | None, lo: int, hi: int
    ) -> bytes | None:
        """Zero or one entry here: merge it with the writes and build the subtree afresh."""
        items = self.items
        if hi - lo == 1 and items[lo][2] is not None:
            key, path, value = items[lo]
            assert value is not None
            if current is None or current[33:65] == path:
                node = leaf(path, value)
                self.changes[(depth, prefix)] = node
                return node
            other = current[33:65]
            return self.pair(depth, (key, path, value),
                             (int.from_bytes(other, "big"), other, current[65:97]))  # fmt: skip
        merged = [item for item in items[lo:hi] if item[2] is not None]
        if current is not None:
            path = current[33:65]
            key = int.from_bytes(path, "big")
            if not any(item[0] == key for item in items[lo:hi]):
                merged.insert(bisect_left(merged, (key,)), (key, path, current[65:97]))
        if current is None and not merged:
            return None
        return self.build(depth, prefix, merged, 0, len(merged))

    def pair(self, depth: int, one: _Item, other: _Item) -> bytes:
        """Two entries below a position: a chain down to the first bit they differ in."""
        split = PATH_BITS - (one[0] ^ other[0]).bit_length()
        low, high = (one, other) if one[0] < other[0] else (other, one)
        low_leaf = leaf(low[1], low[2])  # type: ignore[arg-type]
        high_leaf = leaf(high[1], high[2])  # type: ignore[arg-type]
        base = low[0] >> (PATH_BITS - split)
        changes = self.changes
        changes[(split + 1, base << 1)] = low_leaf
        changes[(split + 1, (base << 1) | 1)] = high_leaf
        node = inner(low_leaf[:32], high_leaf[:32])
        changes[(split, base)] = node
        for level in range(split - 1, depth - 1, -1):
            bit = base & 1
            base >>= 1
            node = inner(EMPTY, node[:32]) if bit else inner(node[:32], EMPTY)
            changes[(level, base)] = node
        return node

    def build(
        self, depth: int, prefix: int, items: list[_Item], lo: int, hi: int
    ) -> bytes | None:
        """A subtree holding exactly ``items[lo:hi]``, none of them deletions."""
        if hi == lo:
            self.changes[(depth, prefix)] = None
            return None
        if hi - lo == 1:
            _, path, value = items[lo]
            assert value is not None
            node = leaf(path, value)
            self.changes[(depth, prefix)] = node
            return node
        shift = PATH_BITS - 1 - depth
        mid = bisect_left(items, ((((prefix << 1) | 1) << shift),), lo, hi)
        left = self.build(depth + 1, prefix << 1, items, lo, mid)
        right = self.build(depth + 1, (prefix << 1) | 1, items, mid, hi)
        node = inner(EMPTY if left is None else left[:32], EMPTY if right is None else right[:32])
        self.changes[(depth, prefix)] = node
        return node


# -- proofs ------------------------------------------------------------------------


@dataclass(frozen=True)
class Proof:
    """Where ``path`` ends in a tree: its siblings from the root down, and what is there.

    ``leaf`` is the entry found at the end (its path and value hash), or None where
    the subtree is empty. It is the entry for ``path`` itself (inclusion) or another
    one (exclusion).
    """

    path: bytes
    siblings: tuple[bytes, ...]
    leaf: tuple[bytes, bytes] | None

    @property
    def value_hash(self) -> bytes | None:
        """The proven value hash of ``path``, or None if the proof shows it absent."""
        if self.leaf is not None and self.leaf[0] == self.path:
            return self.leaf[1]
        return None

    def size(self) -> int:
        """Bytes on the wire in the compact form: a bitmap of empty siblings, then the rest."""
        present = sum(1 for s in self.siblings if s != EMPTY)
        return 32 + 2 + (len(self.siblings) + 7) // 8 + 32 * present + (64 if self.leaf else 0)


def prove(source: NodeSource, path: bytes) -> Proof:
    """Walk ``path`` down the tree ``source`` holds."""
    if len(path) != 32:
        raise ValueError("a path is 32 bytes")
    key = int.from_bytes(path, "big")
    siblings: list[bytes] = []
    node = source.node(0, 0)
    depth = prefix = 0
    while node is not None and node[32] == 1:
        bit = (key >> (PATH_BITS - 1 - depth)) & 1
        left, right = node[33:65], node[65:97]
        siblings.append(left if bit else right)
        depth, prefix = depth + 1, (prefix << 1) | bit
        if (right if bit else left) == EMPTY:
            node = None
            break
        node = source.node(depth, prefix)
        if node is None:
            raise LookupError(f"the tree has no node at depth {depth} below an inner node")
    found = None if node is None else (node[33:65], node[65:97])
    return Proof(path, tuple(siblings), found)


def verify(root: bytes, proof: Proof, value_hash: bytes | None) -> None:
    """Check that ``proof`` shows ``proof.path`` holding ``value_hash`` (None: absent)
    under ``root``; raise :class:`InvalidProof` otherwise."""
    path, siblings, leaf = proof.path, proof.siblings, proof.leaf
    depth = len(siblings)
    if len(path) != 32 or depth > PATH_BITS or any(len(s) != 32 for s in siblings):
        raise InvalidProof("malformed state proof")
    key = int.from_bytes(path, "big")
    if leaf is None:
        if value_hash is not None:
            raise InvalidProof("the proof shows the entry absent")
        if depth == 0 and root != EMPTY:
            raise InvalidProof("an empty-tree proof against a non-empty root")
        computed = EMPTY
    else:
        found_path, found_value = leaf
        if len(found_path) != 32 or len(found_value) != 32:
            raise InvalidProof("malformed state proof leaf")
        if found_path == path:
            if value_hash is None:
                raise InvalidProof("the proof shows the entry present")
            if found_value != value_hash:
                raise InvalidProof("the entry holds another value")
        else:
            if value_hash is not None:
                raise InvalidProof("the proof ends at another entry")
            other = int.from_bytes(found_path, "big")
            if depth and (other ^ key) >> (PATH_BITS - depth):
                raise InvalidProof("the leaf found is not on the path walked")
        computed = leaf_hash(found_path, found_value)
    for level in range(depth - 1, -1, -1):
        sibling = siblings[level]
        if (key >> (PATH_BITS - 1 - level)) & 1:
            computed = node_hash(sibling, computed)
        else:
            computed = node_hash(computed, sibling)
    if computed != root:
        raise InvalidProof("the proof does not lead to the root")


def root_of(entries: Sequence[tuple[bytes, bytes]]) -> bytes:
    """The root of a tree holding exactly ``entries`` (path, value hash), built in memory:
    a reference for tests and for checking a store from scratch."""
    source = _Empty()
    root, _ = update(source, dict(entries))
    return root


class _Empty:
    def node(self, depth: int, prefix: int) -> bytes | None:
        return None
