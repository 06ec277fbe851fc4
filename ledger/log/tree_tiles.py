"""Check hash tiles and entry bundles against one checkpoint's tree as they arrive
(C2SP tlog-tiles@v0.1.0 "Merkle Tree" and "Log entries"; RFC 9162 §2.1.1).

A reader takes a tree's size N and root hash R from a cosigned checkpoint, and the
tiles and entry bundles from a source it need not trust. `CheckpointTiles(N, R)`
accepts a hash tile only once it is proven to be part of that tree, then checks
entry bundles one at a time against the accepted tiles, so a wrong bundle is refused
the moment it is fetched instead of after the whole range:

1. The right edge: the rightmost, partial tile of every level of the tree of size N
   (`right_edge`). They are exactly the tiles `tiles.tree_root` reads: each set bit of
   N is a perfect subtree of the tree's right edge, and the hashes of those of height
   8·L .. 8·L+7 fill the partial level-L tile. So they are accepted together, when the
   root computed from them is R (`add_right_edge`).
2. Any other tile at level L is full, and is accepted when the Merkle tree hash of its
   256 hashes (the root of the perfect subtree of height 8 it spans) equals its hash
   in the accepted level L+1 tile above it (`add`). `needed_for_bundle` lists the
   tiles a bundle still needs from the top down, so each one's parent is accepted
   first; the chain always ends at the right edge.
3. A full entry bundle b is accepted when the Merkle tree hash of its 256 record
   hashes (SHA-256(0x00 || entry), RFC 9162 §2.1.1) equals hash b mod 256 of the
   accepted level-1 tile b div 256 (`check_bundle`). That hash is the root of the
   level-0 tile b, so this proves exactly what comparing the record hashes with that
   tile would, without fetching it (SHA-256 second preimages are infeasible).
4. The partial final bundle is compared hash by hash with the partial level-0 tile of
   the right edge.

Accepted full tiles are part of every later tree too (a log only appends); partial
ones only of this size. The object is one tree's; a new checkpoint gets a new one.

Pure: it says which tiles it needs, the caller fetches them. A tile or bundle that is
not part of the tree raises `TileMismatchError`; a body of the wrong shape `TileError`.
"""

from __future__ import annotations

from collections.abc import Sequence

from ledger.log import tiles
from ledger.log.errors import LedgerError, TileError, TileMismatchError
from ledger.log.merkle import HASH_SIZE, leaf_hash, root_hash
from ledger.log.tiles import TILE_WIDTH, TileId


class _Accepted:
    """TileReader over the accepted tiles (or the right edge being checked)."""

    def __init__(self, data: dict[tuple[int, int], bytes]) -> None:
        self.data = data

    def read_tile(self, level: int, index: int) -> bytes:
        try:
            return self.data[(level, index)]
        except KeyError:
            raise TileError(f"expected tile {level}/{index} on the right edge") from None


class CheckpointTiles:
    """The hash tiles of the tree of `size` leaves with root `root`, each accepted only
    once proven part of it; and the check of entry bundles against them."""

    def __init__(self, size: int, root: bytes) -> None:
        if size < 0 or len(root) != HASH_SIZE:
            raise TileError(f"expected a tree size >= 0 and a {HASH_SIZE}-byte root")
        self.size = size
        self.root = bytes(root)
        self.accepted: dict[tuple[int, int], bytes] = {}
        self.edge_checked = size == 0

    # -- which tiles ---------------------------------------------------------------

    def right_edge(self) -> list[TileId]:
        """The partial tile of every level that has one, lowest level first."""
        return [t for t in tiles.tiles_for_size(self.size) if t.is_partial]

    def width(self, level: int, index: int) -> int:
        """Hashes in tile (level, index) of this tree (0 when it has no such tile)."""
        return tiles.tile_width(level, index, self.size)

    def needed_for_bundle(self, index: int) -> list[TileId]:
        """The tiles bundle `index` still needs, top down (add them in this order);
        the right edge must be checked first."""
        self._check_index(index)
        if not self.edge_checked:
            raise TileError("expected the right edge to be checked before any bundle")
        wanted: list[TileId] = []
        if self.width(0, index) < TILE_WIDTH:
            return wanted  # the partial bundle: checked against the right edge alone
        # A full bundle b hangs off hash b % 256 of level-1 tile b // 256, which hangs
        # off level-2 tile b // 256², and so on up to an accepted (or edge) tile.
        level, position = 1, index
        while True:
            tile_index = position // TILE_WIDTH
            if (level, tile_index) in self.accepted:
                break
            wanted.append(TileId(level, tile_index, self.width(level, tile_index)))
            level, position = level + 1, tile_index
        wanted.reverse()
        return wanted

    # -- accepting tiles -------------------------------------------------------------

    def add_right_edge(self, edge: dict[tuple[int, int], bytes]) -> None:
        """Accept the right edge (`right_edge()`, keyed by (level, index)) when the root
        it gives is this tree's root (step 1)."""
        data = {}
        for t in self.right_edge():
            body = bytes(edge.get((t.level, t.index), b""))
            self._check_shape(t, body)
            data[(t.level, t.index)] = body
        try:
            got = tiles.tree_root(self.size, _Accepted(data))
        except LedgerError as e:
            raise TileMismatchError(f"right edge of the tree of size {self.size}: {e}") from e
        if got != self.root:
            raise TileMismatchError(
                f"the right-edge tiles of the tree of size {self.size} give root "
                f"{got.hex()[:16]}.., the checkpoint says {self.root.hex()[:16]}.."
            )
        self.accepted.update(data)
        self.edge_checked = True

    def add(self, tile: TileId, body: bytes) -> None:
        """Accept a full tile when its hash is the one in the accepted tile above (step 2)."""
        if tile.level < 0 or self.width(tile.level, tile.index) != TILE_WIDTH:
            raise TileError(f"expected a full hash tile of the tree of size {self.size}")
        self._check_shape(TileId(tile.level, tile.index), body)
        want = self._parent_hash(tile.level + 1, tile.index)
        got = root_hash(tiles.split_hashes(body))
        if got != want:
            raise TileMismatchError(
                f"tile {tile.path()} hashes to {got.hex()[:16]}.., the tree of size "
                f"{self.size} has {want.hex()[:16]}.. there"
            )
        self.accepted[(tile.level, tile.index)] = bytes(body)

    # -- checking bundles ------------------------------------------------------------

    def check_bundle(self, index: int, entries: Sequence[bytes]) -> None:
        """Raise unless `entries` are the whole entry bundle `index` of this tree (steps
        3 and 4); its tiles (`needed_for_bundle`) must have been added."""
        self._check_index(index)
        width = self.width(0, index)
        if len(entries) != width:
            raise TileError(f"expected {width} entries in bundle {index}, found {len(entries)}")
        hashes = [leaf_hash(e) for e in entries]
        if width == TILE_WIDTH:
            want = self._parent_hash(1, index)
            got = root_hash(hashes)
            if got != want:
                raise TileMismatchError(
                    f"entry bundle {index} hashes to {got.hex()[:16]}.., the tree of size "
                    f"{self.size} has {want.hex()[:16]}.. there"
                )
            return
        edge = self.accepted.get((0, index))
        if edge is None:
            raise TileError("expected the right edge to be checked before the partial bundle")
        for i, (got_hash, want_hash) in enumerate(
            zip(hashes, tiles.split_hashes(edge), strict=True)
        ):
            if got_hash != want_hash:
                raise TileMismatchError(
                    f"entry {index * TILE_WIDTH + i} of partial bundle {index} is not the "
                    f"one in the tree of size {self.size}"
                )

    # -- helpers ---------------------------------------------------------------------

    def _check_index(self, index: int) -> None:
        if index < 0 or self.width(0, index) == 0:
            raise TileError(f"expected a bundle of the tree of size {self.size}, found {index}")

    def _parent_hash(self, level: int, child_index: int) -> bytes:
        """Hash `child_index % 256` of the accepted tile at `level` above it."""
        parent = self.accepted.get((level, child_index // TILE_WIDTH))
        if parent is None:
            raise TileError(
                f"expected tile {level}/{child_index // TILE_WIDTH} to be accepted first"
            )
        offset = (child_index % TILE_WIDTH) * HASH_SIZE
        return parent[offset : offset + HASH_SIZE]

    @staticmethod
    def _check_shape(tile: TileId, body: bytes) -> None:
        if len(body) != tile.width * HASH_SIZE:
            raise TileError(
                f"expected tile {tile.path()} of {tile.width * HASH_SIZE} bytes, found {len(body)}"
            )
