"""The validating mirror (C2SP tlog-mirror, pull mode): before this node's witness
cosigns another region's checkpoint, fetch the new entries from that region's node,
check that they hash to the checkpoint's root, re-apply the ledger rules to every one,
and keep the copy — tiles, entries and the cosigned checkpoint — to serve it under
`/mirror/<hex SHA-256 of the origin>/` (tlog-mirror's URL prefix) while the origin is
down.

What it checks, in order: (1) entries fetched from the origin hash, appended to the
mirror's own tiles, to the checkpoint's root (RFC 9162 §2.1 via ledger.log.tiles); (2)
`ledger.log.rules.apply_entry` accepts each, from the mirror's running `LogState` (for
example an MO key added under GD's root key, or GD revoking an MO credential, is
refused naming the rule); (3) when the checkpoint commits a revocation snapshot
(ledger.log.revocation extension line), the digest re-derived from the state matches.
Only then are the new leaves and tiles stored (one transaction, together with the
re-derived revocation snapshot, content-addressed, the last `MAX_KEPT_SNAPSHOTS` per
log kept) and the witness may cosign. The stored snapshots let compact stations read
a region's revocation state from this mirror while the region's node is down. It
serves no HTTP itself (ledger.joint.api does).

Temporal shards (ledger.log.shards): each shard of a sharded member is mirrored as a
log of its own (origin `<base>/<k>`, entries fetched from the node's `/<k>/` prefix),
the shard's rule is checked on every entry besides the ledger rules (an anchor outside
the shard's period, or a leaf logged after the shard froze, is refused naming the
rule), and `drop_droppable` forgets the shards whose credentials have all expired.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from ledger.clients.reader import HttpLogReader, LogReader
from ledger.joint.witness import (
    EntriesUnavailableError,
    InconsistentError,
    LogVerifiers,
    RuleRefusedError,
    WitnessedCheckpoint,
)
from ledger.log import tiles
from ledger.log.checkpoint import Checkpoint, CosignatureVerifier, OpenedCheckpoint, best_cosigned
from ledger.log.consortium import Consortium, Member
from ledger.log.entries import KEY_ENTRY_TYPES, decode_entry, decode_leaf, encode_entry
from ledger.log.errors import LedgerError
from ledger.log.merkle import leaf_hash
from ledger.log.note import SignedNote
from ledger.log.revocation import (
    RevocationError,
    RevocationSnapshot,
    find_extension,
    make_delta,
    snapshot_digest,
)
from ledger.log.rules import LogState, RuleViolationError, apply_entry
from ledger.log.shards import Shard, ShardRuleError, ShardState, check_leaf
from ledger.node.migrations import upgrade_head
from ledger.node.revocation_api import MAX_KEPT_SNAPSHOTS

log = logging.getLogger(__name__)

REVOCATION_SNAPSHOT_RULE = "revocation_snapshot_mismatch"

metadata = sa.MetaData()
leaf_table = sa.Table(
    "mirror_leaf",
    metadata,
    sa.Column("origin", sa.String(255), primary_key=True),
    sa.Column("idx", sa.BigInteger, primary_key=True),
    sa.Column("leaf", sa.LargeBinary, nullable=False),
)
tile_table = sa.Table(
    "mirror_tile",
    metadata,
    sa.Column("origin", sa.String(255), primary_key=True),
    sa.Column("level", sa.Integer, primary_key=True),
    sa.Column("idx", sa.BigInteger, primary_key=True),
    sa.Column("data", sa.LargeBinary, nullable=False),
)
checkpoint_table = sa.Table(
    "mirror_checkpoint",
    metadata,
    sa.Column("origin", sa.String(255), primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("note", sa.LargeBinary, nullable=False),
)

# Revocation snapshots re-derived while validating, by content address (SHA-256 of the
# bytes, which the checkpoint's `healthbridge/revocations` line commits to).
snapshot_table = sa.Table(
    "mirror_revocation_snapshot",
    metadata,
    sa.Column("origin", sa.String(255), primary_key=True),
    sa.Column("digest", sa.LargeBinary(32), primary_key=True),
    sa.Column("tree_size", sa.BigInteger, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
)


@dataclass(frozen=True)
class MirroredSnapshot:
    """A revocation snapshot to store with a mirrored checkpoint."""

    digest: bytes
    tree_size: int
    data: bytes


def origin_hash(origin: str) -> str:
    """tlog-mirror: the URL path element naming a mirrored log."""
    return hashlib.sha256(origin.encode()).hexdigest()


class MirrorStore:
    """Mirrored leaves, tiles and served checkpoints of several origins, in SQL."""

    def __init__(
        self, engine: sa.Engine, keep_snapshots: int = MAX_KEPT_SNAPSHOTS, migrate: bool = True
    ) -> None:
        self.engine = engine
        self.keep_snapshots = keep_snapshots  # revocation snapshots kept per origin
        if migrate:
            upgrade_head(engine)  # the tables are the node's Alembic history (0003)

    def size(self, origin: str) -> int:
        with self.engine.connect() as c:
            n = c.execute(
                sa.select(sa.func.count())
                .select_from(leaf_table)
                .where(leaf_table.c.origin == origin)
            ).scalar()
        return int(n or 0)

    def reader(self, origin: str) -> _Reader:
        return _Reader(self, origin)

    def read_tile(self, origin: str, level: int, index: int) -> bytes:
        with self.engine.connect() as c:
            data = c.execute(
                sa.select(tile_table.c.data).where(
                    tile_table.c.origin == origin,
                    tile_table.c.level == level,
                    tile_table.c.idx == index,
                )
            ).scalar()
        return b"" if data is None else bytes(data)

    def leaves(self, origin: str, start: int, end: int) -> list[bytes]:
        with self.engine.connect() as c:
            rows = c.execute(
                sa.select(leaf_table.c.leaf)
                .where(leaf_table.c.origin == origin, leaf_table.c.idx >= start,
                       leaf_table.c.idx < end)
                .order_by(leaf_table.c.idx)
            ).scalars()  # fmt: skip
            return [bytes(r) for r in rows]

    def append(
        self,
        origin: str,
        start: int,
        leaves: Sequence[bytes],
        changed: dict[tuple[int, int], bytes],
        note: bytes | None,
        size: int,
        snapshot: MirroredSnapshot | None = None,
    ) -> None:
        """Store new leaves, changed tiles, the checkpoint to serve (None: keep the
        served one) and the revocation snapshot it commits to, atomically."""
        with self.engine.begin() as c:
            if leaves:
                c.execute(
                    sa.insert(leaf_table),
                    [{"origin": origin, "idx": start + i, "leaf": x} for i, x in enumerate(leaves)],
                )
            for (level, idx), data in changed.items():
                c.execute(
                    sa.delete(tile_table).where(
                        tile_table.c.origin == origin,
                        tile_table.c.level == level,
                        tile_table.c.idx == idx,
                    )
                )
                c.execute(sa.insert(tile_table).values(origin=origin, level=level, idx=idx,
                                                       data=data))  # fmt: skip
            if note is not None:
                self._put_checkpoint(c, origin, size, note)
            if snapshot is not None:
                self._put_snapshot(c, origin, snapshot)

    def _put_snapshot(self, c: sa.Connection, origin: str, snap: MirroredSnapshot) -> None:
        t = snapshot_table
        exists = c.execute(
            sa.select(t.c.tree_size).where(t.c.origin == origin, t.c.digest == snap.digest)
        ).first()
        if exists is None:
            c.execute(sa.insert(t).values(origin=origin, digest=snap.digest,
                                          tree_size=snap.tree_size, data=snap.data))  # fmt: skip
        # Keep the newest `keep_snapshots` (by tree size), like the node does, so a
        # station's delta from a recent snapshot still finds its starting point.
        cutoff = c.execute(
            sa.select(t.c.tree_size)
            .where(t.c.origin == origin)
            .order_by(t.c.tree_size.desc())
            .offset(self.keep_snapshots - 1)
            .limit(1)
        ).scalar()
        if cutoff is not None:
            c.execute(sa.delete(t).where(t.c.origin == origin, t.c.tree_size < cutoff))

    def revocation_snapshot(self, origin: str, digest: bytes) -> bytes | None:
        """The stored snapshot bytes of `origin` with that SHA-256 digest, if kept."""
        t = snapshot_table
        with self.engine.connect() as c:
            data = c.execute(
                sa.select(t.c.data).where(t.c.origin == origin, t.c.digest == digest)
            ).scalar()
        return None if data is None else bytes(data)

    def revocation_delta(self, origin: str, from_digest: bytes, to_digest: bytes) -> bytes | None:
        """The `RevocationDelta` bytes between two kept snapshots of `origin`, or None
        when either is not kept (or the delta would go backwards)."""
        a = self.revocation_snapshot(origin, from_digest)
        b = self.revocation_snapshot(origin, to_digest)
        if a is None or b is None:
            return None
        try:
            old, new = RevocationSnapshot.from_bytes(a), RevocationSnapshot.from_bytes(b)
        except RevocationError:
            return None
        if new.tree_size < old.tree_size:
            return None
        return make_delta(old, new).to_bytes()

    def _put_checkpoint(self, c: sa.Connection, origin: str, size: int, note: bytes) -> None:
        c.execute(sa.delete(checkpoint_table).where(checkpoint_table.c.origin == origin))
        c.execute(sa.insert(checkpoint_table).values(origin=origin, size=size, note=note))

    def replace_checkpoint(self, origin: str, held: bytes | None, size: int, note: bytes) -> bool:
        """Compare-and-swap the served checkpoint: store `note` only if the served one
        is still `held` (another process may have served a better one meanwhile)."""
        with self.engine.begin() as c:
            row = c.execute(
                sa.select(checkpoint_table.c.note).where(checkpoint_table.c.origin == origin)
            ).one_or_none()
            current = None if row is None else bytes(row.note)
            if current != held:
                return False
            self._put_checkpoint(c, origin, size, note)
            return True

    def checkpoint(self, origin: str) -> bytes | None:
        with self.engine.connect() as c:
            note = c.execute(
                sa.select(checkpoint_table.c.note).where(checkpoint_table.c.origin == origin)
            ).scalar()
        return None if note is None else bytes(note)

    def origins(self) -> list[str]:
        with self.engine.connect() as c:
            return list(c.execute(sa.select(checkpoint_table.c.origin)).scalars())

    def drop(self, origin: str) -> None:
        """Forget everything mirrored of `origin` (a droppable shard)."""
        with self.engine.begin() as c:
            for t in (leaf_table, tile_table, checkpoint_table, snapshot_table):
                c.execute(sa.delete(t).where(t.c.origin == origin))


@dataclass
class _Reader:
    store: MirrorStore
    origin: str

    def read_tile(self, level: int, index: int) -> bytes:
        return self.store.read_tile(self.origin, level, index)


@dataclass
class _Overlay:
    changed: dict[tuple[int, int], bytes]
    base: _Reader

    def read_tile(self, level: int, index: int) -> bytes:
        got = self.changed.get((level, index))
        return got if got is not None else self.base.read_tile(level, index)


SourceFactory = Callable[[Member], LogReader]


def _origin_source(member: Member) -> LogReader:
    return HttpLogReader(member.node_url)


def _shard_source(member: Member, shard: Shard) -> LogReader:
    """A shard's tlog-tiles read API on its member's node (ledger.node.sharding)."""
    return HttpLogReader(f"{member.node_url}/{shard.number}")


@dataclass
class _MirroredLog:
    state: LogState
    key_entries: list[bytes]


class ValidatingMirror:
    """Mirror and validate the logs of the other members (a `witness.Validator`)."""

    def __init__(
        self,
        consortium: Consortium,
        store: MirrorStore,
        source_for: SourceFactory = _origin_source,
        shard_source_for: Callable[[Member, Shard], LogReader] = _shard_source,
    ) -> None:
        self.consortium = consortium
        self.store = store
        self.source_for = source_for
        self.shard_source_for = shard_source_for
        self._logs: dict[str, _MirroredLog] = {}
        self._lock = threading.Lock()
        self._log_verifiers = LogVerifiers(consortium, None, store.origins)
        self._witnesses = [CosignatureVerifier.from_vkey(m.witness.text)
                           for m in consortium.members]  # fmt: skip

    def offer(self, origin: str, note: bytes) -> bool:
        """Serve `note` if it is better than what is served (a larger validated tree, or
        the same tree with newer or more cosignatures); True when it changed anything.

        Never serves a tree the mirror has not validated and stored, a smaller tree, or
        fewer / older cosignatures: a replayed or stripped checkpoint changes nothing."""
        verifier = self._log_verifiers.get(origin)
        if verifier is None:
            return False
        with self._lock:
            for _ in range(3):
                held = self.store.checkpoint(origin)
                try:
                    better = best_cosigned(held, note, verifier, self._witnesses)
                except LedgerError as e:
                    log.warning("mirror of %s: not serving an offered checkpoint: %s", origin, e)
                    return False
                if better is None:
                    return False
                size = _size_of(better)
                if size > self.store.size(origin):
                    return False  # entries not validated and stored yet
                if self.store.replace_checkpoint(origin, held, size, better):
                    return True
            return False

    def _member(self, origin: str) -> Member:
        m = self.consortium.log_member_by_origin(origin)
        if m is None:
            raise InconsistentError(f"no member runs log {origin!r}")
        return m

    def drop_droppable(self, now: int) -> list[str]:
        """Stop mirroring every shard whose credentials have all expired (past the
        grace): its data is deleted and it is no longer served. Returns the origins."""
        dropped = []
        with self._lock:
            for origin in self.store.origins():
                found = self.consortium.log_for_origin(origin)
                if found is None or found[1] is None or found[0].shards is None:
                    continue
                if found[0].shards.state(found[1], now) is ShardState.DROPPABLE:
                    self.store.drop(origin)
                    self._logs.pop(origin, None)
                    dropped.append(origin)
                    log.info("stopped mirroring droppable shard %s", origin)
        return dropped

    def _log(self, member: Member, origin: str) -> _MirroredLog:
        cached = self._logs.get(origin)
        if cached is not None:
            return cached
        state = LogState.empty(member.id, member.root_public_key_raw)
        keys: list[bytes] = []
        size = self.store.size(origin)
        for raw in self.store.leaves(origin, 0, size):
            leaf = decode_leaf(raw)
            state = apply_entry(state, leaf)
            if decode_entry(leaf.entry_bytes).type in KEY_ENTRY_TYPES:
                keys.append(leaf.entry_bytes)
        mirrored = _MirroredLog(state, keys)
        self._logs[origin] = mirrored
        return mirrored

    def __call__(self, latest: WitnessedCheckpoint | None, opened: OpenedCheckpoint) -> None:
        with self._lock:
            self._validate(opened)

    def _validate(self, opened: OpenedCheckpoint) -> None:
        cp = opened.checkpoint
        member = self._member(cp.origin)
        shard = member.shard_of_origin(cp.origin)
        mirrored = self._log(member, cp.origin)
        old = self.store.size(cp.origin)
        if cp.size < old:
            raise InconsistentError(f"mirror holds {old} entries, checkpoint has {cp.size}")
        leaves = self._fetch(member, old, cp.size, shard)
        hashes = [leaf_hash(x) for x in leaves]
        base = self.store.reader(cp.origin)
        try:
            changed = tiles.append_leaves(old, hashes, base) if hashes else {}
            root = tiles.tree_root(cp.size, _Overlay(changed, base))
        except LedgerError as e:
            raise InconsistentError(f"cannot rebuild the tree of {cp.origin}: {e}") from e
        if root != cp.root_hash:
            raise InconsistentError(
                f"entries {old}..{cp.size} of {cp.origin} give root {root.hex()[:16]}.., "
                f"checkpoint says {cp.root_hash.hex()[:16]}.."
            )
        state = mirrored.state
        keys = list(mirrored.key_entries)
        for i, raw in enumerate(leaves):
            try:
                leaf = decode_leaf(raw)
                if shard is not None:
                    check_leaf(shard, leaf)
                state = apply_entry(state, leaf)
            except ShardRuleError as e:
                raise RuleRefusedError(
                    f"entry {old + i} of {cp.origin}: {e}", e.rule, old + i
                ) from e
            except RuleViolationError as e:
                raise RuleRefusedError(
                    f"entry {old + i} of {cp.origin}: {e}", str(e.rule), old + i
                ) from e
            except LedgerError as e:
                raise RuleRefusedError(
                    f"entry {old + i} of {cp.origin}: {e}", "malformed_entry", old + i
                ) from e
            entry = decode_entry(leaf.entry_bytes)
            if entry.type in KEY_ENTRY_TYPES:
                keys.append(encode_entry(entry))
        committed = find_extension(cp.extensions)
        kept: MirroredSnapshot | None = None
        if committed is not None:
            snap_bytes = snapshot_of(state, cp.size, keys).to_bytes()
            derived = snapshot_digest(snap_bytes)
            kept = MirroredSnapshot(derived, cp.size, snap_bytes)
            if derived != committed:
                raise RuleRefusedError(
                    f"checkpoint commits revocation snapshot {committed.hex()[:16]}.., "
                    f"the entries give {derived.hex()[:16]}..",
                    REVOCATION_SNAPSHOT_RULE,
                )
        served = self.store.checkpoint(cp.origin)
        verifier = self._log_verifiers[cp.origin]
        better = best_cosigned(served, opened.note.render(), verifier, self._witnesses)
        self.store.append(cp.origin, old, leaves, changed, better, cp.size, snapshot=kept)
        self._logs[cp.origin] = _MirroredLog(state, keys)

    def _fetch(
        self, member: Member, start: int, end: int, shard: Shard | None = None
    ) -> list[bytes]:
        source = self.source_for(member) if shard is None else self.shard_source_for(member, shard)
        out: list[bytes] = []
        pos = start
        while pos < end:
            n = pos // tiles.TILE_WIDTH
            width = min(tiles.TILE_WIDTH, end - n * tiles.TILE_WIDTH)
            try:
                bundle = tiles.decode_entry_bundle(source.entry_bundle(n, width))
            except LedgerError as e:
                raise EntriesUnavailableError(f"cannot fetch entries of {member.id}: {e}") from e
            if len(bundle) != width:
                raise EntriesUnavailableError(
                    f"bundle {n}: expected {width} entries, got {len(bundle)}"
                )
            out.extend(bundle[pos - n * tiles.TILE_WIDTH :])
            pos = n * tiles.TILE_WIDTH + width
        return out


def _size_of(note: bytes) -> int:
    return Checkpoint.parse(SignedNote.parse(note).text).size


def snapshot_of(state: LogState, size: int, key_entries: Sequence[bytes]) -> RevocationSnapshot:
    """The revocation snapshot a checkpoint of `size` commits to (ledger.log.revocation)."""
    return RevocationSnapshot(
        state.region,
        size,
        frozenset(state.revoked),
        tuple(key_entries),
        state.anchored.to_bitmap32(),
    )
