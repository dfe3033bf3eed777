"""RFC 6962 Merkle trees: Certificate Transparency vectors, properties and forged proofs."""

from collections.abc import Sequence
from functools import cache
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medledger.crypto import merkle
from medledger.crypto.errors import InvalidProof
from medledger.crypto.merkle import (
    EMPTY_ROOT,
    Frontier,
    MemoryTree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    subtree_root,
    verify_consistency,
    verify_inclusion,
)
from medledger.errors import UsageError
from tests.crypto._vectors import load

CT: dict[str, Any] = load("rfc6962_ct.json")
MAX_SIZE = 300
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


def h(value: str) -> bytes:
    return bytes.fromhex(value)


def ct_tree() -> MemoryTree:
    tree = MemoryTree()
    for data in CT["leaves"]:
        tree.append(leaf_hash(h(data)))
    return tree


@cache
def big_tree() -> tuple[MemoryTree, tuple[bytes, ...]]:
    """A tree of MAX_SIZE leaves and its root at every size 0..MAX_SIZE.

    Every smaller tree is a prefix of it, so proofs for any size can be asked of it.
    """
    tree = MemoryTree()
    roots = [tree.root()]
    for i in range(MAX_SIZE):
        tree.append(leaf_hash(i.to_bytes(4, "big")))
        roots.append(tree.root())
    return tree, tuple(roots)


def flip(proof: Sequence[bytes], position: int, bit: int) -> list[bytes]:
    changed = bytearray(proof[position])
    changed[bit // 8] ^= 1 << (bit % 8)
    return [*proof[:position], bytes(changed), *proof[position + 1 :]]


# ---- hashing --------------------------------------------------------------------


def test_hash_vectors() -> None:
    vectors = CT["hashes"]
    assert h(vectors["empty_root"]) == EMPTY_ROOT
    for leaf in vectors["leaf"]:
        assert leaf_hash(h(leaf["data"])) == h(leaf["hash"])
    for node in vectors["node"]:
        assert node_hash(h(node["left"]), h(node["right"])) == h(node["hash"])


def test_leaf_and_node_hashes_are_domain_separated() -> None:
    a, b = leaf_hash(b"a"), leaf_hash(b"b")
    assert node_hash(a, b) != leaf_hash(a + b)
    assert node_hash(a, b) != node_hash(b, a)


# ---- Certificate Transparency vectors ------------------------------------------------


@pytest.mark.parametrize("size", range(1, 9))
def test_ct_roots(size: int) -> None:
    expected = h(CT["roots"][size - 1])
    tree = ct_tree()
    assert merkle.root(tree, size) == expected
    assert subtree_root(tree, 0, size) == expected
    frontier = Frontier()
    for data in CT["leaves"][:size]:
        frontier.append(leaf_hash(h(data)))
    assert frontier.root() == expected
    assert Frontier.restore(tree, size).root() == expected


@pytest.mark.parametrize("vector", CT["inclusion"], ids=lambda v: f"{v['index']}-of-{v['size']}")
def test_ct_inclusion_proofs(vector: dict[str, Any]) -> None:
    tree = ct_tree()
    index, size = vector["index"], vector["size"]
    proof = [h(p) for p in vector["proof"]]
    assert inclusion_proof(tree, index, size) == proof
    verify_inclusion(tree.perfect(0, index), index, size, proof, h(CT["roots"][size - 1]))


@pytest.mark.parametrize(
    "vector", CT["consistency"], ids=lambda v: f"{v['old_size']}-to-{v['new_size']}"
)
def test_ct_consistency_proofs(vector: dict[str, Any]) -> None:
    tree = ct_tree()
    old, new = vector["old_size"], vector["new_size"]
    proof = [h(p) for p in vector["proof"]]
    assert consistency_proof(tree, old, new) == proof
    verify_consistency(old, new, h(CT["roots"][old - 1]), h(CT["roots"][new - 1]), proof)


Probe = tuple[str, dict[str, Any]]


def inclusion_probes(
    index: int, size: int, proof: list[bytes], root: bytes, leaf: bytes
) -> list[Probe]:
    good = {"leaf_hash": leaf, "index": index, "size": size, "proof": proof, "root": root}
    changes: list[Probe] = [
        ("index - 1", {"index": index - 1}),
        ("index + 1", {"index": index + 1}),
        ("index ^ 2", {"index": index ^ 2}),
        ("size * 2", {"size": size * 2}),
        ("size // 2", {"size": size // 2}),
        ("wrong leaf", {"leaf_hash": SOME_HASH}),
        ("empty root", {"root": EMPTY_ROOT}),
        ("other root", {"root": SOME_HASH}),
        ("trailing root", {"proof": [*proof, root]}),
        ("preceding root", {"proof": [root, *proof]}),
        ("trailing short hash", {"proof": [*proof, b""]}),
    ]
    for position in range(len(proof)):
        for bit in (0, 3, 255):
            changes.append((f"bit {bit} of hash {position}", {"proof": flip(proof, position, bit)}))
    if proof:
        changes.append(("truncated", {"proof": proof[:-1]}))
        changes.append(("inserted", {"proof": [proof[0], SOME_HASH, *proof[1:]]}))
    return [(name, good | change) for name, change in changes]


def consistency_probes(
    old: int, new: int, old_root: bytes, new_root: bytes, proof: list[bytes]
) -> list[Probe]:
    good = {
        "old_size": old,
        "new_size": new,
        "old_root": old_root,
        "new_root": new_root,
        "proof": proof,
    }
    changes: list[Probe] = [
        ("old - 1", {"old_size": old - 1}),
        ("old + 1", {"old_size": old + 1}),
        ("old ^ 2", {"old_size": old ^ 2}),
        ("new * 2", {"new_size": new * 2}),
        ("new // 2", {"new_size": new // 2}),
        ("wrong old root", {"old_root": SOME_HASH}),
        ("wrong new root", {"new_root": SOME_HASH}),
        ("swapped roots", {"old_root": new_root, "new_root": old_root}),
        ("empty proof", {"proof": []}),
        ("trailing old root", {"proof": [*proof, old_root]}),
        ("trailing new root", {"proof": [*proof, new_root]}),
        ("preceding old root", {"proof": [old_root, *proof]}),
        ("preceding new root", {"proof": [new_root, *proof]}),
        ("preceding proof[0]", {"proof": [proof[0], *proof]}),
        ("truncated", {"proof": proof[:-1]}),
    ]
    for position in range(len(proof)):
        for bit in (4, 100, 255):
            changes.append((f"bit {bit} of hash {position}", {"proof": flip(proof, position, bit)}))
    return [(name, good | change) for name, change in changes]


def accepted(verify: Any, probes: list[Probe]) -> list[str]:
    """Names of the probes that ``verify`` wrongly accepts."""
    wrongly_accepted = []
    for name, arguments in probes:
        try:
            verify(**arguments)
        except InvalidProof:
            continue
        wrongly_accepted.append(name)
    return wrongly_accepted


@pytest.mark.parametrize("vector", CT["inclusion"], ids=lambda v: f"{v['index']}-of-{v['size']}")
def test_ct_inclusion_proofs_resist_corruption(vector: dict[str, Any]) -> None:
    index, size = vector["index"], vector["size"]
    proof = [h(p) for p in vector["proof"]]
    root = h(CT["roots"][size - 1])
    leaf = leaf_hash(h(CT["leaves"][index]))
    assert accepted(verify_inclusion, inclusion_probes(index, size, proof, root, leaf)) == []


@pytest.mark.parametrize(
    "vector",
    [v for v in CT["consistency"] if v["proof"]],
    ids=lambda v: f"{v['old_size']}-to-{v['new_size']}",
)
def test_ct_consistency_proofs_resist_corruption(vector: dict[str, Any]) -> None:
    old, new = vector["old_size"], vector["new_size"]
    proof = [h(p) for p in vector["proof"]]
    old_root, new_root = h(CT["roots"][old - 1]), h(CT["roots"][new - 1])
    probes = consistency_probes(old, new, old_root, new_root, proof)
    assert accepted(verify_consistency, probes) == []


# ---- properties over many sizes -------------------------------------------------------

sizes = st.integers(min_value=1, max_value=MAX_SIZE)


@st.composite
def leaf_in_tree(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(sizes)
    return draw(st.integers(min_value=0, max_value=size - 1)), size


@st.composite
def size_pairs(draw: st.DrawFn) -> tuple[int, int]:
    new = draw(st.integers(min_value=0, max_value=MAX_SIZE))
    return draw(st.integers(min_value=0, max_value=new)), new


@given(leaf_in_tree())
def test_every_inclusion_proof_verifies(case: tuple[int, int]) -> None:
    index, size = case
    tree, roots = big_tree()
    proof = inclusion_proof(tree, index, size)
    verify_inclusion(tree.perfect(0, index), index, size, proof, roots[size])


@given(size_pairs())
def test_every_consistency_proof_verifies(case: tuple[int, int]) -> None:
    old, new = case
    tree, roots = big_tree()
    verify_consistency(old, new, roots[old], roots[new], consistency_proof(tree, old, new))


def test_all_proofs_of_small_trees_verify() -> None:
    tree, roots = big_tree()
    for size in range(1, 65):
        for index in range(size):
            proof = inclusion_proof(tree, index, size)
            verify_inclusion(tree.perfect(0, index), index, size, proof, roots[size])
        for old in range(size + 1):
            proof = consistency_proof(tree, old, size)
            verify_consistency(old, size, roots[old], roots[size], proof)


@given(leaf_in_tree(), st.data())
def test_flipped_bit_in_inclusion_proof_is_caught(
    case: tuple[int, int], data: st.DataObject
) -> None:
    index, size = case
    tree, roots = big_tree()
    proof = inclusion_proof(tree, index, size)
    if not proof:
        return
    position = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
    bit = data.draw(st.integers(min_value=0, max_value=255))
    with pytest.raises(InvalidProof, match=f"leaf {index} of {size} gives root"):
        verify_inclusion(
            tree.perfect(0, index), index, size, flip(proof, position, bit), roots[size]
        )


@given(size_pairs(), st.data())
def test_flipped_bit_in_consistency_proof_is_caught(
    case: tuple[int, int], data: st.DataObject
) -> None:
    old, new = case
    tree, roots = big_tree()
    proof = consistency_proof(tree, old, new)
    if not proof:
        return
    position = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
    bit = data.draw(st.integers(min_value=0, max_value=255))
    with pytest.raises(InvalidProof, match=f"from {old} to {new} gives"):
        verify_consistency(old, new, roots[old], roots[new], flip(proof, position, bit))


@given(leaf_in_tree(), st.integers(min_value=1, max_value=MAX_SIZE))
def test_proof_for_another_position_is_caught(case: tuple[int, int], other_size: int) -> None:
    index, size = case
    tree, roots = big_tree()
    proof = inclusion_proof(tree, index, size)
    leaf = tree.perfect(0, index)
    for other_index in {index - 1, index + 1, index ^ 1, index ^ 4, 0, size - 1} - {index}:
        with pytest.raises(InvalidProof):
            verify_inclusion(leaf, other_index, size, proof, roots[size])
    # A proof commits to a path shape, not to the size: the proof for size 257 also
    # fits size 258 against the 257 root. What must fail is any other size's root.
    if index >= other_size or inclusion_proof(tree, index, other_size) != proof:
        with pytest.raises(InvalidProof):
            verify_inclusion(leaf, index, other_size, proof, roots[other_size])


def test_frontier_matches_memory_tree_at_every_size() -> None:
    tree, roots = big_tree()
    frontier = Frontier()
    assert frontier.root() == EMPTY_ROOT
    for size in range(1, MAX_SIZE + 1):
        completed = frontier.append(tree.perfect(0, size - 1))
        assert frontier.size == size
        assert frontier.root() == roots[size]
        # Exactly the perfect subtrees ending at this leaf, smallest first.
        expected = []
        level = 1
        while size % (1 << level) == 0:
            index = size // (1 << level) - 1
            expected.append((level, index, tree.perfect(level, index)))
            level += 1
        assert completed == expected


@settings(max_examples=50)
@given(st.integers(min_value=0, max_value=MAX_SIZE - 1), st.integers(min_value=1, max_value=40))
def test_restored_frontier_continues_like_the_original(size: int, more: int) -> None:
    tree, roots = big_tree()
    restored = Frontier.restore(tree, size)
    assert restored.size == size
    assert restored.root() == roots[size]
    for leaf in range(size, min(size + more, MAX_SIZE)):
        restored.append(tree.perfect(0, leaf))
        assert restored.root() == roots[leaf + 1]


class Recording:
    """A SubtreeSource over a MemoryTree that records and checks every request."""

    def __init__(self, tree: MemoryTree, size: int) -> None:
        self.tree, self.size = tree, size
        self.requests: list[tuple[int, int]] = []

    def perfect(self, level: int, index: int) -> bytes:
        assert index >= 0
        assert (index + 1) << level <= self.size, "asked for a subtree beyond the tree"
        self.requests.append((level, index))
        return self.tree.perfect(level, index)


@given(leaf_in_tree(), size_pairs())
def test_proofs_only_ask_for_perfect_subtrees_inside_the_tree(
    leaf: tuple[int, int], pair: tuple[int, int]
) -> None:
    tree, _ = big_tree()
    index, size = leaf
    source = Recording(tree, size)
    inclusion_proof(source, index, size)
    merkle.root(source, size)
    Frontier.restore(source, size)
    assert len(source.requests) <= 4 * size.bit_length() ** 2
    old, new = pair
    consistency_proof(Recording(tree, new), old, new)


# ---- edge cases and misuse --------------------------------------------------------------


def test_empty_trees() -> None:
    tree = MemoryTree()
    assert tree.size == 0
    assert tree.root() == EMPTY_ROOT == merkle.root(tree, 0)
    assert Frontier.restore(tree, 0).root() == EMPTY_ROOT
    assert consistency_proof(tree, 0, 0) == []
    verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])


def test_empty_tree_has_no_leaves() -> None:
    with pytest.raises(UsageError, match="out of range"):
        inclusion_proof(MemoryTree(), 0, 0)
    with pytest.raises(InvalidProof, match="leaf index 0 is out of range for a tree of size 0"):
        verify_inclusion(SOME_HASH, 0, 0, [], EMPTY_ROOT)


def test_consistency_from_the_empty_tree() -> None:
    tree, roots = big_tree()
    assert consistency_proof(tree, 0, 5) == []
    verify_consistency(0, 5, EMPTY_ROOT, roots[5], [])
    with pytest.raises(InvalidProof, match="not the empty tree"):
        verify_consistency(0, 5, roots[1], roots[5], [])
    with pytest.raises(InvalidProof, match="proof has 1 hashes, expected 0"):
        verify_consistency(0, 5, EMPTY_ROOT, roots[5], [EMPTY_ROOT])
    with pytest.raises(InvalidProof, match="not the empty tree"):
        verify_consistency(0, 0, SOME_HASH, SOME_HASH, [])
    with pytest.raises(InvalidProof, match="different roots"):
        verify_consistency(0, 0, EMPTY_ROOT, SOME_HASH, [])


def test_consistency_between_equal_sizes() -> None:
    _, roots = big_tree()
    verify_consistency(7, 7, roots[7], roots[7], [])
    with pytest.raises(InvalidProof, match="equal size 7 have different roots"):
        verify_consistency(7, 7, roots[7], roots[8], [])
    with pytest.raises(InvalidProof, match="proof has 1 hashes, expected 0"):
        verify_consistency(7, 7, roots[7], roots[7], [roots[7]])


def test_old_size_larger_than_new_size() -> None:
    tree, roots = big_tree()
    with pytest.raises(InvalidProof, match="old tree size 9 is larger than new tree size 8"):
        verify_consistency(9, 8, roots[9], roots[8], [])
    with pytest.raises(UsageError):
        consistency_proof(tree, 9, 8)
    with pytest.raises(InvalidProof, match="negative"):
        verify_consistency(-1, 8, roots[1], roots[8], [])


def test_messages_name_what_failed() -> None:
    tree, roots = big_tree()
    proof = inclusion_proof(tree, 3, 8)
    leaf = tree.perfect(0, 3)
    expected = SOME_HASH[:4].hex()
    message = (
        rf"^inclusion proof for leaf 3 of 8 gives root [0-9a-f]{{8}}\.\., expected {expected}\.\.$"
    )
    with pytest.raises(InvalidProof, match=message):
        verify_inclusion(leaf, 3, 8, proof, SOME_HASH)
    with pytest.raises(InvalidProof, match=r"^proof has 4 hashes, expected 3$"):
        verify_inclusion(leaf, 3, 8, [*proof, SOME_HASH], roots[8])
    with pytest.raises(InvalidProof, match=r"^proof has 2 hashes, expected 3$"):
        verify_inclusion(leaf, 3, 8, proof[:2], roots[8])
    with pytest.raises(InvalidProof, match="leaf index 8 is out of range for a tree of size 8"):
        verify_inclusion(leaf, 8, 8, proof, roots[8])
    with pytest.raises(InvalidProof, match="leaf index -1 is out of range"):
        verify_inclusion(leaf, -1, 8, proof, roots[8])
    with pytest.raises(InvalidProof, match="proof hash 1 has 31 bytes"):
        verify_inclusion(leaf, 3, 8, [proof[0], proof[1][1:], proof[2]], roots[8])
    with pytest.raises(InvalidProof, match="leaf_hash has 9 bytes"):
        verify_inclusion(b"WrongLeaf", 3, 8, proof, roots[8])
    with pytest.raises(InvalidProof, match="root has 0 bytes"):
        verify_inclusion(leaf, 3, 8, proof, b"")
    consistency = consistency_proof(tree, 5, 8)
    with pytest.raises(InvalidProof, match=r"^consistency proof from 5 to 8 gives new root"):
        verify_consistency(5, 8, roots[5], SOME_HASH, consistency)
    with pytest.raises(InvalidProof, match=r"^consistency proof from 5 to 8 gives old root"):
        verify_consistency(5, 8, SOME_HASH, roots[8], consistency)


def test_single_leaf_tree() -> None:
    leaf = leaf_hash(b"data")
    tree = MemoryTree()
    tree.append(leaf)
    assert tree.root() == leaf
    assert inclusion_proof(tree, 0, 1) == []
    verify_inclusion(leaf, 0, 1, [], leaf)
    with pytest.raises(InvalidProof):
        verify_inclusion(leaf, 0, 1, [], SOME_HASH)
    with pytest.raises(InvalidProof):
        verify_inclusion(leaf, 0, 1, [leaf], leaf)


@pytest.mark.parametrize(("start", "end"), [(0, 0), (3, 3), (5, 4), (-1, 2)])
def test_subtree_root_rejects_empty_ranges(start: int, end: int) -> None:
    with pytest.raises(UsageError):
        subtree_root(big_tree()[0], start, end)


def test_misuse_is_a_usage_error() -> None:
    tree = MemoryTree()
    with pytest.raises(UsageError, match="32 bytes"):
        tree.append(b"short")
    with pytest.raises(UsageError, match="32 bytes"):
        Frontier().append(b"short")
    tree.append(SOME_HASH)
    with pytest.raises(UsageError, match=r"\(1, 0\) is not complete"):
        tree.perfect(1, 0)
    with pytest.raises(UsageError):
        tree.perfect(0, 1)
    with pytest.raises(UsageError):
        merkle.root(tree, -1)
    with pytest.raises(UsageError):
        Frontier.restore(tree, -1)
    with pytest.raises(UsageError):
        inclusion_proof(tree, -1, 1)


@pytest.mark.parametrize("size", [*range(1, 40), 64, 100, 257])
def test_root_and_proofs_match_one_proof_at_a_time(size: int) -> None:
    tree = MemoryTree()
    leaves = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(size)]
    for leaf in leaves:
        tree.append(leaf)
    root, proofs = merkle.root_and_proofs(leaves)
    assert root == tree.root()
    assert proofs == [merkle.inclusion_proof(tree, i, size) for i in range(size)]


def test_root_and_proofs_of_no_leaves_is_the_empty_root() -> None:
    assert merkle.root_and_proofs([]) == (merkle.EMPTY_ROOT, [])
