"""Bulk pre-fill of one log's database: the rows the sequencer would have committed for
a given list of entries, written without sequencing them (millions of entries in
minutes instead of hours), so a benchmark can measure a node on top of a large shard.

What it writes, for entries e_0 .. e_{n-1} with leaf timestamps t_0 <= .. <= t_{n-1}:

- `entries`: (i, SHA-256(e_i), leaf_i) with leaf_i = encode_leaf(t_i, e_i), exactly
  the row `Store.commit_batch` inserts (ledger.node.storage, ledger.log.entries);
- `tiles`: every hash tile of the tree of size n (C2SP tlog-tiles), level 0 holding
  the RFC 9162 §2.1.1 leaf hashes SHA-256(0x00 || leaf_i), level L+1 the roots of the
  full level-L tiles, the rightmost tile of each level as wide as the sequencer leaves
  it (its widest stored version);
- `tree_state`: (n, RFC 9162 root, t_{n-1});
- `log_state_snapshots`: the rules' state after n leaves with the log's key entries,
  encoded by ledger.node.state_snapshot, so the node starts without replaying n leaves.

No checkpoint row: the node signs the checkpoint of the stored size when it opens the
store (`Sequencer._ensure_checkpoint`, with its own extension lines), as after a fresh
start. The intermediate per-batch checkpoints a sequencer would have left are history,
not part of the tree; they cost a few hundred bytes per batch.

Entries may be key entries (applied with the real rules) and credential anchors. An
anchor's status index is checked fresh (a bitmap), and a sample of anchors goes through
`ledger.log.rules.apply_entry` too; any other entry type is refused. On PostgreSQL the
rows go through binary COPY; on SQLite (tests) through executemany inserts. Each chunk
commits on its own: a prefill that failed halfway leaves a database to throw away.
tests/bench/test_ledger_prefill.py proves the rows byte-identical to a sequencer's.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace

import sqlalchemy as sa
from pyroaring import BitMap64

from ledger.log.entries import (
    TYPE_CODES,
    CredentialAnchored,
    EntryType,
    TimestampedEntry,
    encode_entry,
    is_key_entry,
)
from ledger.log.merkle import empty_root
from ledger.log.rules import IndexSet, LogState, apply_entry
from ledger.log.tiles import TILE_WIDTH, tree_root
from ledger.node.state_snapshot import encode_state_snapshot
from ledger.node.storage import EntryRow, LogStateSnapshotRow, Store, TileRow, TreeStateRow

CHUNK_ENTRIES = 200_000  # entries per COPY and transaction
VALIDATE_EVERY = 1024  # 1 anchor in this many is also run through apply_entry
VALIDATE_FIRST = 256  # and every one of the first anchors
_ANCHOR_CODE = TYPE_CODES[EntryType.CREDENTIAL_ANCHORED]
_LEAF_HEADER = struct.Struct(">BQ")  # ledger.log.entries: version, timestamp_ms
_LEAF_VERSION = 1
_PGCOPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)  # PostgreSQL COPY BINARY
_PGCOPY_TRAILER = struct.pack(">h", -1)
_ENTRY_ROW = struct.Struct(">hiqi32si")  # 3 fields: idx int8, entry_hash bytea(32), leaf len
_TILE_ROW = struct.Struct(">hiiiqi")  # 3 fields: level int4, idx int8, data length
_U64 = struct.Struct(">Q")


class PrefillError(ValueError):
    """Entries the pre-fill cannot write as the sequencer would (type, order, rules)."""


@dataclass(frozen=True)
class PrefillResult:
    size: int
    root_hash: bytes
    last_timestamp_ms: int
    state: LogState


def anchor_entries(
    region: str, kid: str, start: int, stop: int, expires_at: int = 4_000_000_000
) -> Iterator[bytes]:
    """The canonical bytes of ledger.testing.anchor(keys, i) for i in [start, stop),
    built from one encoded template (ledger.log.entries: str8 region, digest, u64
    status index, str8 kid, u64 expiry) instead of a dataclass per entry."""
    template = encode_entry(CredentialAnchored(region, bytes(32), 0, kid, expires_at))
    head = template[: 3 + len(region)]  # version, type, str8 region
    tail = template[3 + len(region) + 32 + 8 :]  # str8 kid, u64 expires_at
    sha, pack = hashlib.sha256, _U64.pack
    for i in range(start, stop):
        yield head + sha(b"credential %d" % i).digest() + pack(i) + tail


def _anchor_index(entry: bytes) -> int:
    """The status index of a canonical anchor (after version, type, str8 region, digest)."""
    off = 3 + entry[2] + 32
    return int(_U64.unpack_from(entry, off)[0])


class _TileBuilder:
    """Streams leaf hashes into full tiles (each completed tile's root feeds the level
    above, C2SP tlog-tiles), handing full tiles out as they complete."""

    def __init__(self) -> None:
        self.pending: list[list[bytes]] = [[]]
        self.count: list[int] = [0]  # full tiles emitted per level
        self.done: list[tuple[int, int, bytes]] = []

    def add(self, level: int, h: bytes) -> None:
        row = self.pending[level]
        row.append(h)
        if len(row) == TILE_WIDTH:
            data = b"".join(row)
            self.done.append((level, self.count[level], data))
            self.count[level] += 1
            self.pending[level] = []
            if len(self.pending) == level + 1:
                self.pending.append([])
                self.count.append(0)
            self.add(level + 1, _tile_root(row))

    def take_full(self) -> list[tuple[int, int, bytes]]:
        out, self.done = self.done, []
        return out

    def partials(self) -> list[tuple[int, int, bytes]]:
        """The rightmost, partial tile of each level (the widest version stored)."""
        return [
            (level, self.count[level], b"".join(row))
            for level, row in enumerate(self.pending)
            if row
        ]


def _tile_root(hashes: list[bytes]) -> bytes:
    """RFC 9162 §2.1.1 root of 256 hashes (a power of two: pairwise, eight times)."""
    sha = hashlib.sha256
    level = hashes
    while len(level) > 1:
        level = [sha(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level), 2)]
    return level[0]


def prefill(
    store: Store,
    entries: Iterable[bytes],
    timestamp_ms: Callable[[int], int],
    initial: LogState,
    progress: Callable[[int], None] | None = None,
) -> PrefillResult:
    """Write `entries` into the EMPTY log database of `store` as the sequencer would
    have committed them, leaf i stamped `timestamp_ms(i)` (never decreasing)."""
    if store.tree_state().size != 0:
        raise PrefillError("expected an empty log to pre-fill")
    postgres = store.engine.dialect.name == "postgresql"
    sha = hashlib.sha256
    pack_leaf = _LEAF_HEADER.pack
    tiles = _TileBuilder()
    state = initial
    probe = initial  # keys only: to run a sample of anchors through the real rules
    key_entries: list[bytes] = []
    anchored = BitMap64()
    n = 0
    last_ts = 0
    rows: list[tuple[int, bytes, bytes]] = []

    def flush() -> None:
        _write(store, postgres, rows, tiles.take_full())
        rows.clear()
        if progress is not None:
            progress(n)

    for e in entries:
        ts = timestamp_ms(n)
        if ts < last_ts:
            raise PrefillError(f"expected non-decreasing timestamps, found {ts} after {last_ts}")
        leaf = pack_leaf(_LEAF_VERSION, ts) + e
        if len(e) > 2 and e[1] == _ANCHOR_CODE:
            index = _anchor_index(e)
            if index in anchored:
                raise PrefillError(f"status index {index} anchored twice")
            if len(anchored) < VALIDATE_FIRST or n % VALIDATE_EVERY == 0:
                apply_entry(replace(probe, last_timestamp_ms=0), TimestampedEntry(ts, e))
            anchored.add(index)
        elif is_key_entry(e):
            state = apply_entry(replace(state, last_timestamp_ms=last_ts), TimestampedEntry(ts, e))
            probe = state
            key_entries.append(e)
        else:
            raise PrefillError(f"entry {n}: only key entries and anchors can be pre-filled")
        rows.append((n, sha(e).digest(), leaf))
        tiles.add(0, sha(b"\x00" + leaf).digest())
        last_ts = ts
        n += 1
        if len(rows) >= CHUNK_ENTRIES:
            flush()
    _write(store, postgres, rows, tiles.take_full() + tiles.partials())
    rows.clear()
    root = tree_root(n, store) if n else empty_root()
    final = replace(
        state,
        anchored=IndexSet.of(anchored),
        last_timestamp_ms=last_ts,
        size=n,
    )
    with store.engine.begin() as c:
        c.execute(
            sa.insert(TreeStateRow).values(id=1, size=n, root_hash=root, last_timestamp_ms=last_ts)
        )
        c.execute(
            sa.insert(LogStateSnapshotRow).values(
                size=n, data=encode_state_snapshot(final, tuple(key_entries))
            )
        )
    if progress is not None:
        progress(n)
    return PrefillResult(n, root, last_ts, final)


def _write(
    store: Store,
    postgres: bool,
    rows: list[tuple[int, bytes, bytes]],
    tiles: list[tuple[int, int, bytes]],
) -> None:
    if postgres:
        _copy(store, rows, tiles)
        return
    with store.engine.begin() as c:
        if rows:
            c.execute(
                sa.insert(EntryRow), [{"idx": i, "entry_hash": h, "leaf": lf} for i, h, lf in rows]
            )
        if tiles:
            c.execute(
                sa.insert(TileRow), [{"level": lv, "idx": i, "data": d} for lv, i, d in tiles]
            )


def _copy(
    store: Store, rows: list[tuple[int, bytes, bytes]], tiles: list[tuple[int, int, bytes]]
) -> None:
    """PostgreSQL binary COPY (header, tuples of length-prefixed fields, -1 trailer)."""
    pack_entry, pack_tile = _ENTRY_ROW.pack, _TILE_ROW.pack
    raw = store.engine.raw_connection()
    try:
        conn = raw.driver_connection
        with conn.cursor() as cur:  # type: ignore[union-attr]
            if rows:
                buf = bytearray(_PGCOPY_HEADER)
                for i, h, leaf in rows:
                    buf += pack_entry(3, 8, i, 32, h, len(leaf))
                    buf += leaf
                buf += _PGCOPY_TRAILER
                with cur.copy(
                    "COPY entries (idx, entry_hash, leaf) FROM STDIN (FORMAT BINARY)"
                ) as cp:
                    cp.write(bytes(buf))
            if tiles:
                buf = bytearray(_PGCOPY_HEADER)
                for level, i, data in tiles:
                    buf += pack_tile(3, 4, level, 8, i, len(data))
                    buf += data
                buf += _PGCOPY_TRAILER
                with cur.copy("COPY tiles (level, idx, data) FROM STDIN (FORMAT BINARY)") as cp:
                    cp.write(bytes(buf))
        raw.commit()
    finally:
        raw.close()
