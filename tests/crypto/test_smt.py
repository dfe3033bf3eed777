"""The compact sparse Merkle tree against a naive recursive definition, known answers and
forged proofs."""

from __future__ import annotations

import dataclasses
import hashlib
import random
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medledger.crypto import smt
from medledger.crypto.errors import InvalidProof
from tests.crypto._vectors import load

EMPTY = bytes(32)
Entries = Mapping[bytes, bytes]
Position = tuple[int, int]

# -- the naive reference -------------------------------------------------------------
# Written from the definition alone (it shares no code with smt.py): it recomputes every
# subtree from the whole entry set, which is slow and obviously right.


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def bit(path: bytes, depth: int) -> int:
    return (path[depth // 8] >> (7 - depth % 8)) & 1


def halves(entries: Entries, depth: int) -> tuple[dict[bytes, bytes], dict[bytes, bytes]]:
    left = {p: v for p, v in entries.items() if bit(p, depth) == 0}
    right = {p: v for p, v in entries.items() if bit(p, depth) == 1}
    return left, right


def naive_root(entries: Entries, depth: int = 0) -> bytes:
    """The root of a compact SMT holding exactly ``entries`` (path -> value hash)."""
    if not entries:
        return EMPTY
    if len(entries) == 1:
        [(path, value)] = entries.items()
        return sha(b"\x00" + path + value)
    left, right = halves(entries, depth)
    return sha(b"\x01" + naive_root(left, depth + 1) + naive_root(right, depth + 1))


def naive_nodes(entries: Entries, depth: int = 0, prefix: int = 0) -> dict[Position, bytes]:
    """Every node a canonical tree of ``entries`` stores, by (depth, prefix)."""
    if not entries:
        return {}
    if len(entries) == 1:
        [(path, value)] = entries.items()
        body = b"\x00" + path + value
        return {(depth, prefix): sha(body) + body}
    left, right = halves(entries, depth)
    body = b"\x01" + naive_root(left, depth + 1) + naive_root(right, depth + 1)
    nodes = {(depth, prefix): sha(body) + body}
    nodes.update(naive_nodes(left, depth + 1, prefix << 1))
    nodes.update(naive_nodes(right, depth + 1, (prefix << 1) | 1))
    return nodes


def naive_proof(entries: Entries, path: bytes) -> tuple[list[bytes], tuple[bytes, bytes] | None]:
    """The siblings from the root down to where ``path`` ends, and the entry found there."""
    siblings: list[bytes] = []
    depth = 0
    while len(entries) > 1:
        left, right = halves(entries, depth)
        entries, other = (right, left) if bit(path, depth) else (left, right)
        siblings.append(naive_root(other, depth + 1))
        depth += 1
    found = next(iter(entries.items()), None)
    return siblings, found


def test_the_naive_reference_matches_hand_computed_hashes() -> None:
    a, b = bytes(32), b"\x80" + bytes(31)
    va, vb = sha(b"a"), sha(b"b")
    leaf_a, leaf_b = sha(b"\x00" + a + va), sha(b"\x00" + b + vb)
    assert naive_root({}) == EMPTY
    assert naive_root({a: va}) == leaf_a
    assert naive_root({a: va, b: vb}) == sha(b"\x01" + leaf_a + leaf_b)
    c = b"\x40" + bytes(31)
    vc = sha(b"c")
    left = sha(b"\x01" + leaf_a + sha(b"\x00" + c + vc))
    assert naive_root({a: va, c: vc}) == sha(b"\x01" + left + EMPTY)


# -- an in-memory store --------------------------------------------------------------


class MemorySource:
    def __init__(self) -> None:
        self.nodes: dict[Position, bytes] = {}

    def node(self, depth: int, prefix: int) -> bytes | None:
        return self.nodes.get((depth, prefix))

    def apply(self, changes: Mapping[Position, bytes | None]) -> None:
        for position, node in changes.items():
            if node is None:
                self.nodes.pop(position, None)
            else:
                self.nodes[position] = node

    def root(self) -> bytes:
        top = self.nodes.get((0, 0))
        return EMPTY if top is None else top[:32]


def build(entries: Entries) -> tuple[bytes, MemorySource]:
    source = MemorySource()
    root, changes = smt.update(source, dict(entries))
    source.apply(changes)
    return root, source


def path_of(label: str) -> bytes:
    return sha(label.encode())


def value_of(label: str) -> bytes:
    return sha(b"value:" + label.encode())


def flip_bit(data: bytes, index: int) -> bytes:
    """``data`` with bit ``index`` flipped, counting from the most significant."""
    changed = bytearray(data)
    changed[index // 8] ^= 0x80 >> (index % 8)
    return bytes(changed)


def flip_bits(base: bytes, bits: set[int]) -> bytes:
    for index in bits:
        base = flip_bit(base, index)
    return base


# -- property tests --------------------------------------------------------------------

# A few bases and paths that differ from them in chosen bits, late ones included, so that
# batches share long prefixes and trees run deep (down to 256 levels).
BASES = [bytes(32), b"\xff" * 32, path_of("base-a"), path_of("base-b")]
paths = st.builds(
    flip_bits,
    st.sampled_from(BASES),
    st.sets(st.one_of(st.integers(0, 255), st.sampled_from([0, 1, 200, 254, 255])), max_size=2),
)
values = st.sampled_from([value_of(str(i)) for i in range(3)])
batches = st.lists(
    st.dictionaries(paths, st.one_of(st.none(), values), max_size=8), min_size=1, max_size=6
)


@settings(max_examples=200, deadline=None)
@given(batches)
def test_incremental_batches_keep_the_canonical_tree(plan: list[dict[bytes, bytes | None]]) -> None:
    source = MemorySource()
    model: dict[bytes, bytes] = {}
    for batch in plan:
        root, changes = smt.update(source, batch)
        source.apply(changes)
        for path, value in batch.items():
            if value is None:
                model.pop(path, None)
            else:
                model[path] = value
        assert root == naive_root(model)
        assert source.root() == root
        # Exactly the canonical nodes: nothing dangling, nothing missing.
        assert source.nodes == naive_nodes(model)
    _, scratch = build(model)
    assert source.nodes == scratch.nodes


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(paths, values, max_size=12), st.randoms(use_true_random=False))
def test_the_root_depends_on_the_set_only(entries: dict[bytes, bytes], rnd: random.Random) -> None:
    root, whole = build(entries)
    assert root == naive_root(entries)
    order = list(entries.items())
    rnd.shuffle(order)
    reversed_root, _ = build(dict(reversed(order)))
    assert reversed_root == root
    # Written one entry at a time, and in random batches, in a random order.
    for cut in (1, rnd.randint(1, 4)):
        source = MemorySource()
        for start in range(0, len(order), cut):
            _, changes = smt.update(source, dict(order[start : start + cut]))
            source.apply(changes)
        assert source.root() == root
        assert source.nodes == whole.nodes


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(paths, values, max_size=10), st.lists(paths, max_size=4))
def test_every_proof_verifies_and_says_what_the_tree_holds(
    entries: dict[bytes, bytes], absent: list[bytes]
) -> None:
    root, source = build(entries)
    for path in [*entries, *absent]:
        proof = smt.prove(source, path)
        expected = entries.get(path)
        assert proof.value_hash == expected
        siblings, found = naive_proof(entries, path)
        assert list(proof.siblings) == siblings and proof.leaf == found
        smt.verify(root, proof, expected)
        wrong = value_of("other") if expected is None else None
        with pytest.raises(InvalidProof):
            smt.verify(root, proof, wrong)


def test_deleting_absent_keys_changes_nothing() -> None:
    entries = {path_of(str(i)): value_of(str(i)) for i in range(5)}
    root, source = build(entries)
    before = dict(source.nodes)
    new_root, changes = smt.update(source, {path_of("absent"): None, flip_bit(BASES[0], 3): None})
    source.apply(changes)
    assert new_root == root and source.nodes == before
    assert smt.update(MemorySource(), {path_of("x"): None}) == (EMPTY, {})


def test_paths_differing_in_the_last_bit_go_256_levels_deep() -> None:
    a = path_of("deep")
    b = flip_bit(a, 255)
    root, source = build({a: value_of("a"), b: value_of("b")})
    assert root == naive_root({a: value_of("a"), b: value_of("b")})
    proof = smt.prove(source, b)
    assert len(proof.siblings) == 256 and proof.siblings[:255] == (EMPTY,) * 255
    smt.verify(root, proof, value_of("b"))
    # Deleting one pulls the other back up to the root.
    root, changes = smt.update(source, {a: None})
    source.apply(changes)
    assert root == smt.leaf_hash(b, value_of("b")) and set(source.nodes) == {(0, 0)}


def test_paths_must_be_32_bytes() -> None:
    with pytest.raises(ValueError):
        smt.update(MemorySource(), {b"short": value_of("x")})
    with pytest.raises(ValueError):
        smt.prove(MemorySource(), bytes(31))


def test_root_of_is_the_root_of_the_set() -> None:
    entries = {path_of(str(i)): value_of(str(i)) for i in range(20)}
    assert smt.root_of(list(entries.items())) == naive_root(entries)
    assert smt.root_of([]) == EMPTY


# -- forged proofs -----------------------------------------------------------------------

A, B, C, D = (bytes([first]) + bytes(31) for first in (0x00, 0x80, 0x40, 0xC0))


def two_leaf_tree() -> tuple[bytes, MemorySource, dict[bytes, bytes]]:
    """A and B split at the first bit; C (absent) ends at A, D (absent) at B."""
    entries = {A: value_of("a"), B: value_of("b")}
    root, source = build(entries)
    return root, source, entries


def test_exclusion_proof_ending_at_an_empty_subtree() -> None:
    entries = {A: value_of("a"), C: value_of("c")}
    root, source = build(entries)
    proof = smt.prove(source, B)
    assert proof.leaf is None and proof.siblings == (naive_root(entries, 1),)
    smt.verify(root, proof, None)
    with pytest.raises(InvalidProof):
        smt.verify(root, proof, value_of("b"))


def test_exclusion_proof_ending_at_another_leaf() -> None:
    root, source, entries = two_leaf_tree()
    proof = smt.prove(source, C)
    assert proof.leaf == (A, entries[A]) and proof.value_hash is None
    smt.verify(root, proof, None)
    with pytest.raises(InvalidProof):
        smt.verify(root, proof, entries[A])


def test_the_empty_tree() -> None:
    source = MemorySource()
    proof = smt.prove(source, A)
    assert proof == smt.Proof(A, (), None)
    smt.verify(EMPTY, proof, None)
    root, _, _ = two_leaf_tree()
    with pytest.raises(InvalidProof, match="empty-tree"):
        smt.verify(root, proof, None)
    with pytest.raises(InvalidProof):
        smt.verify(EMPTY, proof, value_of("a"))


def test_a_wrong_value_hash_is_refused() -> None:
    root, source, entries = two_leaf_tree()
    proof = smt.prove(source, A)
    smt.verify(root, proof, entries[A])
    with pytest.raises(InvalidProof):
        smt.verify(root, proof, value_of("b"))
    forged = dataclasses.replace(proof, leaf=(A, value_of("b")))
    with pytest.raises(InvalidProof):
        smt.verify(root, forged, value_of("b"))


def test_a_proof_for_one_key_is_refused_for_another() -> None:
    root, source, entries = two_leaf_tree()
    proof = smt.prove(source, A)
    for other in (B, C, D):
        moved = dataclasses.replace(proof, path=other)
        for value in (entries[A], entries[B], None):
            if other == C and value is None:
                continue
            with pytest.raises(InvalidProof):
                smt.verify(root, moved, value)
    # C's walk does end at A's leaf: presented for C, A's proof shows C absent, and only that.
    smt.verify(root, dataclasses.replace(proof, path=C), None)


def test_a_flipped_sibling_is_refused() -> None:
    entries = {path_of(str(i)): value_of(str(i)) for i in range(40)}
    root, source = build(entries)
    for path in [*list(entries)[:5], path_of("absent")]:
        proof = smt.prove(source, path)
        for level in range(len(proof.siblings)):
            for index in (0, 131, 255):
                siblings = list(proof.siblings)
                siblings[level] = flip_bit(siblings[level], index)
                forged = dataclasses.replace(proof, siblings=tuple(siblings))
                with pytest.raises(InvalidProof):
                    smt.verify(root, forged, entries.get(path))


def test_a_sibling_dropped_or_added_is_refused() -> None:
    entries = {path_of(str(i)): value_of(str(i)) for i in range(40)}
    root, source = build(entries)
    for path in [*list(entries)[:5], path_of("absent")]:
        proof = smt.prove(source, path)
        s = proof.siblings
        forgeries = [s[1:], s[:-1], (EMPTY, *s), (*s, EMPTY), (*s, path_of("x"))]
        forgeries += [s[:i] + s[i + 1 :] for i in range(len(s))]
        forgeries += [(*s[:i], EMPTY, *s[i:]) for i in range(len(s))]
        for siblings in forgeries:
            with pytest.raises(InvalidProof):
                smt.verify(root, dataclasses.replace(proof, siblings=siblings), entries.get(path))


def test_an_exclusion_leaf_off_the_walked_path_is_refused() -> None:
    root, source, entries = two_leaf_tree()
    # C's walk goes left; B is on the right.
    forged = dataclasses.replace(smt.prove(source, C), leaf=(B, entries[B]))
    with pytest.raises(InvalidProof):
        smt.verify(root, forged, None)
    # A root that puts B's leaf on the left, so that hashes alone would lead to it: only
    # the path check stands in the way.
    skewed = smt.node_hash(smt.leaf_hash(B, entries[B]), EMPTY)
    with pytest.raises(InvalidProof, match="not on the path"):
        smt.verify(skewed, smt.Proof(C, (EMPTY,), (B, entries[B])), None)


def test_claiming_a_present_key_absent_is_refused() -> None:
    root, source, _ = two_leaf_tree()
    proof = smt.prove(source, A)
    with pytest.raises(InvalidProof):
        smt.verify(root, proof, None)
    with pytest.raises(InvalidProof):
        smt.verify(root, dataclasses.replace(proof, leaf=None), None)
    with pytest.raises(InvalidProof):
        smt.verify(root, smt.Proof(A, (), None), None)


@pytest.mark.parametrize("length", [0, 31, 33, 64])
def test_siblings_of_the_wrong_length_are_refused(length: int) -> None:
    root, source, entries = two_leaf_tree()
    proof = smt.prove(source, A)
    forged = dataclasses.replace(proof, siblings=(proof.siblings[0][:length].ljust(length, b"\0"),))
    with pytest.raises(InvalidProof, match="malformed"):
        smt.verify(root, forged, entries[A])


def test_malformed_paths_and_overlong_proofs_are_refused() -> None:
    root, source, entries = two_leaf_tree()
    proof = smt.prove(source, A)
    with pytest.raises(InvalidProof):
        smt.verify(root, dataclasses.replace(proof, path=A[:31]), entries[A])
    with pytest.raises(InvalidProof):
        smt.verify(root, dataclasses.replace(proof, siblings=(EMPTY,) * 257), entries[A])
    with pytest.raises(InvalidProof):
        smt.verify(root, dataclasses.replace(proof, leaf=(A, entries[A][:31])), entries[A][:31])


def test_proof_size_counts_the_compact_form() -> None:
    a = path_of("deep")
    _, source = build({a: value_of("a"), flip_bit(a, 255): value_of("b")})
    proof = smt.prove(source, a)
    # path, a 2-byte depth, a 256-bit bitmap, one non-empty sibling, the leaf.
    assert proof.size() == 32 + 2 + 32 + 32 + 64
    assert smt.Proof(a, (), None).size() == 34
    _, source, _ = two_leaf_tree()
    assert smt.prove(source, A).size() == 32 + 2 + 1 + 32 + 64
    nine = smt.Proof(a, (EMPTY,) * 8 + (a,), None)
    assert nine.size() == 32 + 2 + 2 + 32


# -- stored nodes ---------------------------------------------------------------------------


def test_check_node_refuses_a_node_that_does_not_match_its_hash() -> None:
    good = [smt.leaf(A, value_of("a")), smt.inner(path_of("l"), path_of("r"))]
    for node in good:
        assert smt.check_node(node) == node
        assert len(node) == smt.NODE_SIZE
        for index in (0, 31, 32 * 8, 33 * 8 + 5, smt.NODE_SIZE * 8 - 1):
            with pytest.raises(ValueError):
                smt.check_node(flip_bit(node, index))
        with pytest.raises(ValueError):
            smt.check_node(node[:-1])
        with pytest.raises(ValueError):
            smt.check_node(node + b"\0")
    unknown_kind = b"\x02" + bytes(64)
    with pytest.raises(ValueError):
        smt.check_node(sha(unknown_kind) + unknown_kind)


# -- known answers ------------------------------------------------------------------------

VECTORS: dict[str, Any] = load("smt_vectors.json")


def h(value: str) -> bytes:
    return bytes.fromhex(value)


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda c: str(c["name"]))
def test_known_roots_and_proofs(case: dict[str, Any]) -> None:
    entries = {h(e["path"]): h(e["value_hash"]) for e in case["entries"]}
    root = h(case["root"])
    assert naive_root(entries) == root
    built, source = build(entries)
    assert built == root
    for vector in case["proofs"]:
        path = h(vector["path"])
        found = vector["leaf"]
        expected = smt.Proof(
            path,
            tuple(h(s) for s in vector["siblings"]),
            None if found is None else (h(found["path"]), h(found["value_hash"])),
        )
        assert smt.prove(source, path) == expected
        value = vector["value_hash"]
        smt.verify(root, expected, None if value is None else h(value))
