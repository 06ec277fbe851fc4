"""SQL storage of one region's log: entries, tiles, signed checkpoints and tree state.

What it does: typed SQLAlchemy 2 models, `open_store(url)` (SQLite in WAL mode by
default, PostgreSQL in production; both migrated by Alembic to head on open), and the
few queries the node needs, chief among them `commit_batch`, which writes a sequenced
batch (entries, changed tiles, tree state and the signed checkpoint of the new size) in
ONE transaction, fenced on the previous tree size so two writers can never both extend
the same tree. What it does not: no Merkle arithmetic (ledger.log.tiles), no validation
(ledger.log.rules), no signing (ledger.log.note). It keeps no per-leaf hash column: leaf hashes
live only in the level-0 tiles (C2SP tlog-tiles), so an anchor costs one entry row,
its dedupe hash and 32 bytes of tile.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from common import db as common_db
from common.db import SqliteTuning, redact
from ledger.log.errors import StorageError
from ledger.log.merkle import EMPTY_ROOT
from ledger.node.migrations import upgrade_head

HASH_BYTES = 32  # bytes, SHA-256
TILE_WIDTH_HASHES = 256  # hashes per full tile (C2SP tlog-tiles)
FULL_TILE_BYTES = HASH_BYTES * TILE_WIDTH_HASHES  # bytes
SQLITE_BUSY_TIMEOUT_S = 10.0  # seconds a connection waits on a locked database
LEAF_FETCH_CHUNK = 10_000  # rows per query when streaming every leaf
FULL_TILE_CACHE_TILES = 1024  # full tiles kept in memory per store (8 MiB at 8 KiB each)
VERSION_TABLE = "ledger_alembic_version"

# SQLite only treats "INTEGER PRIMARY KEY" as the rowid alias; BIGINT would add a
# second index per row, so integer keys are INTEGER on SQLite and BIGINT elsewhere.
Index64 = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class ConcurrentWriterError(StorageError):
    """The tree moved under this writer: another sequencer extended the same log."""


class Base(DeclarativeBase):
    pass


class EntryRow(Base):
    """One log leaf (RFC 6962-style timestamped entry bytes) at its index."""

    __tablename__ = "entries"
    idx: Mapped[int] = mapped_column(Index64, primary_key=True, autoincrement=False)
    # SHA-256 of the submitted entry bytes (without timestamp): the idempotency key.
    entry_hash: Mapped[bytes] = mapped_column(sa.LargeBinary(HASH_BYTES), unique=True)
    leaf: Mapped[bytes] = mapped_column(sa.LargeBinary)


class TileRow(Base):
    """The widest stored version of one hash tile; a full tile never changes again."""

    __tablename__ = "tiles"
    level: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    data: Mapped[bytes] = mapped_column(sa.LargeBinary)


class CheckpointRow(Base):
    """The one signed checkpoint of a tree size, with cosignature lines collected later."""

    __tablename__ = "checkpoints"
    size: Mapped[int] = mapped_column(Index64, primary_key=True, autoincrement=False)
    note: Mapped[bytes] = mapped_column(sa.LargeBinary)
    cosignatures: Mapped[str] = mapped_column(sa.Text, default="")
    signed_at_ms: Mapped[int] = mapped_column(sa.BigInteger)


class TreeStateRow(Base):
    """The single row naming the committed tree: size, root, last leaf timestamp."""

    __tablename__ = "tree_state"
    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    size: Mapped[int] = mapped_column(sa.BigInteger)
    root_hash: Mapped[bytes] = mapped_column(sa.LargeBinary(HASH_BYTES))
    last_timestamp_ms: Mapped[int] = mapped_column(sa.BigInteger)


class LogStateSnapshotRow(Base):
    """The rules' state after `size` leaves (ledger.node.state_snapshot bytes)."""

    __tablename__ = "log_state_snapshots"
    size: Mapped[int] = mapped_column(Index64, primary_key=True, autoincrement=False)
    data: Mapped[bytes] = mapped_column(sa.LargeBinary)


class RevocationSnapshotRow(Base):
    """A revocation snapshot a checkpoint committed to, by its SHA-256 (ledger.log.revocation)."""

    __tablename__ = "revocation_snapshots"
    digest: Mapped[bytes] = mapped_column(sa.LargeBinary(HASH_BYTES), primary_key=True)
    tree_size: Mapped[int] = mapped_column(sa.BigInteger, index=True)
    data: Mapped[bytes] = mapped_column(sa.LargeBinary)


@dataclass(frozen=True)
class BlobToStore:
    """A content-addressed revocation snapshot to keep with a batch; older ones than
    `keep_from_size` are pruned in the same transaction."""

    digest: bytes
    tree_size: int
    data: bytes
    keep_from_size: int = 0


@dataclass(frozen=True)
class TreeState:
    size: int
    root_hash: bytes
    last_timestamp_ms: int


@dataclass(frozen=True)
class StoredCheckpoint:
    size: int
    note: bytes
    cosignatures: tuple[str, ...]
    signed_at_ms: int

    def served(self) -> bytes:
        """The note with its cosignature lines appended (C2SP tlog-cosignature)."""
        if not self.cosignatures:
            return self.note
        return self.note + "".join(line.rstrip("\n") + "\n" for line in self.cosignatures).encode()


@dataclass(frozen=True)
class NewLeaf:
    idx: int
    entry_hash: bytes
    leaf: bytes


def tile_existed(level: int, idx: int, tree_size: int) -> bool:
    """Whether a tree of `tree_size` leaves already stored (part of) tile (level, idx).

    A level-L tile holds hashes of complete subtrees of 256**L leaves (tlog-tiles).
    """
    return (tree_size >> (8 * level)) > idx * TILE_WIDTH_HASHES


def make_engine(url: str) -> Engine:
    """An engine for `url` (common.db), SQLite tuned for one writer and many readers."""
    try:
        # synchronous=FULL on SQLite: every commit is fsynced before COMMIT returns, so a
        # checkpoint is signed and served only after the entries it commits survive a
        # power cut too (NORMAL in WAL survives a process crash, but an OS crash may
        # drop the last commits: a cosigned tail lost that way would fork the log
        # against its witnesses for good). synchronous_commit=on for the node's
        # PostgreSQL sessions whatever the server default: a commit returns only once
        # its WAL record is flushed, so the checkpoint committed with the entries is
        # durable before anyone is answered.
        pg_options = "-c synchronous_commit=on"
        if url.startswith("postgresql"):
            # A temporal shard's URL names its schema in libpq `options`
            # (ledger.node.sharding); keep it beside the node's own session settings.
            parsed = sa.engine.make_url(url)
            extra = parsed.query.get("options")
            if isinstance(extra, str) and extra:
                url = parsed.difference_update_query(["options"]).render_as_string(
                    hide_password=False
                )
                pg_options = f"{extra} {pg_options}"
        return common_db.make_engine(
            url,
            SqliteTuning(synchronous="FULL", busy_timeout_s=SQLITE_BUSY_TIMEOUT_S),
            pg_options=pg_options,
        )
    except (SQLAlchemyError, ValueError, OSError) as e:
        raise StorageError(f"cannot open database {redact(url)}: {e}") from e


class Store:
    """Queries over one log's tables. Thread-safe: every call uses its own connection."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # Full tiles are immutable (C2SP tlog-tiles), so caching them can never serve a
        # stale tile; partial tiles are always read from the database. Upper-level tiles
        # are on every proof's path, so even a small cache removes most proof reads.
        self._full_tiles: OrderedDict[tuple[int, int], bytes] = OrderedDict()
        self._full_lock = threading.Lock()

    # -- reads ---------------------------------------------------------------------

    def tree_state(self) -> TreeState:
        with self._conn() as c:
            row = c.execute(
                sa.select(TreeStateRow.size, TreeStateRow.root_hash, TreeStateRow.last_timestamp_ms)
            ).first()
        if row is None:
            return TreeState(0, EMPTY_ROOT, 0)
        return TreeState(int(row[0]), bytes(row[1]), int(row[2]))

    def read_tile(self, level: int, index: int) -> bytes:
        """TileReader: the stored bytes of the tile (widest version), b"" if absent."""
        key = (level, index)
        with self._full_lock:
            cached = self._full_tiles.get(key)
            if cached is not None:
                self._full_tiles.move_to_end(key)
                return cached
        with self._conn() as c:
            data = c.execute(
                sa.select(TileRow.data).where(TileRow.level == level, TileRow.idx == index)
            ).scalar()
        tile = b"" if data is None else bytes(data)
        if len(tile) == FULL_TILE_BYTES:
            with self._full_lock:
                self._full_tiles[key] = tile
                if len(self._full_tiles) > FULL_TILE_CACHE_TILES:
                    self._full_tiles.popitem(last=False)
        return tile

    def leaves(self, start: int, end: int) -> list[bytes]:
        """Leaf bytes for indices [start, end), in order."""
        with self._conn() as c:
            rows = c.execute(
                sa.select(EntryRow.leaf)
                .where(EntryRow.idx >= start, EntryRow.idx < end)
                .order_by(EntryRow.idx)
            ).scalars()
            return [bytes(r) for r in rows]

    def iter_leaves(self, end: int, start: int = 0) -> Iterator[bytes]:
        """Every leaf in [start, end), streamed in chunks (startup state rebuild, audits)."""
        for first in range(start, end, LEAF_FETCH_CHUNK):
            yield from self.leaves(first, min(end, first + LEAF_FETCH_CHUNK))

    def find_indices(self, entry_hashes: Sequence[bytes]) -> dict[bytes, int]:
        """The existing index of each already-logged entry hash (absent ones omitted)."""
        found: dict[bytes, int] = {}
        with self._conn() as c:
            for i in range(0, len(entry_hashes), 500):
                chunk = list(entry_hashes[i : i + 500])
                for h, idx in c.execute(
                    sa.select(EntryRow.entry_hash, EntryRow.idx).where(
                        EntryRow.entry_hash.in_(chunk)
                    )
                ):
                    found[bytes(h)] = int(idx)
        return found

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        with self._conn() as c:
            row = c.execute(_CP_COLUMNS.order_by(CheckpointRow.size.desc()).limit(1)).first()
            return None if row is None else _checkpoint(row)

    def checkpoint(self, size: int) -> StoredCheckpoint | None:
        with self._conn() as c:
            row = c.execute(_CP_COLUMNS.where(CheckpointRow.size == size)).first()
            return None if row is None else _checkpoint(row)

    # -- writes --------------------------------------------------------------------

    def commit_batch(
        self,
        old_size: int,
        new_leaves: Sequence[NewLeaf],
        tiles: Mapping[tuple[int, int], bytes],
        state: TreeState,
        checkpoint_note: bytes,
        signed_at_ms: int,
        state_snapshot: tuple[int, bytes] | None = None,
        revocation_snapshot: BlobToStore | None = None,
    ) -> None:
        """Append a sequenced batch and its signed checkpoint atomically, with the rules'
        state snapshot (size, bytes) and the committed revocation snapshot if given.

        Fenced on `old_size`: if the stored tree is not exactly `old_size` leaves, nothing
        is written and ConcurrentWriterError is raised.
        """
        if state.size != old_size + len(new_leaves):
            raise StorageError(
                f"expected new size {old_size + len(new_leaves)}, found {state.size}"
            )
        try:
            with self.engine.begin() as c:
                self._fence(c, old_size, state)
                if new_leaves:
                    c.execute(
                        sa.insert(EntryRow),
                        [
                            {"idx": n.idx, "entry_hash": n.entry_hash, "leaf": n.leaf}
                            for n in new_leaves
                        ],
                    )
                inserts = []
                for (level, idx), data in tiles.items():
                    if tile_existed(level, idx, old_size):
                        # Only ever widen a partial tile; a full tile is immutable.
                        c.execute(
                            sa.update(TileRow)
                            .where(
                                TileRow.level == level,
                                TileRow.idx == idx,
                                sa.func.length(TileRow.data) < len(data),
                                sa.func.length(TileRow.data) < FULL_TILE_BYTES,
                            )
                            .values(data=data)
                        )
                    else:
                        inserts.append({"level": level, "idx": idx, "data": data})
                if inserts:
                    c.execute(sa.insert(TileRow), inserts)
                c.execute(
                    sa.insert(CheckpointRow).values(
                        size=state.size,
                        note=checkpoint_note,
                        cosignatures="",
                        signed_at_ms=signed_at_ms,
                    )
                )
                if state_snapshot is not None:
                    c.execute(
                        sa.insert(LogStateSnapshotRow).values(
                            size=state_snapshot[0], data=state_snapshot[1]
                        )
                    )
                    # Only the newest is ever loaded; keep one older in case of doubt.
                    c.execute(
                        sa.delete(LogStateSnapshotRow).where(
                            LogStateSnapshotRow.size
                            < sa.select(sa.func.max(LogStateSnapshotRow.size))
                            .where(LogStateSnapshotRow.size < state_snapshot[0])
                            .scalar_subquery()
                        )
                    )
                if revocation_snapshot is not None:
                    self._put_revocation_snapshot(c, revocation_snapshot)
        except SQLAlchemyError as e:
            raise StorageError(f"batch commit at size {old_size} failed: {e}") from e

    def _put_revocation_snapshot(self, c: sa.Connection, blob: BlobToStore) -> None:
        exists = c.execute(
            sa.select(RevocationSnapshotRow.tree_size).where(
                RevocationSnapshotRow.digest == blob.digest
            )
        ).first()
        if exists is None:
            c.execute(
                sa.insert(RevocationSnapshotRow).values(
                    digest=blob.digest, tree_size=blob.tree_size, data=blob.data
                )
            )
        if blob.keep_from_size:
            c.execute(
                sa.delete(RevocationSnapshotRow).where(
                    RevocationSnapshotRow.tree_size < blob.keep_from_size
                )
            )

    def put_revocation_snapshot(self, blob: BlobToStore) -> None:
        """Keep a revocation snapshot outside a batch (startup re-derivation)."""
        try:
            with self.engine.begin() as c:
                self._put_revocation_snapshot(c, blob)
        except SQLAlchemyError as e:
            raise StorageError(f"storing revocation snapshot failed: {e}") from e

    def revocation_snapshot(self, digest: bytes) -> bytes | None:
        with self._conn() as c:
            data = c.execute(
                sa.select(RevocationSnapshotRow.data).where(RevocationSnapshotRow.digest == digest)
            ).scalar()
        return None if data is None else bytes(data)

    def latest_state_snapshot(self, at_most: int) -> tuple[int, bytes] | None:
        """The newest stored rules-state snapshot of at most `at_most` leaves."""
        with self._conn() as c:
            row = c.execute(
                sa.select(LogStateSnapshotRow.size, LogStateSnapshotRow.data)
                .where(LogStateSnapshotRow.size <= at_most)
                .order_by(LogStateSnapshotRow.size.desc())
                .limit(1)
            ).first()
        return None if row is None else (int(row[0]), bytes(row[1]))

    def _fence(self, c: sa.Connection, old_size: int, state: TreeState) -> None:
        values = {
            "size": state.size,
            "root_hash": state.root_hash,
            "last_timestamp_ms": state.last_timestamp_ms,
        }
        if old_size == 0 and c.execute(sa.select(TreeStateRow.id)).first() is None:
            c.execute(sa.insert(TreeStateRow).values(id=1, **values))
            return
        res = c.execute(
            sa.update(TreeStateRow)
            .where(TreeStateRow.id == 1, TreeStateRow.size == old_size)
            .values(**values)
        )
        if res.rowcount != 1:
            raise ConcurrentWriterError(
                f"expected the stored tree at size {old_size}; another writer moved it"
            )

    def add_checkpoint_if_absent(self, size: int, note: bytes, signed_at_ms: int) -> bool:
        """Store the checkpoint for `size` unless one exists; True if this one was stored."""
        try:
            with self.engine.begin() as c:
                if c.execute(
                    sa.select(CheckpointRow.size).where(CheckpointRow.size == size)
                ).first():
                    return False
                c.execute(
                    sa.insert(CheckpointRow).values(
                        size=size, note=note, cosignatures="", signed_at_ms=signed_at_ms
                    )
                )
                return True
        except SQLAlchemyError as e:
            raise StorageError(f"storing checkpoint {size} failed: {e}") from e

    def set_cosignatures(self, size: int, lines: Sequence[str], note: bytes | None = None) -> None:
        """Attach cosignature lines (C2SP tlog-cosignature) to the checkpoint of `size`;
        with `note`, only while that is still the stored note of the size (a frozen
        shard's final note replaces it, and lines over the old text would not verify)."""
        text = "".join(line.rstrip("\n") + "\n" for line in lines)
        cond = CheckpointRow.size == size
        if note is not None:
            cond = sa.and_(cond, CheckpointRow.note == note)
        try:
            with self.engine.begin() as c:
                c.execute(sa.update(CheckpointRow).where(cond).values(cosignatures=text))
        except SQLAlchemyError as e:
            raise StorageError(f"storing cosignatures for {size} failed: {e}") from e

    def replace_checkpoint_note(
        self, size: int, held: bytes, note: bytes, signed_at_ms: int
    ) -> bool:
        """Replace the note of the latest size by another note of the same tree (a
        shard's final checkpoint, which adds the frozen line), dropping the cosignatures
        of the old text; compare-and-swap on `held`. True when replaced."""
        try:
            with self.engine.begin() as c:
                done = c.execute(
                    sa.update(CheckpointRow)
                    .where(CheckpointRow.size == size, CheckpointRow.note == held)
                    .values(note=note, cosignatures="", signed_at_ms=signed_at_ms)
                )
                return bool(done.rowcount)
        except SQLAlchemyError as e:
            raise StorageError(f"replacing checkpoint {size} failed: {e}") from e

    def put_tiles_raw(
        self,
        tiles: Mapping[tuple[int, int], bytes],
        state: TreeState,
        leaves: Sequence[NewLeaf] = (),
    ) -> None:
        """Bulk-load tiles and tree state without sequencing (benchmarks, imports)."""
        with self._full_lock:
            self._full_tiles.clear()
        with self.engine.begin() as c:
            c.execute(sa.delete(TreeStateRow))
            c.execute(
                sa.insert(TreeStateRow).values(
                    id=1,
                    size=state.size,
                    root_hash=state.root_hash,
                    last_timestamp_ms=state.last_timestamp_ms,
                )
            )
            rows = [{"level": lv, "idx": i, "data": d} for (lv, i), d in tiles.items()]
            for k in range(0, len(rows), 5000):
                c.execute(sa.insert(TileRow), rows[k : k + 5000])
            if leaves:
                c.execute(
                    sa.insert(EntryRow),
                    [{"idx": n.idx, "entry_hash": n.entry_hash, "leaf": n.leaf} for n in leaves],
                )

    def dispose(self) -> None:
        self.engine.dispose()

    def _conn(self) -> Any:
        return _Wrapped(self.engine)


class _Wrapped:
    """A read connection that turns driver errors into StorageError."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # Full tiles are immutable (C2SP tlog-tiles), so caching them can never serve a
        # stale tile; partial tiles are always read from the database. Upper-level tiles
        # are on every proof's path, so even a small cache removes most proof reads.
        self._full_tiles: OrderedDict[tuple[int, int], bytes] = OrderedDict()
        self._full_lock = threading.Lock()
        self.conn: sa.Connection | None = None

    def __enter__(self) -> sa.Connection:
        try:
            self.conn = self.engine.connect()
        except SQLAlchemyError as e:
            raise StorageError(f"cannot connect to the database: {e}") from e
        return self.conn

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        assert self.conn is not None
        self.conn.close()
        if isinstance(exc, SQLAlchemyError):
            raise StorageError(f"database read failed: {exc}") from exc


_CP_COLUMNS = sa.select(
    CheckpointRow.size, CheckpointRow.note, CheckpointRow.cosignatures, CheckpointRow.signed_at_ms
)


def _checkpoint(row: sa.Row[int, bytes, str | None, int]) -> StoredCheckpoint:
    size, note, cosignatures, signed_at_ms = row
    lines = tuple(x for x in (cosignatures or "").split("\n") if x)
    return StoredCheckpoint(int(size), bytes(note), lines, int(signed_at_ms))


def open_store(url: str, migrate: bool = True) -> Store:
    """Open (and by default migrate to head) the log database at `url`."""
    engine = make_engine(url)
    if migrate:
        upgrade_head(engine)
    return Store(engine)
