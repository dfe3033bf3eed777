"""RFC 6962 (Certificate Transparency) Merkle tree hashes, proofs and verification.

Hazmat: this is the primitives layer. The ledger and its store build on it; they
decide which roots are trusted (signed tree heads), which this module does not.

Leaves are hashed as ``SHA-256(0x00 || data)`` and interior nodes as
``SHA-256(0x01 || left || right)``, so a leaf can never pass for a node. A tree of
``n > 1`` leaves splits at ``k``, the largest power of two below ``n``: the left part
is always a perfect subtree aligned on a multiple of its size, so storage only ever
has to hold perfect aligned subtrees (:class:`SubtreeSource`); ragged right edges
are recomputed from them.

Verification follows the iterative, bit-based algorithms of RFC 9162 sections
2.1.3.2 and 2.1.4.2, after first checking the proof has exactly the expected length.
"""

import hashlib
from collections.abc import Sequence
from typing import Protocol

from medledger.crypto.errors import InvalidProof
from medledger.errors import UsageError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "Frontier",
    "MemoryTree",
    "SubtreeSource",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root",
    "root_and_proofs",
    "subtree_root",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """Return the RFC 6962 hash of a leaf's data."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the RFC 6962 hash of an interior node from its children's hashes."""
    return hashlib.sha256(b"\x01" + left + right).digest()


class SubtreeSource(Protocol):
    """Anything that can return the hashes of perfect, aligned subtrees."""

    def perfect(self, level: int, index: int) -> bytes:
        """Return the hash of the perfect subtree ``(level, index)``.

        It covers leaves ``[index * 2**level, (index + 1) * 2**level)``; level 0 is
        the leaf hashes themselves.
        """
        ...


def _split(n: int) -> int:
    # The largest power of two strictly below n (n >= 2).
    return 1 << ((n - 1).bit_length() - 1)


def _short(digest: bytes) -> str:
    return digest[:4].hex() + ".."


def subtree_root(source: SubtreeSource, start: int, end: int) -> bytes:
    """Return MTH of leaves ``[start, end)``, asking ``source`` only for perfect subtrees."""
    if not 0 <= start < end:
        raise UsageError(f"subtree range [{start}, {end}) is empty or negative")
    n = end - start
    if n & (n - 1) == 0 and start % n == 0:
        return source.perfect(n.bit_length() - 1, start // n)
    mid = start + _split(n)
    return node_hash(subtree_root(source, start, mid), subtree_root(source, mid, end))


def root(source: SubtreeSource, size: int) -> bytes:
    """Return the root hash of the first ``size`` leaves of ``source``."""
    if size < 0:
        raise UsageError(f"tree size {size} is negative")
    return subtree_root(source, 0, size) if size else EMPTY_ROOT


def inclusion_proof(source: SubtreeSource, index: int, size: int) -> list[bytes]:
    """Return the RFC 6962 audit path for leaf ``index`` in the tree of ``size`` leaves."""
    if not 0 <= index < size:
        raise UsageError(f"leaf index {index} is out of range for a tree of size {size}")
    siblings = []
    start, end = 0, size
    while end - start > 1:
        mid = start + _split(end - start)
        if index < mid:
            siblings.append(subtree_root(source, mid, end))
            end = mid
        else:
            siblings.append(subtree_root(source, start, mid))
            start = mid
    # Walking down from the root finds siblings top first; the path lists them leaf first.
    siblings.reverse()
    return siblings


def consistency_proof(source: SubtreeSource, old_size: int, new_size: int) -> list[bytes]:
    """Return the RFC 6962 consistency proof between two sizes of the same tree.

    The proof is empty when ``old_size`` is 0 or equal to ``new_size``.
    """
    if not 0 <= old_size <= new_size:
        raise UsageError(f"cannot prove consistency from size {old_size} to {new_size}")
    if old_size in (0, new_size):
        return []
    siblings = []
    start, end = 0, new_size
    complete = True  # RFC 6962's flag: the old tree so far is the whole subtree
    while old_size != end:
        mid = start + _split(end - start)
        if old_size <= mid:
            siblings.append(subtree_root(source, mid, end))
            end = mid
        else:
            siblings.append(subtree_root(source, start, mid))
            start = mid
            complete = False
    siblings.reverse()
    # When the old tree is a whole subtree of the new one the verifier already has
    # its hash (the old root); otherwise the proof must start with it.
    return siblings if complete else [subtree_root(source, start, end), *siblings]


def _check_hashes(proof: Sequence[bytes], **named: bytes) -> None:
    for name, value in named.items():
        if len(value) != HASH_SIZE:
            raise InvalidProof(f"{name} has {len(value)} bytes, expected {HASH_SIZE}")
    for position, value in enumerate(proof):
        if len(value) != HASH_SIZE:
            raise InvalidProof(
                f"proof hash {position} has {len(value)} bytes, expected {HASH_SIZE}"
            )


def _path_length(fn: int, sn: int) -> int:
    # How many hashes the RFC 9162 loop consumes from node fn up to the root of a
    # tree whose last node is sn: one per level where fn and sn differ, then one per
    # level where the right edge fn == sn has a left sibling (a set bit of fn).
    inner = (fn ^ sn).bit_length()
    return inner + (fn >> inner).bit_count()


def _check_length(proof: Sequence[bytes], expected: int) -> None:
    if len(proof) != expected:
        raise InvalidProof(f"proof has {len(proof)} hashes, expected {expected}")


def _climb(
    fn: int, sn: int, seeds: tuple[bytes, bytes], path: Sequence[bytes]
) -> tuple[bytes, bytes]:
    # The shared RFC 9162 loop. seeds[0] only absorbs left siblings (it becomes the
    # old root in a consistency proof); seeds[1] absorbs every sibling. The caller
    # has checked len(path) == _path_length(fn, sn), which guarantees sn reaches 0
    # exactly when the path runs out.
    first, second = seeds
    for sibling in path:
        if fn & 1 or fn == sn:
            first = node_hash(sibling, first)
            second = node_hash(sibling, second)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            second = node_hash(second, sibling)
        fn >>= 1
        sn >>= 1
    return first, second


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` with ``root``."""
    if not 0 <= index < size:
        raise InvalidProof(f"leaf index {index} is out of range for a tree of size {size}")
    _check_hashes(proof, leaf_hash=leaf_hash, root=root)
    _check_length(proof, _path_length(index, size - 1))
    _, computed = _climb(index, size - 1, (leaf_hash, leaf_hash), proof)
    if computed != root:
        raise InvalidProof(
            f"inclusion proof for leaf {index} of {size} gives root {_short(computed)}, "
            f"expected {_short(root)}"
        )


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree of ``new_size`` with ``new_root`` extends the one of ``old_size``."""
    if old_size < 0:
        raise InvalidProof(f"old tree size {old_size} is negative")
    if old_size > new_size:
        raise InvalidProof(f"old tree size {old_size} is larger than new tree size {new_size}")
    _check_hashes(proof, old_root=old_root, new_root=new_root)
    if old_size in (0, new_size):
        _check_length(proof, 0)
        if old_size == 0 and old_root != EMPTY_ROOT:
            raise InvalidProof(f"old root {_short(old_root)} is not the empty tree's root")
        if old_size == new_size and old_root != new_root:
            raise InvalidProof(
                f"trees of equal size {old_size} have different roots "
                f"{_short(old_root)} and {_short(new_root)}"
            )
        return
    # Skip the levels where the old tree's last node is a right child: the proof
    # starts at the lowest node that is a whole subtree of the old tree.
    shift = (old_size & -old_size).bit_length() - 1
    fn, sn = (old_size - 1) >> shift, (new_size - 1) >> shift
    if old_size == 1 << shift:
        # The old tree is itself a perfect subtree, so the proof leaves out its hash.
        _check_length(proof, _path_length(fn, sn))
        path: Sequence[bytes] = [old_root, *proof]
    else:
        _check_length(proof, 1 + _path_length(fn, sn))
        path = proof
    computed_old, computed_new = _climb(fn, sn, (path[0], path[0]), path[1:])
    if computed_old != old_root:
        raise InvalidProof(
            f"consistency proof from {old_size} to {new_size} gives old root "
            f"{_short(computed_old)}, expected {_short(old_root)}"
        )
    if computed_new != new_root:
        raise InvalidProof(
            f"consistency proof from {old_size} to {new_size} gives new root "
            f"{_short(computed_new)}, expected {_short(new_root)}"
        )


def root_and_proofs(leaf_hashes: Sequence[bytes]) -> tuple[bytes, list[list[bytes]]]:
    """The root of a whole tree of leaf hashes and every leaf's audit path, in one pass.

    O(n log n) list appends and n - 1 node hashes, where n separate
    :func:`inclusion_proof` calls would rebuild the same subtrees over and over.
    """
    if not leaf_hashes:
        return EMPTY_ROOT, []
    proofs: list[list[bytes]] = [[] for _ in leaf_hashes]
    return _build(leaf_hashes, 0, len(leaf_hashes), proofs), proofs


def _build(leaves: Sequence[bytes], start: int, end: int, proofs: list[list[bytes]]) -> bytes:
    if end - start == 1:
        return leaves[start]
    mid = start + _split(end - start)
    left = _build(leaves, start, mid, proofs)
    right = _build(leaves, mid, end, proofs)
    # Deeper levels were appended first, so each path lists siblings leaf first.
    for i in range(start, mid):
        proofs[i].append(right)
    for i in range(mid, end):
        proofs[i].append(left)
    return node_hash(left, right)


class MemoryTree:
    """An in-memory tree of leaf hashes that keeps every perfect node; for tests and small trees."""

    def __init__(self) -> None:
        # _levels[level][index] is the hash of perfect subtree (level, index).
        self._levels: list[list[bytes]] = [[]]

    @property
    def size(self) -> int:
        """The number of leaves appended so far."""
        return len(self._levels[0])

    def append(self, leaf_hash: bytes) -> None:
        """Append a leaf hash (not leaf data) and cache the perfect nodes it completes."""
        if len(leaf_hash) != HASH_SIZE:
            raise UsageError(f"leaf hash must be {HASH_SIZE} bytes, got {len(leaf_hash)}")
        self._levels[0].append(leaf_hash)
        level = 0
        while len(self._levels[level]) % 2 == 0:
            below = self._levels[level]
            if level + 1 == len(self._levels):
                self._levels.append([])
            self._levels[level + 1].append(node_hash(below[-2], below[-1]))
            level += 1

    def perfect(self, level: int, index: int) -> bytes:
        """Return the hash of perfect subtree ``(level, index)``; it must be complete."""
        if not (0 <= level < len(self._levels) and 0 <= index < len(self._levels[level])):
            raise UsageError(f"perfect subtree ({level}, {index}) is not complete")
        return self._levels[level][index]

    def root(self) -> bytes:
        """Return the root hash of the whole tree."""
        return root(self, self.size)


class Frontier:
    """The right edge of a tree: one perfect subtree hash per set bit of its size.

    Appending costs O(1) hashes amortised and memory stays O(log n), so the ledger can
    extend a tree of any size without loading it.
    """

    def __init__(self) -> None:
        self._size = 0
        # Perfect subtree hashes from the largest (leftmost) to the smallest.
        self._hashes: list[bytes] = []

    @property
    def size(self) -> int:
        """The number of leaves appended so far."""
        return self._size

    def append(self, leaf_hash: bytes) -> list[tuple[int, int, bytes]]:
        """Append a leaf hash; return each perfect subtree ``(level, index, hash)`` it completed.

        Only levels >= 1 are returned: the caller already has the leaf hash.
        """
        if len(leaf_hash) != HASH_SIZE:
            raise UsageError(f"leaf hash must be {HASH_SIZE} bytes, got {len(leaf_hash)}")
        completed = []
        current = leaf_hash
        position = self._size
        level = 0
        # Each trailing set bit of the old size is a subtree the new leaf completes.
        while position & 1:
            current = node_hash(self._hashes.pop(), current)
            position >>= 1
            level += 1
            completed.append((level, position, current))
        self._hashes.append(current)
        self._size += 1
        return completed

    def root(self) -> bytes:
        """Return the root hash of the tree appended so far."""
        if not self._hashes:
            return EMPTY_ROOT
        current = self._hashes[-1]
        for left in reversed(self._hashes[:-1]):
            current = node_hash(left, current)
        return current

    def copy(self) -> "Frontier":
        """An independent frontier at the same size, to extend tentatively."""
        twin = Frontier()
        twin._size = self._size
        twin._hashes = list(self._hashes)
        return twin

    @classmethod
    def restore(cls, source: SubtreeSource, size: int) -> "Frontier":
        """Rebuild the frontier of the first ``size`` leaves from stored perfect subtrees."""
        if size < 0:
            raise UsageError(f"tree size {size} is negative")
        frontier = cls()
        start = 0
        for level in reversed(range(size.bit_length())):
            if size >> level & 1:
                frontier._hashes.append(source.perfect(level, start >> level))
                start += 1 << level
        frontier._size = size
        return frontier
