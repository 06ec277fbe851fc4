"""RFC 9162 §2.1 Merkle tree hashing, proof generation and proof verification.

Hashing is SHA-256 with the leaf prefix 0x00 and the interior node prefix 0x01
(RFC 9162 §2.1.1; identical to RFC 6962). Verification is written as the RFC's
numbered algorithms and raises `InclusionProofError` / `ConsistencyProofError`:
nothing here returns a boolean for a caller to forget.

Proof *generation* is written once, over an abstract "hash of the leaf range
[lo, hi)" callable, so that the in-memory helpers here (for tests and small trees)
and the tile-backed ones in `ledger.log.tiles` share the RFC recursion
(`inclusion_path_from`, `consistency_path_from`).

This module does no I/O and knows nothing of tiles, notes or entries.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from ledger.log.errors import ConsistencyProofError, InclusionProofError, MerkleError

HASH_SIZE = 32  # bytes, SHA-256
LEAF_PREFIX = b"\x00"  # RFC 9162 §2.1.1
NODE_PREFIX = b"\x01"  # RFC 9162 §2.1.1
MAX_PROOF_HASHES = 64  # hashes; a tree of at most 2^64 leaves needs no more per proof

#: A function returning MTH(D[lo:hi]) for the tree being proven.
RangeHash = Callable[[int, int], bytes]


def leaf_hash(data: bytes) -> bytes:
    """MTH({d}) = SHA-256(0x00 || d) (RFC 9162 §2.1.1)."""
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right) (RFC 9162 §2.1.1)."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


EMPTY_ROOT = hashlib.sha256(b"").digest()  # RFC 9162 §2.1.1: MTH({}) = SHA-256()


def empty_root() -> bytes:
    """MTH({}) = SHA-256() (RFC 9162 §2.1.1)."""
    return EMPTY_ROOT


def root_hash(leaf_hashes: Sequence[bytes]) -> bytes:
    """The Merkle tree hash of a list of leaf hashes (RFC 9162 §2.1.1).

    Computed level by level: pairing neighbours and promoting an unpaired last node
    unchanged builds exactly the RFC's "split at the largest power of two" tree.
    """
    if not leaf_hashes:
        return empty_root()
    level = list(leaf_hashes)
    while len(level) > 1:
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def largest_power_of_two_below(n: int) -> int:
    """The k of RFC 9162 §2.1.1: the largest power of two smaller than n (n > 1)."""
    if n < 2:
        raise MerkleError(f"expected n > 1 to split a tree, found {n}")
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_path_from(index: int, size: int, range_hash: RangeHash) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 §2.1.3.1, with subtree hashes from `range_hash`.

    The recursion is unrolled: walking down from the whole tree, each step records
    the hash of the sibling subtree, and the path is those hashes leaf-side first.
    """
    if not 0 <= index < size:
        raise MerkleError(f"expected 0 <= index < size, found index {index}, size {size}")
    siblings: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = largest_power_of_two_below(hi - lo)
        if index < lo + k:
            siblings.append(range_hash(lo + k, hi))
            hi = lo + k
        else:
            siblings.append(range_hash(lo, lo + k))
            lo = lo + k
    siblings.reverse()
    return siblings


def consistency_path_from(old_size: int, new_size: int, range_hash: RangeHash) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 9162 §2.1.4.1 (via SUBPROOF), hashes from `range_hash`.

    Only 0 < old_size <= new_size is meaningful; old_size == new_size gives [].
    """
    if not 0 < old_size <= new_size:
        raise MerkleError(
            f"expected 0 < old_size <= new_size, found old {old_size}, new {new_size}"
        )
    out: list[bytes] = []
    m, lo, hi = old_size, 0, new_size
    complete = True  # the "b" flag of SUBPROOF
    while True:
        n = hi - lo
        if m == n:
            # SUBPROOF(m, D[m], true) = {}; with b false the subtree hash itself.
            if not complete:
                out.append(range_hash(lo, hi))
            break
        k = largest_power_of_two_below(n)
        if m <= k:
            # SUBPROOF(m, D[0:k], b) : MTH(D[k:n])
            out.append(range_hash(lo + k, hi))
            hi = lo + k
        else:
            # SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k])
            out.append(range_hash(lo, lo + k))
            m -= k
            lo += k
            complete = False
    out.reverse()
    return out


def _memory_range_hash(leaf_hashes: Sequence[bytes]) -> RangeHash:
    def range_hash(lo: int, hi: int) -> bytes:
        return root_hash(leaf_hashes[lo:hi])

    return range_hash


def inclusion_path(index: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """The inclusion proof of leaf `index` in the tree of all `leaf_hashes` (in memory)."""
    return inclusion_path_from(index, len(leaf_hashes), _memory_range_hash(leaf_hashes))


def consistency_path(old_size: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """The consistency proof from `old_size` to the tree of all `leaf_hashes` (in memory)."""
    return consistency_path_from(old_size, len(leaf_hashes), _memory_range_hash(leaf_hashes))


def _check_hash(what: str, value: bytes, error: type[MerkleError]) -> None:
    if not isinstance(value, bytes | bytearray) or len(value) != HASH_SIZE:
        found = len(value) if isinstance(value, bytes | bytearray) else type(value).__name__
        raise error(f"expected {what} of {HASH_SIZE} bytes, found {found}")


def _check_path(path: Sequence[bytes] | None, error: type[MerkleError]) -> list[bytes]:
    items = list(path or [])
    if len(items) > MAX_PROOF_HASHES:
        raise error(f"expected at most {MAX_PROOF_HASHES} proof hashes, found {len(items)}")
    for i, h in enumerate(items):
        _check_hash(f"proof hash {i}", h, error)
    return items


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, path: Sequence[bytes] | None, root: bytes
) -> None:
    """Check that `leaf_hash` sits at `index` in the tree of `size` with `root`.

    RFC 9162 §2.1.3.2, step by step; a `None` path is the empty proof.
    """
    err = InclusionProofError
    _check_hash("leaf hash", leaf_hash, err)
    _check_hash("root hash", root, err)
    proof = _check_path(path, err)
    # 1. If leaf_index >= tree_size, the proof fails.
    if not 0 <= index < size:
        raise err(f"expected 0 <= index < size, found index {index}, size {size}")
    # 2. fn = leaf_index, sn = tree_size - 1, r = hash.
    fn, sn, r = index, size - 1, bytes(leaf_hash)
    # 3. For each value p in the inclusion path:
    for p in proof:
        if sn == 0:
            raise err(f"expected {len(proof)} hashes to fit a tree of size {size}: too many")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    # 4. Compare sn to 0 and r to root.
    if sn != 0:
        raise err(f"expected more proof hashes for index {index} in size {size}: too few")
    if r != root:
        raise err(f"expected root {bytes(root).hex()}, computed {r.hex()}")


def verify_consistency(
    old_size: int,
    new_size: int,
    old_root: bytes,
    new_root: bytes,
    path: Sequence[bytes] | None,
) -> None:
    """Check that the tree (new_size, new_root) extends (old_size, old_root).

    RFC 9162 §2.1.4.2. Like the reference Go implementation, a proof from size 0 is
    refused (it proves nothing; protocol layers such as C2SP tlog-witness handle
    `old 0` before calling this), and equal sizes need an empty proof and equal roots.
    """
    err = ConsistencyProofError
    proof = _check_path(path, err)
    if old_size < 0 or new_size < 0:
        raise err(f"expected non-negative sizes, found {old_size} and {new_size}")
    if old_size > new_size:
        raise err(f"expected old size <= new size, found {old_size} > {new_size}")
    if old_size == 0:
        raise err("expected old size > 0: a consistency proof from the empty tree is useless")
    if old_size == new_size:
        if proof:
            raise err(f"expected an empty proof for equal sizes, found {len(proof)} hashes")
        # Equal sizes: the heads are consistent iff they are the same head; this is a
        # plain byte comparison (the reference vectors accept any equal byte strings).
        if bytes(old_root) != bytes(new_root):
            raise err("expected equal roots for equal sizes, found different roots")
        return
    _check_hash("old root", old_root, err)
    _check_hash("new root", new_root, err)
    fr, sr = _consistency_roots(old_size, new_size, old_root, proof)
    if fr != old_root:
        raise err(f"expected old root {bytes(old_root).hex()}, computed {fr.hex()}")
    if sr != new_root:
        raise err(f"expected new root {bytes(new_root).hex()}, computed {sr.hex()}")


def _consistency_roots(
    old_size: int, new_size: int, old_root: bytes, proof: list[bytes]
) -> tuple[bytes, bytes]:
    """RFC 9162 §2.1.4.2 steps 1-6 and the size check of step 7: the (old, new) roots
    that a consistency proof from a tree of `old_size` leaves computes."""
    err = ConsistencyProofError
    # 1. If consistency_path is empty, stop and fail.
    if not proof:
        raise err("expected a non-empty proof for different sizes, found none")
    # 2. If first is an exact power of 2, prepend first_hash to the path.
    if old_size & (old_size - 1) == 0:
        proof = [bytes(old_root), *proof]
    # 3. fn = first - 1, sn = second - 1; 4. shift while LSB(fn) is set.
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5. fr = sr = first value of the path.
    fr = sr = proof[0]
    # 6. For each subsequent value c in the path:
    for c in proof[1:]:
        if sn == 0:
            raise err(f"expected fewer proof hashes from {old_size} to {new_size}: too many")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    # 7. (sn == 0; the callers compare the roots.)
    if sn != 0:
        raise err(f"expected more proof hashes from {old_size} to {new_size}: too few")
    return fr, sr


def proves_inconsistency(
    old_size: int,
    new_size: int,
    old_root: bytes,
    new_root: bytes,
    path: Sequence[bytes],
) -> bool:
    """Whether `path` proves that (new_size, new_root) does NOT extend (old_size, old_root).

    It does when the proof reproduces `new_root` but a different old root: the proof's
    hashes then fix the new tree's first `old_size` leaves (SHA-256 second preimages
    are infeasible), and their root is not `old_root`. A proof that does not reproduce
    `new_root` proves nothing about the log (anyone can send wrong hashes)."""
    if not 0 < old_size < new_size or len(old_root) != HASH_SIZE or len(new_root) != HASH_SIZE:
        return False
    try:
        proof = _check_path(path, ConsistencyProofError)
        if not proof:
            return False
        fr, sr = _consistency_roots(old_size, new_size, old_root, proof)
    except ConsistencyProofError:
        return False
    return sr == new_root and fr != old_root


class CompactRange:
    """The right edge of a growing tree (one root per perfect subtree, largest first):
    append leaf hashes one by one, read the RFC 9162 §2.1.1 root at any size, in
    O(log n) memory (used to re-hash a whole stored log at start)."""

    def __init__(self) -> None:
        self.size = 0
        self._stack: list[bytes] = []

    def append(self, leaf: bytes) -> None:
        h, s = leaf, self.size
        while s & 1:
            h = node_hash(self._stack.pop(), h)
            s >>= 1
        self._stack.append(h)
        self.size += 1

    def root(self) -> bytes:
        if not self._stack:
            return empty_root()
        r = self._stack[-1]
        for h in reversed(self._stack[:-1]):
            r = node_hash(h, r)
        return r
