"""C2SP tlog-tiles@v0.1.0: paths, entry bundles, tile-backed roots and proofs.

The real tiled tree is Sunlight's skylight fixture (the shared vectors, vectors/ledger/
tiles-skylight, github.com/FiloSottile/sunlight @ ed0bc387, ISC licence): 300 entries
"record i", served as tile/0/000, tile/0/001.p/44 and tile/1/000.p/1.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.log.checkpoint import Checkpoint
from ledger.log.errors import InclusionProofError, MerkleError, TileError
from ledger.log.merkle import (
    consistency_path,
    inclusion_path,
    leaf_hash,
    root_hash,
    verify_consistency,
    verify_inclusion,
)
from ledger.log.note import SignedNote
from ledger.log.tiles import (
    FULL_TILE_BYTES,
    TILE_WIDTH,
    TileId,
    append_leaves,
    consistency_proof,
    decode_entry_bundle,
    encode_entry_bundle,
    entry_bundle_path,
    inclusion_proof,
    parse_entry_bundle_path,
    tile_width,
    tiles_for_size,
    tree_root,
)
from tests.support.environment import vector_path

MIRROR_HASH = "000de184301123b9278c086a7d9f68c9577e83872224c197058fd90784ea9706"


class DictReader:
    """In-memory TileReader that counts reads."""

    def __init__(self, tiles: dict[tuple[int, int], bytes] | None = None) -> None:
        self.tiles = dict(tiles or {})
        self.reads = 0

    def read_tile(self, level: int, index: int) -> bytes:
        self.reads += 1
        try:
            return self.tiles[(level, index)]
        except KeyError:
            raise TileError(f"no tile {level}/{index}") from None


class DirReader:
    """TileReader over a tlog-tiles directory: the widest tile stored on disk."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def read_tile(self, level: int, index: int) -> bytes:
        full = self.root / TileId(level, index).path()
        if full.is_file():
            return full.read_bytes()
        for width in range(TILE_WIDTH - 1, 0, -1):
            p = self.root / TileId(level, index, width).path()
            if p.is_file():
                return p.read_bytes()
        raise TileError(f"no tile {level}/{index} under {self.root}")


def build(leaves: list[bytes], batches: list[int]) -> DictReader:
    reader = DictReader()
    size = 0
    for n in batches:
        reader.tiles.update(append_leaves(size, leaves[size : size + n], reader))
        size += n
    return reader


@pytest.mark.parametrize(
    ("tile", "path"),
    [
        (TileId(0, 0), "tile/0/000"),
        (TileId(0, 1, 44), "tile/0/001.p/44"),
        (TileId(1, 0, 1), "tile/1/000.p/1"),
        (TileId(0, 1234067), "tile/0/x001/x234/067"),
        (TileId(2, 1234, 17), "tile/2/x001/234.p/17"),
        (TileId(63, 999), "tile/63/999"),
    ],
)
def test_tile_paths_round_trip(tile: TileId, path: str) -> None:
    assert tile.path() == path
    assert TileId.parse_path(path) == tile


def test_entry_bundle_paths_round_trip() -> None:
    assert entry_bundle_path(1234067) == "tile/entries/x001/x234/067"
    assert entry_bundle_path(1, 44) == "tile/entries/001.p/44"
    assert parse_entry_bundle_path("tile/entries/x001/x234/067") == (1234067, TILE_WIDTH)
    assert parse_entry_bundle_path("tile/entries/001.p/44") == (1, 44)
    with pytest.raises(TileError):
        parse_entry_bundle_path("tile/0/001")


@pytest.mark.parametrize(
    "bad",
    [
        "tile/0/1",  # not zero-padded
        "tile/0/0001",
        "tile/0/x000/001",  # leading zero group
        "tile/0/001/234",  # missing x prefix
        "tile/0/x001",  # last group with x
        "tile/64/000",  # level out of range
        "tile/01/000",  # leading zero in level
        "tile/0/000.p/0",
        "tile/0/000.p/256",
        "tile/0/000.p/044",
        "tile/0/000.p/",
        "tiles/0/000",
        "tile/0/",
        "tile/-1/000",
        "tile/0/00a",
        "",
    ],
)
def test_non_canonical_tile_paths_are_refused(bad: str) -> None:
    with pytest.raises(TileError):
        TileId.parse_path(bad)


def test_tile_ids_refuse_impossible_values() -> None:
    for args in [(0, -1, 256), (64, 0, 256), (0, 0, 0), (0, 0, 257)]:
        with pytest.raises(TileError):
            TileId(*args)


def test_tiles_of_a_tree_of_70000_match_the_spec_example() -> None:
    tiles = tiles_for_size(70_000)
    level0 = [t for t in tiles if t.level == 0]
    assert len([t for t in level0 if not t.is_partial]) == 273
    assert [t.width for t in level0 if t.is_partial] == [112]
    assert [(t.index, t.width) for t in tiles if t.level == 1] == [(0, 256), (1, 17)]
    assert [(t.index, t.width) for t in tiles if t.level == 2] == [(0, 1)]
    assert [(t.level, t.width) for t in tiles_for_size(256)] == [(0, 256), (1, 1)]
    assert tile_width(0, 273, 70_000) == 112 and tile_width(0, 274, 70_000) == 0


def test_entry_bundle_round_trip_and_malformed_bundles() -> None:
    entries = [b"", b"record 0", b"x" * 65535]
    data = encode_entry_bundle(entries)
    assert data[:2] == b"\x00\x00" and data[2:4] == b"\x00\x08"
    assert decode_entry_bundle(data) == entries
    for bad in [b"", b"\x00", b"\x00\x05abc", data[:-1]]:
        with pytest.raises(TileError):
            decode_entry_bundle(bad)
    with pytest.raises(TileError):
        decode_entry_bundle(b"\x00\x00" * 257)
    with pytest.raises(TileError):
        encode_entry_bundle([b"x" * 65536])
    with pytest.raises(TileError):
        encode_entry_bundle([])


def test_skylight_tree_root_recomputed_from_its_tiles_matches_its_checkpoint() -> None:
    root = vector_path("ledger", "tiles-skylight", "witness", "mirror", MIRROR_HASH)
    note = SignedNote.parse((root / "checkpoint").read_bytes())
    checkpoint = Checkpoint.parse(note.text)
    assert (checkpoint.origin, checkpoint.size) == ("rome2026h1.example.org", 300)
    reader = DirReader(root)
    assert tree_root(checkpoint.size, reader) == checkpoint.root_hash
    # The level-0 tiles hold the RFC 6962 leaf hashes of "record i".
    leaves = [leaf_hash(f"record {i}".encode()) for i in range(300)]
    assert (root / "tile/0/000").read_bytes() == b"".join(leaves[:256])
    assert (root / "tile/0/001.p/44").read_bytes() == b"".join(leaves[256:])
    assert root_hash(leaves) == checkpoint.root_hash
    # Proofs computed from the tiles verify against the checkpoint.
    for i in (0, 1, 255, 256, 299):
        proof = inclusion_proof(i, 300, reader)
        verify_inclusion(leaves[i], i, 300, proof, checkpoint.root_hash)
    for old in (1, 44, 256, 299):
        proof = consistency_proof(old, 300, reader)
        verify_consistency(old, 300, root_hash(leaves[:old]), checkpoint.root_hash, proof)


def test_append_reproduces_the_skylight_tiles_byte_for_byte() -> None:
    root = vector_path("ledger", "tiles-skylight", "witness", "mirror", MIRROR_HASH)
    leaves = [leaf_hash(f"record {i}".encode()) for i in range(300)]
    reader = build(leaves, [7, 200, 93])
    assert reader.tiles[(0, 0)] == (root / "tile/0/000").read_bytes()
    assert reader.tiles[(0, 1)] == (root / "tile/0/001.p/44").read_bytes()
    assert reader.tiles[(1, 0)] == (root / "tile/1/000.p/1").read_bytes()
    assert set(reader.tiles) == {(0, 0), (0, 1), (1, 0)}


def test_append_returns_only_changed_tiles() -> None:
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(600)]
    reader = build(leaves, [300])
    changed = append_leaves(300, leaves[300:301], reader)
    assert set(changed) == {(0, 1)}
    assert len(changed[(0, 1)]) == 45 * 32
    changed = append_leaves(300, leaves[300:512], reader)
    assert set(changed) == {(0, 1), (1, 0)}
    assert len(changed[(0, 1)]) == FULL_TILE_BYTES and len(changed[(1, 0)]) == 64
    assert append_leaves(300, [], reader) == {}


def test_append_refuses_a_reader_missing_the_partial_tile() -> None:
    with pytest.raises(TileError):
        append_leaves(5, [leaf_hash(b"x")], DictReader())
    with pytest.raises(TileError):
        append_leaves(0, [b"short"], DictReader())


def test_truncated_tile_from_a_reader_is_refused() -> None:
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(300)]
    reader = build(leaves, [300])
    reader.tiles[(0, 1)] = reader.tiles[(0, 1)][:-32]
    with pytest.raises(TileError):
        tree_root(300, reader)
    with pytest.raises(MerkleError):
        inclusion_proof(300, 300, reader)


@settings(max_examples=60, deadline=None)
@given(
    batches=st.lists(st.integers(min_value=1, max_value=700), min_size=1, max_size=4),
    data=st.data(),
)
def test_tile_proofs_equal_in_memory_proofs(batches: list[int], data: st.DataObject) -> None:
    size = sum(batches)
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(size)]
    reader = build(leaves, batches)
    assert tree_root(size, reader) == root_hash(leaves)
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    assert inclusion_proof(index, size, reader) == inclusion_path(index, leaves)
    old = data.draw(st.integers(min_value=1, max_value=size))
    assert consistency_proof(old, size, reader) == consistency_path(old, leaves)
    # Every intermediate size still has its (old partial) tiles available when stored.
    mid = data.draw(st.integers(min_value=1, max_value=size))
    assert tree_root(mid, reader) == root_hash(leaves[:mid])


class SyntheticTree:
    """A TileReader for a huge but genuine Merkle tree whose tiles are computed on
    demand: leaves of the tile holding `special` and of the right edge are SHA-256 of
    their index; every other full level-0 tile repeats one fixed tile, so its root
    (and every subtree built only from such tiles) is hashed once and reused."""

    def __init__(self, size: int, special: int) -> None:
        self.size = size
        self.special_tile = special // TILE_WIDTH
        self.generic = b"".join(hashlib.sha256(b"g%d" % i).digest() for i in range(TILE_WIDTH))
        self.cache: dict[tuple[int, int], bytes] = {}
        self.roots: dict[bytes, bytes] = {}

    @staticmethod
    def leaf(i: int) -> bytes:
        return hashlib.sha256(i.to_bytes(8, "big")).digest()

    def read_tile(self, level: int, index: int) -> bytes:
        if (level, index) not in self.cache:
            width = tile_width(level, index, self.size)
            if level == 0 and width == TILE_WIDTH and index != self.special_tile:
                data = self.generic
            elif level == 0:
                first = index * TILE_WIDTH
                data = b"".join(self.leaf(i) for i in range(first, first + width))
            else:
                data = b"".join(self._root(level - 1, index * TILE_WIDTH + j) for j in range(width))
            self.cache[(level, index)] = data
        return self.cache[(level, index)]

    def _root(self, level: int, index: int) -> bytes:
        data = self.read_tile(level, index)
        if data not in self.roots:
            self.roots[data] = root_hash([data[i : i + 32] for i in range(0, len(data), 32)])
        return self.roots[data]


class CountingReader:
    def __init__(self, inner: SyntheticTree) -> None:
        self.inner = inner
        self.reads = 0

    def read_tile(self, level: int, index: int) -> bytes:
        self.reads += 1
        return self.inner.read_tile(level, index)


def test_ten_million_leaf_proof_reads_a_handful_of_tiles() -> None:
    size = 10_000_000
    index = 1_234_567
    tree = SyntheticTree(size, special=index)
    root = tree_root(size, tree)  # also builds the synthetic tiles it needs
    counting = CountingReader(tree)
    t0 = time.perf_counter()
    proof = inclusion_proof(index, size, counting)
    elapsed = time.perf_counter() - t0
    verify_inclusion(SyntheticTree.leaf(index), index, size, proof, root)
    with pytest.raises(InclusionProofError):
        verify_inclusion(SyntheticTree.leaf(index), index + 1, size, proof, root)
    # Its own three tiles (levels 0, 1, 2) plus the right edge of the tree.
    assert counting.reads <= 6, counting.reads
    print(f"10M-leaf inclusion proof: {counting.reads} tile reads, {elapsed * 1e3:.3f} ms")
    old = consistency_proof(size - 1_000_000, size, counting)
    verify_consistency(size - 1_000_000, size, tree_root(size - 1_000_000, tree), root, old)
