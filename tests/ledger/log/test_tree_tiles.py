"""ledger.log.tree_tiles: hash tiles and entry bundles checked against one checkpoint's
tree as they arrive (C2SP tlog-tiles@v0.1.0).

The real tiled tree is Sunlight's skylight fixture (the shared vectors, vectors/ledger/
tiles-skylight, github.com/FiloSottile/sunlight @ ed0bc387, ISC licence): 300 entries
"record i" (whose leaf hashes fill its level-0 tiles), served as tile/0/000,
tile/0/001.p/44 and tile/1/000.p/1. The other trees are built here, at the
sizes where the tile structure changes (a level filling up, a new level appearing).
"""

from __future__ import annotations

import pytest

from ledger.log.checkpoint import Checkpoint
from ledger.log.errors import TileError, TileMismatchError
from ledger.log.merkle import leaf_hash, root_hash
from ledger.log.note import SignedNote
from ledger.log.tiles import TileId, tiles_of_tree
from ledger.log.tree_tiles import CheckpointTiles
from tests.support.environment import vector_path

MIRROR_HASH = "000de184301123b9278c086a7d9f68c9577e83872224c197058fd90784ea9706"
# Sizes around every change of shape: one entry, a level-0 tile filling up, a level-1
# tile filling up (65,536), and a tree with three levels of partial tiles.
SIZES = (1, 255, 256, 257, 511, 512, 65_535, 65_536, 65_537, 65_536 + 256 * 3 + 17)


def _entries(n: int, salt: bytes = b"") -> list[bytes]:
    return [salt + i.to_bytes(4, "big") for i in range(n)]


def _tree(entries: list[bytes]) -> tuple[CheckpointTiles, dict[tuple[int, int], bytes]]:
    hashes = [leaf_hash(e) for e in entries]
    return CheckpointTiles(len(entries), root_hash(hashes)), tiles_of_tree(hashes)


def _edge(checked: CheckpointTiles, served: dict[tuple[int, int], bytes]) -> None:
    checked.add_right_edge({(t.level, t.index): served[(t.level, t.index)]
                            for t in checked.right_edge()})  # fmt: skip


def _bundle(entries: list[bytes], index: int, size: int) -> list[bytes]:
    return entries[index * 256 : min(size, (index + 1) * 256)]


def test_skylight_bundles_are_accepted_against_its_checkpoint() -> None:
    root = vector_path("ledger", "tiles-skylight", "witness", "mirror", MIRROR_HASH)
    cp = Checkpoint.parse(SignedNote.parse((root / "checkpoint").read_bytes()).text)
    checked = CheckpointTiles(cp.size, cp.root_hash)
    assert [t.path() for t in checked.right_edge()] == ["tile/0/001.p/44", "tile/1/000.p/1"]
    checked.add_right_edge({(t.level, t.index): (root / t.path()).read_bytes()
                            for t in checked.right_edge()})  # fmt: skip
    assert checked.needed_for_bundle(0) == [] and checked.needed_for_bundle(1) == []
    records = [f"record {i}".encode() for i in range(300)]
    for index in (0, 1):
        entries = records[index * 256 : (index + 1) * 256]
        checked.check_bundle(index, entries)
        entries[-1] = b"record 999"
        with pytest.raises(TileMismatchError):
            checked.check_bundle(index, entries)


@pytest.mark.parametrize("size", SIZES)
def test_every_bundle_of_the_tree_is_accepted_with_only_the_tiles_on_its_path(size: int) -> None:
    entries = _entries(size)
    checked, served = _tree(entries)
    _edge(checked, served)
    fetched = {(t.level, t.index) for t in checked.right_edge()}
    for b in range((size + 255) // 256):
        for t in checked.needed_for_bundle(b):
            assert not t.is_partial and t.level >= 1
            checked.add(t, served[(t.level, t.index)])
            fetched.add((t.level, t.index))
        checked.check_bundle(b, _bundle(entries, b, size))
    # Never a level-0 tile but the partial one: a full bundle is checked against its
    # hash in the level-1 tile, which is the root of its level-0 tile.
    assert {k for k in fetched if k[0] == 0} <= {(0, size // 256)}
    assert fetched == {k for k in served if k[0] >= 1} | (
        {(0, size // 256)} if size % 256 else set()
    )


@pytest.mark.parametrize("size", SIZES)
def test_a_rewritten_bundle_is_refused(size: int) -> None:
    entries = _entries(size)
    checked, served = _tree(entries)
    _edge(checked, served)
    last = (size - 1) // 256
    for b in {0, last}:
        for t in checked.needed_for_bundle(b):
            checked.add(t, served[(t.level, t.index)])
        bundle = _bundle(entries, b, size)
        wrong = [*bundle[:-1], b"not the logged entry"]
        with pytest.raises(TileMismatchError, match=f"tree of size {size}"):
            checked.check_bundle(b, wrong)
        swapped = bundle[::-1] if len(bundle) > 1 else [b"other"]
        with pytest.raises(TileMismatchError):
            checked.check_bundle(b, swapped)
        with pytest.raises(TileError, match="expected"):
            checked.check_bundle(b, bundle[:-1] if len(bundle) > 1 else [])
        checked.check_bundle(b, bundle)


def test_a_wrong_partial_bundle_is_refused_entry_by_entry() -> None:
    entries = _entries(600)
    checked, served = _tree(entries)
    _edge(checked, served)
    bundle = _bundle(entries, 2, 600)
    assert len(bundle) == 88
    wrong = list(bundle)
    wrong[5] = b"forged"
    with pytest.raises(TileMismatchError, match="entry 517 of partial bundle 2"):
        checked.check_bundle(2, wrong)
    checked.check_bundle(2, bundle)


def test_a_right_edge_that_does_not_give_the_root_is_refused() -> None:
    entries = _entries(65_536 + 300)
    checked, served = _tree(entries)
    # The right edge of another tree of the same size (a source's other entries).
    _, other = _tree(_entries(65_536 + 300, salt=b"x"))
    for t in checked.right_edge():
        edge = {(u.level, u.index): served[(u.level, u.index)] for u in checked.right_edge()}
        edge[(t.level, t.index)] = other[(t.level, t.index)][: t.width * 32]
        with pytest.raises(TileMismatchError, match="give root"):
            checked.add_right_edge(edge)
        assert not checked.edge_checked
        edge[(t.level, t.index)] = edge[(t.level, t.index)][:-32]
        with pytest.raises(TileError, match="expected tile"):
            checked.add_right_edge(edge)
    with pytest.raises(TileError, match="right edge"):
        checked.needed_for_bundle(0)
    _edge(checked, served)
    assert checked.edge_checked


def test_a_full_tile_that_is_not_its_parents_hash_is_refused() -> None:
    size = 3 * 65_536 + 5 * 256 + 7  # level-1 tiles 0..2 full, level 2 partial
    entries = _entries(size)
    checked, served = _tree(entries)
    _, other = _tree(_entries(size, salt=b"x"))
    _edge(checked, served)
    needed = checked.needed_for_bundle(300)
    assert needed == [TileId(1, 1)]
    with pytest.raises(TileMismatchError, match="tile tile/1/001 hashes to"):
        checked.add(needed[0], other[(1, 1)])
    with pytest.raises(TileError, match="expected tile tile/1/001 of 8192 bytes"):
        checked.add(needed[0], served[(1, 1)][:-32])
    with pytest.raises(TileError, match="to be accepted first"):
        checked.check_bundle(300, _bundle(entries, 300, size))
    with pytest.raises(TileError, match="full hash tile"):
        checked.add(TileId(2, 0, 3), served[(2, 0)])  # an edge tile is not added alone
    checked.add(needed[0], served[(1, 1)])
    assert checked.needed_for_bundle(300) == []
    checked.check_bundle(300, _bundle(entries, 300, size))


def test_bundles_outside_the_tree_are_refused() -> None:
    checked, served = _tree(_entries(300))
    _edge(checked, served)
    for index in (-1, 2, 10**9):
        with pytest.raises(TileError, match="expected a bundle of the tree of size 300"):
            checked.needed_for_bundle(index)
    with pytest.raises(TileError):
        CheckpointTiles(-1, b"\x00" * 32)
    with pytest.raises(TileError):
        CheckpointTiles(1, b"short")
    empty = CheckpointTiles(0, root_hash([]))
    assert empty.edge_checked and empty.right_edge() == []
