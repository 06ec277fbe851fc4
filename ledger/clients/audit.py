"""Re-verify a whole log from its checkpoint and tiles alone, as an outside auditor.

What it does: `audit_log(fetcher, log_verifier, region, root_public_key)`:
  1. opens the checkpoint: the log's signature must verify (C2SP tlog-checkpoint);
  2. fetches every entry bundle of that tree size and recomputes every leaf hash
     (RFC 9162 §2.1.1), then every hash tile bottom-up, and compares each with the tile
     the log serves (C2SP tlog-tiles);
  3. recomputes the root from those tiles and compares it with the checkpoint;
  4. replays `ledger.log.rules.apply_entry` over every entry from the empty state.
Any difference raises `AuditError` saying where and what was expected. What it does
not: HTTP itself (the fetcher is a `ledger.clients.reader.LogReader`: `HttpLogReader`,
`LedgerClient` or the in-memory `MemoryFetcher`), witness
policy (cosignatures are reported, not required), or persisting results.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ledger.clients.reader import LogReader
from ledger.log import tiles
from ledger.log.checkpoint import open_checkpoint
from ledger.log.entries import decode_entry, decode_leaf
from ledger.log.errors import LedgerError
from ledger.log.merkle import HASH_SIZE, leaf_hash, root_hash
from ledger.log.note import NoteVerifier
from ledger.log.rules import LogState, apply_entry

Progress = Callable[[int, int], None]


class AuditError(LedgerError):
    """The log is inconsistent with its own checkpoint, tiles or rules."""


@dataclass(frozen=True)
class AuditReport:
    origin: str
    size: int
    root_hash: bytes
    entries_checked: int
    tiles_checked: int
    entry_counts: Mapping[str, int]  # entry type -> count
    cosigners: tuple[str, ...]


class MemoryFetcher:
    """In-memory fake of a log's read side, keyed by tlog-tiles path."""

    def __init__(self, files: Mapping[str, bytes], name: str = "memory") -> None:
        self.files = dict(files)
        self.name = name

    def _get(self, path: str) -> bytes:
        if path not in self.files:
            raise AuditError(f"expected {path} to be served, found nothing")
        return self.files[path]

    def checkpoint(self) -> bytes:
        return self._get("checkpoint")

    def tile(self, level: int, index: int, width: int = tiles.TILE_WIDTH) -> bytes:
        return self._get(tiles.TileId(level, index, width).path())

    def entry_bundle(self, index: int, width: int = tiles.TILE_WIDTH) -> bytes:
        return self._get(tiles.entry_bundle_path(index, width))


class _DictReader:
    def __init__(self, data: Mapping[tuple[int, int], bytes]) -> None:
        self.data = data

    def read_tile(self, level: int, index: int) -> bytes:
        return self.data[(level, index)]


def audit_log(
    fetcher: LogReader,
    log_verifier: NoteVerifier,
    initial_state: LogState,
    progress: Progress | None = None,
) -> AuditReport:
    """Audit the log behind `fetcher`; raise AuditError on the first inconsistency."""
    # Step 1: the checkpoint, signed by the log key the auditor was given out of band.
    try:
        opened = open_checkpoint(fetcher.checkpoint(), log_verifier)
    except LedgerError as e:
        raise AuditError(f"checkpoint: {e}") from e
    cp = opened.checkpoint
    size = cp.size
    cosigners = tuple(s.name for s in opened.note.signatures if s.name != log_verifier.name)
    # Step 2: every entry bundle -> leaf hashes -> level-0 tiles, then upper levels.
    computed: dict[tuple[int, int], bytes] = {}
    state = initial_state
    counts: dict[str, int] = {}
    level_hashes: list[bytes] = []
    n_bundles = (size + tiles.TILE_WIDTH - 1) // tiles.TILE_WIDTH
    for b in range(n_bundles):
        width = tiles.tile_width(0, b, size)
        try:
            leaves = tiles.decode_entry_bundle(fetcher.entry_bundle(b, width))
        except LedgerError as e:
            raise AuditError(f"entry bundle {b} (width {width}): {e}") from e
        if len(leaves) != width:
            raise AuditError(f"entry bundle {b}: expected {width} entries, found {len(leaves)}")
        for offset, raw in enumerate(leaves):
            index = b * tiles.TILE_WIDTH + offset
            # Step 4 (streamed): the rules over every entry, in log order.
            try:
                leaf = decode_leaf(raw)
                state = apply_entry(state, leaf)
            except LedgerError as e:
                raise AuditError(f"entry {index}: {e}") from e
            kind = type(leaf_entry_of(leaf)).__name__
            counts[kind] = counts.get(kind, 0) + 1
        hashes = [leaf_hash(raw) for raw in leaves]
        computed[(0, b)] = b"".join(hashes)
        level_hashes.extend(hashes)
        if progress is not None:
            progress(b * tiles.TILE_WIDTH + width, size)
    tiles_checked = _check_tiles(fetcher, computed, size)
    # Step 3: the root from the recomputed tiles must be the checkpoint's.
    root = tiles.tree_root(size, _DictReader(computed)) if size else root_hash([])
    if root != cp.root_hash:
        raise AuditError(
            f"root of the {size} served entries is {root.hex()}, "
            f"checkpoint says {cp.root_hash.hex()}"
        )
    return AuditReport(cp.origin, size, root, size, tiles_checked, counts, cosigners)


def leaf_entry_of(leaf: object) -> object:
    """The decoded entry inside a timestamped leaf (for counting by type)."""
    raw = getattr(leaf, "entry_bytes", None)
    if isinstance(raw, bytes):
        try:
            return decode_entry(raw)
        except LedgerError:
            return leaf
    return leaf


def _check_tiles(fetcher: LogReader, computed: dict[tuple[int, int], bytes], size: int) -> int:
    """Build the upper tile levels from level 0 and compare every tile with the served one."""
    level = 0
    while (size >> (tiles.TILE_HEIGHT * (level + 1))) > 0:
        below = [computed[(level, i)] for i in range(_count(level, size))]
        upper: list[bytes] = []
        for data in below:
            if len(data) == tiles.FULL_TILE_BYTES:
                upper.append(root_hash(tiles.split_hashes(data)))
        for i in range(0, len(upper), tiles.TILE_WIDTH):
            computed[(level + 1, i // tiles.TILE_WIDTH)] = b"".join(upper[i : i + tiles.TILE_WIDTH])
        level += 1
    checked = 0
    for tid in tiles.tiles_for_size(size):
        want = computed[(tid.level, tid.index)][: tid.width * HASH_SIZE]
        try:
            got = fetcher.tile(tid.level, tid.index, tid.width)
        except LedgerError as e:
            raise AuditError(f"{tid.path()}: {e}") from e
        if got != want:
            raise AuditError(
                f"{tid.path()}: served tile differs from the one recomputed from the entries"
            )
        checked += 1
    return checked


def _count(level: int, size: int) -> int:
    hashes = size >> (tiles.TILE_HEIGHT * level)
    return (hashes + tiles.TILE_WIDTH - 1) // tiles.TILE_WIDTH
