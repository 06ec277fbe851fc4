"""The sync client: bring a station's (or issuer's) local copy of every region's log
state up to a quorum-cosigned checkpoint, from any node or mirror, and serve it offline.

For each region, in order of preference (the region's node, its listed mirrors, then
every other member's validating mirror), the client:

1. fetches the checkpoint and opens it with the region's log key (C2SP tlog-checkpoint);
2. checks that its cosignatures meet the consortium's quorum (C2SP tlog-policy);
3. refuses rollback (a smaller tree than it trusts) and forks (same size, other root);
4. fetches the new entry bundles (C2SP tlog-tiles), checks each one as it arrives
   against the checkpoint's hash tiles (`ledger.log.tree_tiles`: a source serving a
   wrong bundle is abandoned at once, before it is staged), stages them durably chunk
   by chunk (an interrupted sync resumes where it stopped), and recomputes the root from its
   stored compact range (the right edge of the tree) plus the new leaf hashes: equal to
   the checkpoint's root proves both that the entries are the logged ones and that the
   new tree extends the one it trusted (RFC 9162 §2.1: the old right edge determines
   the old root);
5. only then applies the staged entries to its tables — keys, revoked status indices,
   anchors — and records the checkpoint, in one transaction.

Temporal shards (ledger.log.shards): for a sharded region the client follows every
shard the region's plan tracks at its clock, each as a log of its own (log id
`<region>/<k>`, origin `<base>/<k>`, read from the node's `/<k>/` prefix or a mirror of
that origin) with its own trusted size, right edge, revocations and anchors, and drops
the state of a shard once it is droppable. A region's freshness is the oldest quorum
time among its tracked shards.

`SyncedTrustState` implements `credential.trust.TrustState` from that SQLite file
alone. A sharded region's credential is looked up in the shard of its `exp`: anchors
and revocations are kept per shard, and the validating witnesses refuse an anchor
outside its shard's period (ledger.log.shards.check_leaf), so the union over the
region's shards answers exactly what the shard of `exp` holds (status indices and
digests are unique per region).

Slow sources: each source, for each log, in each pass, is timed (`PacedSource`) and
abandoned for the next one once its requests are over the pass's `SourcePace`; what it
staged is kept, so the next source or the next pass continues from it
(docs/ledger-protocol.md, "Slow sources"). Because every staged bundle was checked
against a cosigned tree's tiles, a source cannot stage wrong entries for the next one
to trip over (docs/ledger-protocol.md, "Entries checked as they arrive"; `_stage`).

The sources sit behind `ledger.clients.reader.LogReader` (`HttpLogReader` for real,
any in-memory fake for tests). Entry rules are the validating witnesses' job: the
quorum vouches that they were checked; the client decodes entries but does not
re-run `ledger.log.rules`.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from pyroaring import FrozenBitMap

from common.private_files import private_sqlite
from credential.keys import SigningAlg
from credential.trust import RegisteredKey
from ledger.clients.reader import HttpLogReader, LogNotFoundError, LogReader, LogReadError
from ledger.log import tiles
from ledger.log.checkpoint import CosignatureVerifier, OpenedCheckpoint, open_checkpoint
from ledger.log.consortium import Consortium, Member, QuorumError
from ledger.log.entries import (
    CredentialAnchored,
    CredentialReinstated,
    CredentialRevoked,
    Entry,
    KeyAdded,
    KeyRevoked,
    decode_entry,
    decode_leaf_entry,
)
from ledger.log.errors import LedgerError, TileMismatchError
from ledger.log.merkle import EMPTY_ROOT, HASH_SIZE, leaf_hash, node_hash
from ledger.log.note import NoteVerifier
from ledger.log.revocation import MAX_STATUS_INDEX as MAX_STATUS_INDEX_32
from ledger.log.revocation import (
    RevocationDelta,
    RevocationError,
    RevocationSnapshot,
    apply_delta,
    find_extension,
    open_snapshot,
)
from ledger.log.shards import Shard, ShardState
from ledger.log.tree_tiles import CheckpointTiles

log = logging.getLogger(__name__)

BUNDLE_WIDTH = tiles.TILE_WIDTH  # entries per full entry bundle (tlog-tiles)
STAGE_CHUNK_BUNDLES = 64  # bundles staged per transaction (resume granularity)


class SyncError(LedgerError):
    """Root of the sync client's failures."""


class SourceError(SyncError):
    """A source could not be reached or answered nonsense; the next one is tried."""


class SlowSourceError(SourceError):
    """A source answered, but too slowly for this pass (`SourcePace`); the next one is
    tried and what was staged from it is kept."""


class WrongEntriesError(SourceError):
    """A source served an entry bundle or hash tile that is not part of the checkpoint's
    tree; it is abandoned at once, and what it served before (each bundle checked) stays
    staged for the next source."""


class ForkDetectedError(SyncError):
    """A quorum-looking checkpoint contradicts the tree this client already trusts."""


class InsecurePolicyError(SyncError):
    """The consortium's quorum lets a region vouch for its own log."""


class RollbackError(SyncError):
    """A source offered a smaller tree than the one this client trusts."""


class BadEntriesError(SyncError):
    """Entries from a source do not hash to the checkpoint's root."""


class RegionStatus(StrEnum):
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    FAILED = "failed"  # no source gave a trustworthy newer state; the old one is kept


@dataclass(frozen=True)
class RegionReport:
    region: str
    status: RegionStatus
    old_size: int
    new_size: int
    source: str | None
    synced_at: int | None  # newest quorum cosignature time of the trusted checkpoint
    errors: tuple[str, ...] = ()
    fork: str | None = None  # a split view of this region was seen (fork_alarms)
    shards: tuple[RegionReport, ...] = ()  # a sharded region: one report per shard
    dropped: tuple[str, ...] = ()  # log ids of droppable shards whose state was dropped


@dataclass(frozen=True)
class ForkAlarm:
    """Two quorum-cosigned checkpoints of one region that cannot both be true: the one
    this station trusted and one of the same size with another root (both as received)."""

    region: str
    size: int
    held_checkpoint: bytes
    conflicting_checkpoint: bytes
    detected_at: int


@dataclass(frozen=True)
class SyncReport:
    regions: tuple[RegionReport, ...]
    finished_at: float

    def region(self, region: str) -> RegionReport:
        return next(r for r in self.regions if r.region == region)

    def staleness_s(self, region: str) -> int | None:
        """How old the region's trusted state is, as of the end of this sync."""
        at = self.region(region).synced_at
        return None if at is None else max(0, int(self.finished_at) - at)


@dataclass(frozen=True)
class Progress:
    region: str
    done: int  # entries fetched and staged
    total: int  # entries to fetch


ProgressCallback = Callable[[Progress], None]


# The sync client's names for the one read interface and its HTTP implementation.
LogSource = LogReader
HttpLogSource = HttpLogReader

# A source's pace over one sync pass (docs/ledger-protocol.md, "Slow sources"). The
# reader bounds each answer (ledger.clients.reader: header deadline, body pace, size),
# but a source answering every request correctly just under the per-request timeout
# would still hold one log's sync for hours (thousands of entry bundles) and every log
# synced after it. So each source, for each log, in each pass, is judged on the time
# its requests took: abandoned once they took SOURCE_MIN_S together and average more
# than SOURCE_MAX_AVG_S each, or once they took SOURCE_CAP_S at all.
SOURCE_MIN_S = 20.0  # seconds of a source's requests before its pace is judged
SOURCE_MAX_AVG_S = 2.0  # seconds per request, averaged (a healthy bundle: < 0.5 s)
SOURCE_CAP_S = 120.0  # seconds one source may spend on one log in one pass
MIN_ANSWER_S = 0.1  # seconds; the least an answer is given when the cap is nearly spent


@dataclass(frozen=True)
class SourcePace:
    """How long one source may take over one log in one pass (see SOURCE_*)."""

    min_s: float = SOURCE_MIN_S
    max_avg_s: float = SOURCE_MAX_AVG_S
    cap_s: float = SOURCE_CAP_S

    def __post_init__(self) -> None:
        if not (0 <= self.min_s <= self.cap_s and self.max_avg_s > 0):
            raise ValueError(
                f"expected 0 <= min_s <= cap_s and max_avg_s > 0, found min_s={self.min_s}, "
                f"max_avg_s={self.max_avg_s}, cap_s={self.cap_s}"
            )

    def check(self, requests: int, spent_s: float) -> None:
        """Raise SlowSourceError when `requests` that took `spent_s` seconds together
        are over this pace (pure: the caller measures)."""
        if spent_s > self.cap_s:
            raise SlowSourceError(
                f"slow source abandoned: {requests} requests took {spent_s:.1f} s in this "
                f"pass (cap {self.cap_s:g} s); staged entries are kept for the next source"
            )
        if requests and spent_s >= self.min_s and spent_s / requests > self.max_avg_s:
            raise SlowSourceError(
                f"slow source abandoned: {requests} requests took {spent_s:.1f} s "
                f"({spent_s / requests:.2f} s each, over {self.max_avg_s:g} s); "
                "staged entries are kept for the next source"
            )


class PacedSource:
    """A source as one pass sees it: every request timed, and the source abandoned
    (SlowSourceError) as soon as its requests so far are over the pass's `SourcePace`.

    Built afresh for each log in each pass, so a slow pass does not follow a source
    into the next one (it may have recovered). The revocation calls of compact mode
    are passed through when the source serves them."""

    def __init__(self, inner: LogSource, pace: SourcePace, monotonic: Callable[[], float]) -> None:
        self.inner = inner
        self.pace = pace
        self.monotonic = monotonic
        self.requests = 0
        self.spent_s = 0.0

    @property
    def name(self) -> str:
        return self.inner.name

    def _timed(self, call: Callable[[], bytes]) -> bytes:
        # Judged before each request: an answer that arrived is always used, and the
        # pass spends at most one more request past the pace. That request is held to
        # what is left of the cap when the reader takes an answer deadline (an HTTP
        # source: its `max_answer_s`), so one slow body cannot take MAX_ANSWER_S.
        self.pace.check(self.requests, self.spent_s)
        held = getattr(self.inner, "max_answer_s", None)
        if isinstance(held, float):
            left = max(self.pace.cap_s - self.spent_s, MIN_ANSWER_S)
            self.inner.max_answer_s = min(held, left)  # type: ignore[attr-defined]
        started = self.monotonic()
        try:
            return call()
        except LogReadError as e:
            if isinstance(held, float) and self.spent_s + self.monotonic() - started >= (
                self.pace.cap_s
            ):
                raise SlowSourceError(
                    f"slow source abandoned: {self.requests + 1} requests took more than "
                    f"the {self.pace.cap_s:g} s cap of this pass ({e}); staged entries are "
                    "kept for the next source"
                ) from e
            raise
        finally:
            self.requests += 1
            self.spent_s += self.monotonic() - started
            if isinstance(held, float):
                self.inner.max_answer_s = held  # type: ignore[attr-defined]

    def checkpoint(self) -> bytes:
        return self._timed(self.inner.checkpoint)

    def tile(self, level: int, index: int, width: int = tiles.TILE_WIDTH) -> bytes:
        fetch = getattr(self.inner, "tile", None)
        if fetch is None:
            raise SourceError(f"{self.name} serves no hash tiles")
        return self._timed(lambda: fetch(level, index, width))

    def entry_bundle(self, index: int, width: int = tiles.TILE_WIDTH) -> bytes:
        return self._timed(lambda: self.inner.entry_bundle(index, width))

    def revocation_snapshot(self, digest: bytes) -> bytes:
        fetch = getattr(self.inner, "revocation_snapshot", None)
        if fetch is None:
            raise SourceError(f"{self.name} serves no revocation snapshots")
        return self._timed(lambda: fetch(digest))

    def revocation_delta(self, from_digest: bytes, to_digest: bytes) -> bytes:
        fetch = getattr(self.inner, "revocation_delta", None)
        if fetch is None:
            raise SourceError(f"{self.name} serves no revocation deltas")
        return self._timed(lambda: fetch(from_digest, to_digest))


class CompactLogSource(LogReader, Protocol):
    """A source that also serves content-addressed revocation snapshots and deltas
    (ledger.node.revocation_api on a node, ledger.joint.api under a mirror prefix);
    required by compact mode. The bytes are taken from the source that gave the
    checkpoint; when it fails, the next source is tried, as for entry bundles."""

    def revocation_snapshot(self, digest: bytes) -> bytes: ...

    def revocation_delta(self, from_digest: bytes, to_digest: bytes) -> bytes: ...


def mirror_prefix(node_url: str, origin: str) -> str:
    """C2SP tlog-mirror: `<monitoring prefix>/<hex SHA-256 of the origin>`."""
    return f"{node_url.rstrip('/')}/mirror/{hashlib.sha256(origin.encode()).hexdigest()}"


def default_sources(consortium: Consortium, region: str) -> list[HttpLogSource]:
    """The region's node, its own mirrors, then every other member's mirror of it.
    `region` may be a shard's log id `<region>/<k>`: the node's `/<k>` prefix, then
    every other member's mirror of the shard's origin."""
    region, _, number = region.partition("/")
    m = consortium.member(region)
    assert m.log_origin is not None
    if number:
        assert m.shards is not None
        origin = m.shards.schedule.shard(int(number)).origin
        urls = [f"{m.node_url}/{number}", *(f"{u}/{number}" for u in m.mirror_urls)]
    else:
        origin = m.log_origin
        urls = [m.node_url, *m.mirror_urls]
    urls += [mirror_prefix(o.node_url, origin) for o in consortium.members if o.id != region]
    return [HttpLogSource(u) for u in urls]


@dataclass(frozen=True)
class LogRef:
    """One log a station follows: a region's log, or one shard of it (`log_id` is the
    key of its rows in the state file: the region, or `<region>/<k>`)."""

    region: str
    log_id: str
    origin: str
    vkey: str
    shard: Shard | None = None


def log_refs(member: Member, shards: Sequence[Shard] = ()) -> list[LogRef]:
    """The logs of `member` a station follows: its log, or the given shards of it."""
    assert member.log is not None and member.log_origin is not None
    if member.shards is None:
        return [LogRef(member.id, member.id, member.log_origin, member.log.text)]
    return [
        LogRef(member.id, f"{member.id}/{s.number}", s.origin, member.log.renamed(s.origin).text, s)
        for s in shards
    ]


# -- compact range (the right edge of the tree) ----------------------------------------


def frontier_append(frontier: list[bytes], size: int, leaf_hashes: Sequence[bytes]) -> int:
    """Append leaf hashes to a compact range in place; return the new size.

    `frontier` holds the roots of the perfect subtrees that make up a tree of `size`
    leaves, largest first (one per set bit of `size`)."""
    for h in leaf_hashes:
        s = size
        while s & 1:
            h = node_hash(frontier.pop(), h)
            s >>= 1
        frontier.append(h)
        size += 1
    return size


def frontier_root(frontier: Sequence[bytes]) -> bytes:
    """MTH of the tree whose compact range this is (RFC 9162 §2.1.1: left subtree is the
    largest power of two, so folding right to left reproduces the recursion)."""
    if not frontier:
        return EMPTY_ROOT
    r = frontier[-1]
    for h in reversed(frontier[:-1]):
        r = node_hash(h, r)
    return r


# -- local state -----------------------------------------------------------------------

SCHEMA = """
CREATE TABLE IF NOT EXISTS log_state (
    region TEXT PRIMARY KEY, origin TEXT NOT NULL, size INTEGER NOT NULL,
    root_hash BLOB NOT NULL, frontier BLOB NOT NULL, checkpoint BLOB,
    synced_at INTEGER);
CREATE TABLE IF NOT EXISTS compact_snapshot (
    region TEXT PRIMARY KEY, digest BLOB NOT NULL, snapshot BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS staged (
    region TEXT NOT NULL, idx INTEGER NOT NULL, leaf BLOB NOT NULL,
    PRIMARY KEY (region, idx));
DROP TABLE IF EXISTS staged_target;
CREATE TABLE IF NOT EXISTS staged_tree (
    region TEXT PRIMARY KEY, size INTEGER NOT NULL, root_hash BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS keys (
    region TEXT NOT NULL, kid TEXT NOT NULL, alg TEXT NOT NULL, public_key_der BLOB NOT NULL,
    not_before INTEGER NOT NULL, not_after INTEGER, compromised_at INTEGER,
    retired_at INTEGER, PRIMARY KEY (region, kid));
CREATE TABLE IF NOT EXISTS revoked (
    region TEXT NOT NULL, status_index INTEGER NOT NULL, PRIMARY KEY (region, status_index))
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS fork_alarms (
    region TEXT NOT NULL, size INTEGER NOT NULL, conflicting_root BLOB NOT NULL,
    held_checkpoint BLOB NOT NULL, conflicting_checkpoint BLOB NOT NULL,
    detected_at INTEGER NOT NULL, PRIMARY KEY (region, size, conflicting_root));
CREATE TABLE IF NOT EXISTS anchors (
    region TEXT NOT NULL, digest BLOB NOT NULL, anchored_at INTEGER NOT NULL,
    PRIMARY KEY (region, digest)) WITHOUT ROWID;
"""


def _connect(path: str | Path) -> sqlite3.Connection:
    if str(path) != ":memory:":
        private_sqlite(path)  # mode 0600 before SQLite creates it (WAL/SHM follow)
    conn = sqlite3.connect(str(path), timeout=10.0, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(SCHEMA)
    return conn


@contextmanager
def _tx(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


@dataclass(frozen=True)
class TrustedLog:
    region: str
    origin: str
    size: int
    root_hash: bytes
    frontier: tuple[bytes, ...]
    synced_at: int | None


def _read_trusted(conn: sqlite3.Connection, ref: LogRef) -> TrustedLog:
    row = conn.execute(
        "SELECT size, root_hash, frontier, synced_at FROM log_state WHERE region = ?",
        (ref.log_id,),
    ).fetchone()
    if row is None:
        return TrustedLog(ref.log_id, ref.origin, 0, EMPTY_ROOT, (), None)
    size, root, fr, synced = row
    hashes = tuple(fr[i : i + HASH_SIZE] for i in range(0, len(fr), HASH_SIZE))
    return TrustedLog(ref.log_id, ref.origin, size, root, hashes, synced)


def _decode(raw: bytes) -> tuple[int, Entry]:
    """A leaf's timestamp (ms) and entry, decoding the entry once."""
    leaf, entry = decode_leaf_entry(raw)
    return leaf.timestamp_ms, entry


def _apply_leaf(conn: sqlite3.Connection, region: str, raw: bytes, log_id: str) -> None:
    ts_ms, entry = _decode(raw)
    _apply_entry(conn, region, entry, ts_ms, log_id)


def _apply_entry(
    conn: sqlite3.Connection, region: str, entry: Entry, ts_ms: int, log_id: str | None = None
) -> None:
    """Apply one entry: anchors and revocations under the log (`log_id`, the region or
    one of its shards), keys under the region (every shard carries them)."""
    if entry.region != region:
        # Validating witnesses refuse such entries; a station refuses them too.
        raise BadEntriesError(f"entry of region {entry.region} in the log of {region}")
    lid = region if log_id is None else log_id
    ts = ts_ms // 1000
    if isinstance(entry, CredentialAnchored):
        conn.execute("INSERT OR IGNORE INTO anchors VALUES (?, ?, ?)", (lid, entry.digest, ts))
    elif isinstance(entry, CredentialRevoked):
        conn.execute("INSERT OR IGNORE INTO revoked VALUES (?, ?)", (lid, entry.status_index))
    elif isinstance(entry, CredentialReinstated):
        conn.execute(
            "DELETE FROM revoked WHERE region = ? AND status_index = ?",
            (lid, entry.status_index),
        )
    elif isinstance(entry, KeyAdded):
        # Every shard repeats the region's key entries: adding a key again keeps what
        # a revocation already recorded (retired_at, compromised_at).
        conn.execute(
            "INSERT INTO keys VALUES (?, ?, ?, ?, ?, ?, NULL, NULL) "
            "ON CONFLICT (region, kid) DO UPDATE SET alg = excluded.alg, "
            "public_key_der = excluded.public_key_der, not_before = excluded.not_before, "
            "not_after = excluded.not_after",
            (region, entry.kid, str(entry.alg), entry.public_key_der,
             entry.not_before, entry.not_after),
        )  # fmt: skip
    elif isinstance(entry, KeyRevoked):
        # A retired key may later be revoked for compromise (ledger.log.rules): keep the
        # earlier retirement time and never forget a compromise.
        conn.execute(
            "UPDATE keys SET compromised_at = COALESCE(?, compromised_at), "
            "retired_at = MIN(COALESCE(retired_at, ?), ?) WHERE region = ? AND kid = ?",
            (entry.compromised_at, entry.retired_at, entry.retired_at, region, entry.kid),
        )


_LOG_TABLES = ("log_state", "compact_snapshot", "staged", "staged_tree", "revoked", "anchors")


def _log_ids(conn: sqlite3.Connection, region: str) -> list[str]:
    """The logs of `region` in the state file: the region itself, or its shards."""
    rows = conn.execute(
        "SELECT region FROM log_state WHERE region = ? OR region LIKE ? ORDER BY region",
        (region, region + "/%"),
    ).fetchall()
    return [r for (r,) in rows]


def _drop_log(conn: sqlite3.Connection, log_id: str) -> None:
    for table in _LOG_TABLES:
        conn.execute(f"DELETE FROM {table} WHERE region = ?", (log_id,))  # noqa: S608


def _combine(region: str, reports: list[RegionReport], dropped: tuple[str, ...]) -> RegionReport:
    """A sharded region's report from its shards' reports: failed if one failed, as
    fresh as its stalest shard (docs/ledger-protocol.md, temporal shards)."""
    statuses = {r.status for r in reports}
    if RegionStatus.FAILED in statuses or not reports:
        status = RegionStatus.FAILED
    elif RegionStatus.UPDATED in statuses:
        status = RegionStatus.UPDATED
    else:
        status = RegionStatus.UNCHANGED
    times = [r.synced_at for r in reports]
    synced = None if not times or None in times else min(t for t in times if t is not None)
    return RegionReport(
        region,
        status,
        sum(r.old_size for r in reports),
        sum(r.new_size for r in reports),
        next((r.source for r in reports if r.source), None),
        synced,
        tuple(f"{r.region}: {e}" for r in reports for e in r.errors),
        next((r.fork for r in reports if r.fork), None),
        tuple(reports),
        dropped,
    )


def _fetch_tile(source: LogSource, tile: tiles.TileId) -> bytes:
    """One hash tile of a tree from a source; a partial one falls back to the full tile
    cut to width (C2SP tlog-tiles "Partial Tiles": a log may delete a partial tile once
    the full one exists, as a source whose tree grew past the checkpoint may have)."""
    try:
        try:
            return source.tile(tile.level, tile.index, tile.width)
        except LogNotFoundError:
            if not tile.is_partial:
                raise
            return source.tile(tile.level, tile.index)[: tile.width * HASH_SIZE]
    except SlowSourceError:
        raise
    except LedgerError as e:
        raise SourceError(f"tile {tile.path()}: {e}") from e


@contextmanager
def _refusing_wrong(size: int) -> Iterator[None]:
    """Around a `CheckpointTiles` check: a tile or bundle outside the tree abandons the
    source at once (WrongEntriesError), a malformed one is a plain SourceError."""
    try:
        yield
    except TileMismatchError as e:
        raise WrongEntriesError(
            f"source served entries that do not match checkpoint {size}: {e}"
        ) from e
    except SourceError:
        raise
    except LedgerError as e:
        raise SourceError(str(e)) from e


class SyncClient:
    """Synchronises every region of a consortium into one local SQLite file."""

    def __init__(
        self,
        consortium: Consortium,
        state_db_path: str | Path,
        *,
        sources: Callable[[str], Sequence[LogSource]] | None = None,
        clock: Callable[[], float] = time.time,
        compact: bool = False,
        max_age_s: int | None = None,
        insecure_accept_self_cosigned_logs: bool = False,
        pace: SourcePace | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        # A policy that one region's own witness (or no witness) can meet lets that
        # region show a station any history it likes (docs/ledger-protocol.md §6).
        weak = [r for r in consortium.regions() if consortium.policy.single_member_suffices(r)]
        if weak and not insecure_accept_self_cosigned_logs:
            raise InsecurePolicyError(
                f"the consortium's quorum {consortium.policy.describe()} is met by the "
                f"witness of {', '.join(weak)} alone, so a fork of that log would be "
                "accepted; refusing it (insecure_accept_self_cosigned_logs overrides)"
            )
        if weak:
            log.warning(
                "INSECURE: accepting logs cosigned by their own region alone (%s)", ", ".join(weak)
            )
        # A view whose quorum cosigned it longer ago than this is refused as a fresh
        # client's first view: a replayed old view must not become a station's start.
        self.max_age_s = max_age_s
        self.consortium = consortium
        # Compact mode (docs/ledger-protocol.md §8): fetch checkpoint + quorum + the
        # committed revocation snapshot or delta, not every entry. The station then
        # knows keys and revoked indices but no anchors.
        self.compact = compact
        self.path = Path(state_db_path)
        self.conn = _connect(self.path)
        self.sources = sources or (lambda region: default_sources(consortium, region))
        self.clock = clock
        # Per source, per log, per pass (SourcePace): one slow source cannot hold a
        # log's sync, nor every log synced after it.
        self.pace = pace or SourcePace()
        self.monotonic = monotonic
        self.witnesses = {
            m.witness.name: (m.id, CosignatureVerifier.from_vkey(m.witness.text))
            for m in consortium.members
        }
        # Per log: the hash tiles accepted for the tree being synced (`_checked_tiles`).
        self._tiles: dict[str, CheckpointTiles] = {}

    def close(self) -> None:
        self.conn.close()

    def sync(
        self, region: str | None = None, progress: ProgressCallback | None = None
    ) -> SyncReport:
        regions = [region] if region else list(self.consortium.regions())
        reports = tuple(self._sync_member(r, progress) for r in regions)
        return SyncReport(reports, self.clock())

    # -- temporal shards -------------------------------------------------------------

    def _sync_member(self, region: str, progress: ProgressCallback | None) -> RegionReport:
        member = self.consortium.member(region)
        if member.shards is None:
            return self._sync_region(log_refs(member)[0], progress)
        now = int(self.clock())
        tracked = member.shards.tracked(now)
        dropped = self._drop_droppable(member, now)
        reports = [self._sync_region(ref, progress) for ref in log_refs(member, tracked)]
        return _combine(region, reports, dropped)

    def _drop_droppable(self, member: Member, now: int) -> tuple[str, ...]:
        """Forget every shard of `member` whose credentials have all expired (past the
        grace): nothing this station verifies can need it any more."""
        assert member.shards is not None
        dropped = []
        for log_id in _log_ids(self.conn, member.id):
            number = log_id.partition("/")[2]
            if not number.isdigit():
                continue
            shard = member.shards.schedule.shard(int(number))
            if member.shards.state(shard, now) is ShardState.DROPPABLE:
                with _tx(self.conn):
                    _drop_log(self.conn, log_id)
                dropped.append(log_id)
                log.info("dropped the state of droppable shard %s", log_id)
        return tuple(dropped)

    # -- one log -------------------------------------------------------------------

    def open_checkpoint(self, member: Member | LogRef, data: bytes) -> tuple[OpenedCheckpoint, int]:
        """Open a checkpoint and check the quorum; return it and its quorum time."""
        ref = member if isinstance(member, LogRef) else log_refs(member)[0]
        opened = open_checkpoint(
            data,
            NoteVerifier.from_vkey(ref.vkey),
            [v for _, v in self.witnesses.values()],
        )
        if opened.checkpoint.origin != ref.origin:
            raise SourceError(f"expected origin {ref.origin}, found {opened.checkpoint.origin}")
        signed_by = {self.witnesses[name][0]: ts for name, ts in opened.cosignatures.items()}
        # The view is as fresh as the newest time at which a quorum vouches for it
        # (C2SP tlog-cosignature timestamps; docs/ledger-protocol.md §6).
        return opened, self.consortium.policy.quorum_time(signed_by)

    def _candidates(
        self, member: LogRef, errors: list[str], fresh: bool
    ) -> list[tuple[OpenedCheckpoint, int, bytes, LogSource]]:
        """Every source's quorum-cosigned checkpoint, largest tree first, then freshest.

        Every source is asked: the first to answer may be an old (validly cosigned)
        view replayed by whoever answers at that URL, so only the best one counts. A
        `fresh` client (nothing trusted yet for the region) also refuses a view whose
        quorum time is older than `max_age_s`; a client that already trusts a view
        takes any that moves it forward (never back), stale or not, since its verdicts
        judge the age anyway and a newer stale view still carries newer revocations."""
        found: list[tuple[OpenedCheckpoint, int, bytes, LogSource]] = []
        oldest = None
        if fresh and self.max_age_s is not None:
            oldest = int(self.clock()) - self.max_age_s
        for raw_source in self.sources(member.log_id):
            source = PacedSource(raw_source, self.pace, self.monotonic)
            try:
                data = source.checkpoint()
                opened, quorum_at = self.open_checkpoint(member, data)
            except (LedgerError, QuorumError) as e:
                errors.append(f"{source.name}: {e}")
                log.warning("sync %s from %s: %s", member.log_id, source.name, e)
                continue
            if oldest is not None and quorum_at < oldest:
                errors.append(
                    f"{source.name}: quorum cosigned at {quorum_at}, older than the "
                    f"{self.max_age_s} s this station accepts"
                )
                continue
            found.append((opened, quorum_at, data, source))
        found.sort(key=lambda c: (c[0].checkpoint.size, c[1]), reverse=True)
        return found

    def _sync_region(self, member: LogRef, progress: ProgressCallback | None) -> RegionReport:
        region = member.log_id
        trusted = _read_trusted(self.conn, member)
        errors: list[str] = []
        fresh = trusted.synced_at is None
        for opened, synced_at, data, source in self._candidates(member, errors, fresh):
            try:
                new = self._advance(member, trusted, source, opened, synced_at, data, progress)
            except ForkDetectedError as e:
                # One region's split view is that region's alarm: keep the evidence
                # (both signed notes), keep its old state, go on with the others.
                self._record_fork(member, trusted, opened, data, str(e))
                errors.append(f"{source.name}: {e}")
                return RegionReport(
                    region, RegionStatus.FAILED, trusted.size, trusted.size, source.name,
                    trusted.synced_at, tuple(errors), fork=str(e),
                )  # fmt: skip
            except (LedgerError, QuorumError) as e:
                errors.append(f"{source.name}: {e}")
                log.warning("sync %s from %s: %s", region, source.name, e)
                continue
            status = RegionStatus.UPDATED if new.size > trusted.size else RegionStatus.UNCHANGED
            return RegionReport(
                region, status, trusted.size, new.size, source.name, new.synced_at, tuple(errors)
            )
        return RegionReport(
            region, RegionStatus.FAILED, trusted.size, trusted.size, None, trusted.synced_at,
            tuple(errors),
        )  # fmt: skip

    def _record_fork(
        self,
        member: LogRef,
        trusted: TrustedLog,
        opened: OpenedCheckpoint,
        data: bytes,
        detail: str,
    ) -> None:
        row = self.conn.execute(
            "SELECT checkpoint FROM log_state WHERE region = ?", (member.log_id,)
        ).fetchone()
        held = b"" if row is None or row[0] is None else bytes(row[0])
        size = opened.checkpoint.size
        with _tx(self.conn):
            # One alarm per incident: the same conflicting note seen again adds nothing.
            self.conn.execute(
                "INSERT OR IGNORE INTO fork_alarms VALUES (?, ?, ?, ?, ?, ?)",
                (member.log_id, size, opened.checkpoint.root_hash, held, data,
                 int(self.clock())),
            )  # fmt: skip
        log.error("ALARM: fork of region %s at size %d: %s", member.log_id, size, detail)

    def _advance(
        self,
        member: LogRef,
        trusted: TrustedLog,
        source: LogSource,
        opened: OpenedCheckpoint,
        synced_at: int,
        data: bytes,
        progress: ProgressCallback | None,
    ) -> TrustedLog:
        cp = opened.checkpoint
        region = member.log_id
        if cp.size < trusted.size:
            raise RollbackError(f"source offers size {cp.size}, trusted size is {trusted.size}")
        if cp.size == trusted.size:
            if cp.root_hash != trusted.root_hash:
                raise ForkDetectedError(
                    f"{region}: cosigned root {cp.root_hash.hex()[:16]}.. for size {cp.size}, "
                    f"trusted {trusted.root_hash.hex()[:16]}.."
                )
            newer = trusted.synced_at is None or synced_at > trusted.synced_at
            if newer:
                with _tx(self.conn):
                    self.conn.execute(
                        "UPDATE log_state SET synced_at = ?, checkpoint = ? WHERE region = ?",
                        (synced_at, data, region),
                    )
                return TrustedLog(region, trusted.origin, trusted.size, trusted.root_hash,
                                  trusted.frontier, synced_at)  # fmt: skip
            return trusted
        if self.compact:
            return self._advance_compact(member, trusted, source, opened, synced_at, data)
        if trusted.size > 0 and not trusted.frontier:
            raise SyncError(
                f"{region}: this state file was synced in compact mode (no right edge kept); "
                "use compact mode or a fresh file for full sync"
            )
        taken_over = self._stage(member, trusted, source, cp.size, cp.root_hash, progress)
        try:
            return self._commit(member, trusted, cp.size, cp.root_hash, synced_at, data)
        except BadEntriesError:
            if not taken_over:
                raise
            # Every staged bundle was checked against a cosigned tree's tiles; those taken
            # over were checked against another tree than this one (`_stage`), and the
            # root says the two disagree: a split view, not a source's lie. `_commit`
            # dropped them all; this source's own entries, checked against this tree,
            # decide.
            log.error("sync %s: staged entries did not verify; refetching them", region)
            self._stage(member, trusted, source, cp.size, cp.root_hash, progress)
            return self._commit(member, trusted, cp.size, cp.root_hash, synced_at, data)

    def _checked_tiles(self, log_id: str, size: int, root: bytes) -> CheckpointTiles:
        """The accepted tiles of the tree (size, root) of a log, kept across sources and
        passes while the tree is the same: they are facts about it, whoever served them."""
        held = self._tiles.get(log_id)
        if held is None or held.size != size or held.root != root:
            held = self._tiles[log_id] = CheckpointTiles(size, root)
        return held

    def _stage(
        self,
        member: LogRef,
        trusted: TrustedLog,
        source: LogSource,
        size: int,
        root: bytes,
        progress: ProgressCallback | None,
    ) -> int:
        """Fetch, check and stage the entries `trusted.size..size`, resuming after whatever
        is staged already; return how many were taken over that way.

        Each bundle is checked as it arrives against the hash tiles of the tree (size,
        root) (`ledger.log.tree_tiles.CheckpointTiles`: the right edge once, then the
        tiles on each bundle's path), so a source that serves a wrong bundle or tile is
        refused at once (`WrongEntriesError`), nothing of it staged; the bundles it
        served before, each checked, stay staged for the next source. `staged_tree`
        records the tree the staged entries were checked against. Entries staged
        earlier, by another source or pass, are trusted no more than fresh ones:

        - checked against this same tree: exactly as a fresh bundle would be;
        - checked against another tree (N1, R1), a quorum-cosigned checkpoint like this
          one: entry i < min(N1, N) is leaf i of both trees if N and N1 are consistent,
          which the quorum's witnesses check before they cosign (C2SP tlog-witness; RFC
          9162 §2.1.2: a log only appends). That is not taken on faith either: `_commit`
          recomputes the root from the trusted right edge and every staged leaf, which
          proves the staged entries to be this tree's leaves whatever tree they were
          checked against; only a split view (two cosigned trees that disagree) fails
          it, and then `_advance` refetches every entry from this source, checked
          against this tree. Entries at N or past it are dropped;
        - staged without any record (by a client that did not check bundles as they
          arrived): dropped, and fetched again.
        """
        region = member.log_id
        conn = self.conn
        # Staged for a bigger tree than this source offers: the entries below `size`
        # are kept (see above), those past it are dropped. A slow source abandoned
        # part-way thus hands its progress to the next one even when that one lags a
        # little.
        with _tx(conn):
            held = conn.execute(
                "SELECT size, root_hash FROM staged_tree WHERE region = ?", (region,)
            ).fetchone()
            if held is None:
                conn.execute("DELETE FROM staged WHERE region = ?", (region,))
            conn.execute(
                "INSERT OR REPLACE INTO staged_tree VALUES (?, ?, ?)", (region, size, root)
            )
            conn.execute(
                "DELETE FROM staged WHERE region = ? AND (idx < ? OR idx >= ?)",
                (region, trusted.size, size),
            )
        (have,) = conn.execute("SELECT COUNT(*) FROM staged WHERE region = ?", (region,)).fetchone()
        start = trusted.size + have  # resume after an interruption
        total = size - trusted.size
        if progress:
            progress(Progress(region, have, total))
        pos = start
        checked = self._checked_tiles(region, size, root)
        if pos < size and not checked.edge_checked:
            edge = {(t.level, t.index): _fetch_tile(source, t) for t in checked.right_edge()}
            with _refusing_wrong(size):
                checked.add_right_edge(edge)
        while pos < size:
            rows: list[tuple[str, int, bytes]] = []
            try:
                for _ in range(STAGE_CHUNK_BUNDLES):
                    if pos >= size:
                        break
                    bundle_index = pos // BUNDLE_WIDTH
                    width = min(BUNDLE_WIDTH, size - bundle_index * BUNDLE_WIDTH)
                    for t in checked.needed_for_bundle(bundle_index):
                        body = _fetch_tile(source, t)
                        with _refusing_wrong(size):
                            checked.add(t, body)
                    try:
                        raw = source.entry_bundle(bundle_index, width)
                        leaves = tiles.decode_entry_bundle(raw)
                    except SlowSourceError:
                        raise
                    except LedgerError as e:
                        raise SourceError(f"bundle {bundle_index}: {e}") from e
                    if len(leaves) != width:
                        raise SourceError(
                            f"bundle {bundle_index}: expected {width} entries, found {len(leaves)}"
                        )
                    with _refusing_wrong(size):
                        checked.check_bundle(bundle_index, leaves)
                    for i in range(pos - bundle_index * BUNDLE_WIDTH, width):
                        rows.append((region, bundle_index * BUNDLE_WIDTH + i, leaves[i]))
                    pos = bundle_index * BUNDLE_WIDTH + width
            finally:
                # Whatever arrived and was checked before a failure is staged too: a
                # source abandoned mid-chunk (slow, reset, wrong) still leaves its
                # progress to the next one.
                with _tx(conn):
                    conn.executemany("INSERT OR REPLACE INTO staged VALUES (?, ?, ?)", rows)
            if progress:
                progress(Progress(region, pos - trusted.size, total))
        return int(have)

    def _commit(
        self,
        member: LogRef,
        trusted: TrustedLog,
        size: int,
        root: bytes,
        synced_at: int,
        data: bytes,
    ) -> TrustedLog:
        region = member.log_id
        conn = self.conn
        leaves = [
            bytes(r[0])
            for r in conn.execute(
                "SELECT leaf FROM staged WHERE region = ? AND idx >= ? AND idx < ? ORDER BY idx",
                (region, trusted.size, size),
            )
        ]
        frontier = list(trusted.frontier)
        got = frontier_append(frontier, trusted.size, [leaf_hash(x) for x in leaves])
        computed = frontier_root(frontier)
        if got != size or computed != root:
            with _tx(conn):
                conn.execute("DELETE FROM staged WHERE region = ?", (region,))
                conn.execute("DELETE FROM staged_tree WHERE region = ?", (region,))
            # A cosigned root that our trusted right edge cannot reach is a fork unless the
            # source simply sent other entries; either way nothing is applied.
            raise BadEntriesError(
                f"{region}: entries {trusted.size}..{size} give root {computed.hex()[:16]}.., "
                f"checkpoint says {root.hex()[:16]}.."
            )
        with _tx(conn):
            for raw in leaves:
                try:
                    _apply_leaf(conn, member.region, raw, region)
                except LedgerError as e:
                    raise BadEntriesError(f"{region}: undecodable logged entry: {e}") from e
            conn.execute(
                "INSERT OR REPLACE INTO log_state VALUES (?, ?, ?, ?, ?, ?, ?)",
                (region, trusted.origin, size, root, b"".join(frontier), data, synced_at),
            )
            conn.execute("DELETE FROM staged WHERE region = ?", (region,))
            conn.execute("DELETE FROM staged_tree WHERE region = ?", (region,))
        return TrustedLog(region, trusted.origin, size, root, tuple(frontier), synced_at)

    def _advance_compact(
        self,
        member: LogRef,
        trusted: TrustedLog,
        source: LogSource,
        opened: OpenedCheckpoint,
        synced_at: int,
        data: bytes,
    ) -> TrustedLog:
        cp = opened.checkpoint
        region = member.log_id
        digest = find_extension(cp.extensions)
        if digest is None:
            raise SourceError(f"{region}: checkpoint {cp.size} commits no revocation snapshot")
        fetch_snapshot = getattr(source, "revocation_snapshot", None)
        fetch_delta = getattr(source, "revocation_delta", None)
        if fetch_snapshot is None:
            raise SourceError(f"{source.name} serves no revocation snapshots")
        conn = self.conn
        row = conn.execute(
            "SELECT digest, snapshot FROM compact_snapshot WHERE region = ?", (region,)
        ).fetchone()
        new: RevocationSnapshot | None = None
        flipped: frozenset[int] | None = None
        if row is not None and fetch_delta is not None:
            try:
                old = RevocationSnapshot.from_bytes(bytes(row[1]))
                delta = RevocationDelta.from_bytes(fetch_delta(bytes(row[0]), digest))
                if delta.to_digest != digest:
                    raise RevocationError("delta lands on another snapshot than committed")
                new, flipped = apply_delta(old, delta), delta.flipped
            except (LogReadError, SourceError, RevocationError) as e:
                log.info("sync %s: no usable delta (%s); fetching the full snapshot", region, e)
        if new is None:
            raw = fetch_snapshot(digest)
            new = open_snapshot(raw, digest)
        if new.region != member.region or new.tree_size != cp.size:
            raise SourceError(
                f"expected the snapshot of {region}@{cp.size}, found {new.region}@{new.tree_size}"
            )
        snapshot_bytes = new.to_bytes()
        with _tx(conn):
            if flipped is not None:
                for i in flipped:
                    if i in new.revoked:
                        conn.execute("INSERT OR IGNORE INTO revoked VALUES (?, ?)", (region, i))
                    else:
                        conn.execute(
                            "DELETE FROM revoked WHERE region = ? AND status_index = ?",
                            (region, i),
                        )
            else:
                conn.execute("DELETE FROM revoked WHERE region = ?", (region,))
                conn.executemany(
                    "INSERT INTO revoked VALUES (?, ?)", ((region, i) for i in sorted(new.revoked))
                )
            for entry_bytes in new.key_entries:
                try:
                    _apply_entry(conn, member.region, decode_entry(entry_bytes), 0, region)
                except LedgerError as e:
                    raise BadEntriesError(f"{region}: undecodable key entry: {e}") from e
            conn.execute(
                "INSERT OR REPLACE INTO log_state VALUES (?, ?, ?, ?, ?, ?, ?)",
                (region, trusted.origin, cp.size, cp.root_hash, b"", data, synced_at),
            )
            conn.execute(
                "INSERT OR REPLACE INTO compact_snapshot VALUES (?, ?, ?)",
                (region, digest, snapshot_bytes),
            )
        return TrustedLog(region, trusted.origin, cp.size, cp.root_hash, (), synced_at)


class SyncedTrustState:
    """credential.trust.TrustState over the sync client's SQLite file (works offline)."""

    def __init__(self, state_db_path: str | Path) -> None:
        self.conn = _connect(state_db_path)
        # region -> (snapshot digest, anchored indices): parsed once per synced snapshot
        self._anchored: dict[str, tuple[bytes, FrozenBitMap]] = {}

    def close(self) -> None:
        self.conn.close()

    def regions(self) -> frozenset[str]:
        return frozenset(
            r.partition("/")[0] for (r,) in self.conn.execute("SELECT region FROM log_state")
        )

    def _in(self, region: str) -> tuple[str, list[str]]:
        """`IN (...)` over the region's logs (itself, or its shards) and the ids."""
        ids = _log_ids(self.conn, region) or [region]
        return "(" + ", ".join("?" * len(ids)) + ")", ids

    def key(self, region: str, kid: str) -> RegisteredKey | None:
        row = self.conn.execute(
            "SELECT alg, public_key_der, not_before, not_after, compromised_at, retired_at "
            "FROM keys WHERE region = ? AND kid = ?",
            (region, kid),
        ).fetchone()
        if row is None:
            return None
        alg, der, nb, na, comp, ret = row
        return RegisteredKey(region, kid, SigningAlg(alg), bytes(der), nb, na, comp, ret)

    def is_revoked(self, region: str, status_index: int) -> bool:
        ids, args = self._in(region)
        row = self.conn.execute(
            f"SELECT 1 FROM revoked WHERE region IN {ids} AND status_index = ?",  # noqa: S608
            (*args, status_index),
        ).fetchone()
        return row is not None

    def anchored_at(self, region: str, digest: bytes) -> int | None:
        ids, args = self._in(region)
        row = self.conn.execute(
            f"SELECT anchored_at FROM anchors WHERE region IN {ids} AND digest = ?",  # noqa: S608
            (*args, digest),
        ).fetchone()
        return None if row is None else int(row[0])

    def synced_at(self, region: str) -> int | None:
        """When a quorum last vouched for the region's view; for a sharded region the
        oldest such time among its shards (None while one of them was never synced)."""
        ids, args = self._in(region)
        rows = self.conn.execute(
            f"SELECT synced_at FROM log_state WHERE region IN {ids}",  # noqa: S608
            args,
        ).fetchall()
        if not rows or any(r[0] is None for r in rows):
            return None
        return min(int(r[0]) for r in rows)

    def anchors_known(self, region: str) -> bool:
        """Full mode keeps the tree's right edge and every anchor; compact mode neither
        (docs/ledger-protocol.md §8), so only a full-mode region answers True."""
        ids, args = self._in(region)
        rows = self.conn.execute(
            f"SELECT size, frontier FROM log_state WHERE region IN {ids}",  # noqa: S608
            args,
        ).fetchall()
        return bool(rows) and all(int(r[0]) == 0 or len(r[1]) > 0 for r in rows)

    def index_anchored(self, region: str, status_index: int) -> bool | None:
        """Compact mode: whether the status index is among the anchored indices of the
        region's committed snapshot (ledger.log.revocation format 2); None when this view
        holds no snapshot of the region (full mode answers by digest instead)."""
        ids, args = self._in(region)
        rows = self.conn.execute(
            f"SELECT region, digest FROM compact_snapshot WHERE region IN {ids}",  # noqa: S608
            args,
        ).fetchall()
        if not rows:
            return None
        if not 0 <= status_index <= MAX_STATUS_INDEX_32:
            return False
        for log_id, digest_raw in rows:
            digest = bytes(digest_raw)
            cached = self._anchored.get(log_id)
            if cached is None or cached[0] != digest:
                (snap,) = self.conn.execute(
                    "SELECT snapshot FROM compact_snapshot WHERE region = ?", (log_id,)
                ).fetchone()
                anchored = RevocationSnapshot.from_bytes(bytes(snap)).anchored
                cached = self._anchored[log_id] = (digest, anchored)
            if status_index in cached[1]:
                return True
        return False

    def fork_alarms(self) -> list[ForkAlarm]:
        """Every split view this station has seen, oldest first."""
        rows = self.conn.execute(
            "SELECT region, size, held_checkpoint, conflicting_checkpoint, detected_at "
            "FROM fork_alarms ORDER BY detected_at, region"
        ).fetchall()
        return [ForkAlarm(r, n, bytes(h), bytes(c), t) for r, n, h, c, t in rows]

    def tree_size(self, region: str) -> int:
        """The trusted size of the region's log (of one shard when given `<region>/<k>`;
        the sum over its shards when given a sharded region)."""
        ids, args = self._in(region)
        (total,) = self.conn.execute(
            f"SELECT COALESCE(SUM(size), 0) FROM log_state WHERE region IN {ids}",  # noqa: S608
            args,
        ).fetchone()
        return int(total)
