"""C2SP tlog-tiles@v0.1.0: tile paths, hash tiles, entry bundles, tile-backed proofs.

A tile at level L, index N holds up to 256 consecutive Merkle tree hashes of complete
subtrees of height 8·L (tlog-tiles "Merkle Tree"). Everything a client needs (tree
root, inclusion and consistency proofs) is computed here from tiles alone, read
through a `TileReader`: a proof for a 10-million-leaf tree reads a handful of tiles
and hashes inside them, instead of touching millions of leaves.

`append_leaves` is the writer's side: given the old tree size and a batch of new leaf
hashes, it returns the new content of every tile that changed (full or partial).

What this module does not do: fetch over HTTP, store tiles, verify checkpoints, or
parse log entries (see `ledger.log.entries`); bundles here are opaque byte strings.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ledger.log.errors import MerkleError, TileError
from ledger.log.merkle import (
    HASH_SIZE,
    consistency_path_from,
    empty_root,
    inclusion_path_from,
    node_hash,
    root_hash,
)

TILE_HEIGHT = 8  # tree levels per tile (tlog-tiles: "subtree of height 8")
TILE_WIDTH = 1 << TILE_HEIGHT  # hashes in a full tile (256)
FULL_TILE_BYTES = TILE_WIDTH * HASH_SIZE  # 8,192 bytes
MAX_LEVEL = 63  # tlog-tiles: L is between 0 and 63
MAX_ENTRY_BYTES = 0xFFFF  # bytes; entry bundles use a big-endian uint16 length prefix
ENTRIES_LEVEL = -1  # pseudo-level used by `TileId` for entry bundles

_N_ELEMENT = re.compile(r"x[0-9]{3}")
_N_LAST = re.compile(r"[0-9]{3}")
_DECIMAL = re.compile(r"0|[1-9][0-9]*")


class TileReader(Protocol):
    """Reads stored hash tiles (an HTTP client, a database, a dict in tests)."""

    def read_tile(self, level: int, index: int) -> bytes:
        """The stored bytes of tile (level, index): the full tile, or the widest partial
        one stored. Raises `TileError` (or any `LedgerError`) when it has none."""
        ...


def encode_index(index: int) -> str:
    """N as zero-padded 3-digit path elements, all but the last prefixed with 'x'."""
    if index < 0:
        raise TileError(f"expected a non-negative tile index, found {index}")
    groups = []
    while True:
        groups.append(f"{index % 1000:03d}")
        index //= 1000
        if index == 0:
            break
    groups.reverse()
    return "/".join([*(f"x{g}" for g in groups[:-1]), groups[-1]])


def _parse_index(elements: Sequence[str]) -> int:
    if not elements:
        raise TileError("expected a tile index, found nothing")
    *head, last = elements
    if not all(_N_ELEMENT.fullmatch(e) for e in head) or not _N_LAST.fullmatch(last):
        raise TileError(f"expected index elements like x001/234, found {'/'.join(elements)!r}")
    if head and head[0] == "x000":
        # Zero padding is per element: a leading all-zero group is not canonical.
        raise TileError(f"expected no leading x000 element, found {'/'.join(elements)!r}")
    value = 0
    for e in (*(h[1:] for h in head), last):
        value = value * 1000 + int(e)
    return value


def _split_partial(path: str) -> tuple[str, int]:
    """Split an optional '.p/<W>' suffix; return (rest, width) with width 256 if full."""
    if ".p/" not in path:
        return path, TILE_WIDTH
    rest, width_text = path.rsplit(".p/", 1)
    if not _DECIMAL.fullmatch(width_text) or not 1 <= int(width_text) < TILE_WIDTH:
        raise TileError(f"expected a partial width 1..255, found {width_text!r}")
    return rest, int(width_text)


@dataclass(frozen=True)
class TileId:
    """One tile (or entry bundle, level `ENTRIES_LEVEL`) and its width in hashes."""

    level: int
    index: int
    width: int = TILE_WIDTH

    def __post_init__(self) -> None:
        if not (self.level == ENTRIES_LEVEL or 0 <= self.level <= MAX_LEVEL):
            raise TileError(f"expected a tile level 0..{MAX_LEVEL}, found {self.level}")
        if self.index < 0:
            raise TileError(f"expected a non-negative tile index, found {self.index}")
        if not 1 <= self.width <= TILE_WIDTH:
            raise TileError(f"expected a tile width 1..{TILE_WIDTH}, found {self.width}")

    @property
    def is_partial(self) -> bool:
        return self.width < TILE_WIDTH

    def path(self) -> str:
        """'tile/<L>/<N>[.p/<W>]', or 'tile/entries/<N>[.p/<W>]' for an entry bundle."""
        level = "entries" if self.level == ENTRIES_LEVEL else str(self.level)
        suffix = f".p/{self.width}" if self.is_partial else ""
        return f"tile/{level}/{encode_index(self.index)}{suffix}"

    @classmethod
    def parse_path(cls, path: str) -> TileId:
        """Inverse of `path()`; refuses every non-canonical spelling."""
        rest, width = _split_partial(path)
        parts = rest.split("/")
        if len(parts) < 3 or parts[0] != "tile":
            raise TileError(f"expected 'tile/<L>/<N>[.p/<W>]', found {path!r}")
        if parts[1] == "entries":
            level = ENTRIES_LEVEL
        elif _DECIMAL.fullmatch(parts[1]) and int(parts[1]) <= MAX_LEVEL:
            level = int(parts[1])
        else:
            raise TileError(f"expected a level 0..{MAX_LEVEL} or 'entries', found {parts[1]!r}")
        return cls(level, _parse_index(parts[2:]), width)


def entry_bundle_path(index: int, width: int = TILE_WIDTH) -> str:
    """'tile/entries/<N>[.p/<W>]' (tlog-tiles "Log entries")."""
    return TileId(ENTRIES_LEVEL, index, width).path()


def parse_entry_bundle_path(path: str) -> tuple[int, int]:
    """(index, width) of an entry bundle path; refuses hash tile paths."""
    tile = TileId.parse_path(path)
    if tile.level != ENTRIES_LEVEL:
        raise TileError(f"expected an entry bundle path, found hash tile {path!r}")
    return tile.index, tile.width


def tile_width(level: int, index: int, size: int) -> int:
    """Hashes in tile (level, index) of a tree of `size` (0 when it does not exist)."""
    count = size >> (TILE_HEIGHT * level)  # hashes at this tile level
    return max(0, min(TILE_WIDTH, count - index * TILE_WIDTH))


def tiles_for_size(size: int) -> list[TileId]:
    """Every hash tile that a tree of `size` consists of, full and partial."""
    out: list[TileId] = []
    level = 0
    while (count := size >> (TILE_HEIGHT * level)) > 0:
        full, rest = divmod(count, TILE_WIDTH)
        out.extend(TileId(level, i) for i in range(full))
        if rest:
            out.append(TileId(level, full, rest))
        level += 1
    return out


def split_hashes(data: bytes) -> list[bytes]:
    """A tile body as its hashes; refuses bodies that are not a whole number of hashes."""
    if len(data) % HASH_SIZE or len(data) > FULL_TILE_BYTES:
        raise TileError(
            f"expected a tile of 1..{TILE_WIDTH} hashes of {HASH_SIZE} bytes, "
            f"found {len(data)} bytes"
        )
    return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


class _TileHashes:
    """Complete-subtree hashes of one tree size, read from tiles, cached per call."""

    def __init__(self, size: int, reader: TileReader) -> None:
        self.size = size
        self.reader = reader
        self.tiles: dict[tuple[int, int], bytes] = {}

    def _tile(self, level: int, index: int) -> bytes:
        key = (level, index)
        data = self.tiles.get(key)
        if data is None:
            need = tile_width(level, index, self.size) * HASH_SIZE
            data = bytes(self.reader.read_tile(level, index))
            if len(data) < need or len(data) % HASH_SIZE or len(data) > FULL_TILE_BYTES:
                raise TileError(
                    f"expected tile {level}/{index} of at least {need} bytes "
                    f"for size {self.size}, found {len(data)}"
                )
            data = data[:need]
            self.tiles[key] = data
        return data

    def subtree(self, height: int, index: int) -> bytes:
        """MTH of the complete subtree D[index·2^h : (index+1)·2^h]."""
        level, r = divmod(height, TILE_HEIGHT)
        first = index << r  # position of its first hash among level-L tile hashes
        tile_index, offset = divmod(first, TILE_WIDTH)
        data = self._tile(level, tile_index)
        start = offset * HASH_SIZE
        chunk = data[start : start + (HASH_SIZE << r)]
        if len(chunk) != HASH_SIZE << r:
            raise TileError(f"expected subtree {height}/{index} inside tile {level}/{tile_index}")
        return root_hash([chunk[i : i + HASH_SIZE] for i in range(0, len(chunk), HASH_SIZE)])

    def range_hash(self, lo: int, hi: int) -> bytes:
        """MTH(D[lo:hi]) for the ranges that RFC 9162 proofs ask for.

        Those ranges start at a multiple of a power of two at least as large as the
        range, so they split greedily into aligned complete subtrees, folded from the
        right as RFC 9162 §2.1.1 does.
        """
        if not 0 <= lo < hi <= self.size:
            raise MerkleError(f"expected 0 <= lo < hi <= {self.size}, found [{lo}, {hi})")
        parts: list[bytes] = []
        pos = lo
        while pos < hi:
            h = (hi - pos).bit_length() - 1
            while pos & ((1 << h) - 1):
                h -= 1
            parts.append(self.subtree(h, pos >> h))
            pos += 1 << h
        acc = parts[-1]
        for part in reversed(parts[:-1]):
            acc = node_hash(part, acc)
        return acc


def tree_root(size: int, reader: TileReader) -> bytes:
    """The RFC 9162 root hash of the tree of `size`, computed from its tiles."""
    if size < 0:
        raise TileError(f"expected a non-negative tree size, found {size}")
    if size == 0:
        return empty_root()
    return _TileHashes(size, reader).range_hash(0, size)


def inclusion_proof(index: int, size: int, reader: TileReader) -> list[bytes]:
    """RFC 9162 §2.1.3.1 inclusion proof of leaf `index` in the tree of `size`."""
    return inclusion_path_from(index, size, _TileHashes(size, reader).range_hash)


def consistency_proof(old_size: int, new_size: int, reader: TileReader) -> list[bytes]:
    """RFC 9162 §2.1.4.1 consistency proof from `old_size` to `new_size`."""
    return consistency_path_from(old_size, new_size, _TileHashes(new_size, reader).range_hash)


def append_leaves(
    old_size: int, new_leaf_hashes: Sequence[bytes], reader: TileReader
) -> dict[tuple[int, int], bytes]:
    """New content of every tile changed by appending `new_leaf_hashes` to the tree.

    Returns {(level, index): tile bytes}; a tile that is still partial appears with
    its new (wider) partial content. Only the rightmost partial tile of each level of
    the old tree is read.
    """
    if old_size < 0:
        raise TileError(f"expected a non-negative tree size, found {old_size}")
    for i, h in enumerate(new_leaf_hashes):
        if len(h) != HASH_SIZE:
            raise TileError(f"expected leaf hash {i} of {HASH_SIZE} bytes, found {len(h)}")
    out: dict[tuple[int, int], bytes] = {}
    incoming = [bytes(h) for h in new_leaf_hashes]  # new hashes at the current level
    level = 0
    while incoming:
        old_count = old_size >> (TILE_HEIGHT * level)
        first_tile, kept = divmod(old_count, TILE_WIDTH)
        hashes: list[bytes] = []
        if kept:
            existing = bytes(reader.read_tile(level, first_tile))
            if len(existing) < kept * HASH_SIZE or len(existing) % HASH_SIZE:
                raise TileError(
                    f"expected tile {level}/{first_tile} of at least {kept} hashes, "
                    f"found {len(existing)} bytes"
                )
            hashes = split_hashes(existing[: kept * HASH_SIZE])
        hashes.extend(incoming)
        completed: list[bytes] = []
        for k in range(0, len(hashes), TILE_WIDTH):
            chunk = hashes[k : k + TILE_WIDTH]
            out[(level, first_tile + k // TILE_WIDTH)] = b"".join(chunk)
            if len(chunk) == TILE_WIDTH:
                completed.append(root_hash(chunk))
        incoming = completed
        level += 1
        if level > MAX_LEVEL:
            raise TileError(f"expected a tree of at most {MAX_LEVEL} tile levels")
    return out


class _EmptyTree:
    def read_tile(self, level: int, index: int) -> bytes:
        raise TileError(f"expected no tile {level}/{index} in the empty tree")


def tiles_of_tree(leaf_hashes: Sequence[bytes]) -> dict[tuple[int, int], bytes]:
    """Every hash tile of the tree of `leaf_hashes`, {(level, index): bytes}, the
    rightmost of each level partial (the whole tree appended to the empty one)."""
    return append_leaves(0, leaf_hashes, _EmptyTree())


def encode_entry_bundle(entries: Sequence[bytes]) -> bytes:
    """Big-endian uint16 length-prefixed entries (tlog-tiles "Log entries")."""
    if not 1 <= len(entries) <= TILE_WIDTH:
        raise TileError(f"expected 1..{TILE_WIDTH} entries in a bundle, found {len(entries)}")
    out = bytearray()
    for i, e in enumerate(entries):
        if len(e) > MAX_ENTRY_BYTES:
            raise TileError(
                f"expected entry {i} of at most {MAX_ENTRY_BYTES} bytes, found {len(e)}"
            )
        out += struct.pack(">H", len(e)) + e
    return bytes(out)


def decode_entry_bundle(data: bytes) -> list[bytes]:
    """Inverse of `encode_entry_bundle`; refuses truncation and over-long bundles."""
    entries: list[bytes] = []
    pos = 0
    while pos < len(data):
        if len(entries) == TILE_WIDTH:
            raise TileError(f"expected at most {TILE_WIDTH} entries in a bundle, found more")
        if pos + 2 > len(data):
            raise TileError(f"expected a 2-byte length at offset {pos}, found 1 byte")
        (n,) = struct.unpack_from(">H", data, pos)
        pos += 2
        if pos + n > len(data):
            raise TileError(f"expected entry {len(entries)} of {n} bytes, found {len(data) - pos}")
        entries.append(bytes(data[pos : pos + n]))
        pos += n
    if not entries:
        raise TileError("expected at least one entry in a bundle, found none")
    return entries
