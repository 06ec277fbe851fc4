"""The single writer of one log: pools submissions, validates, sequences, commits, signs.

What it does: submitters hand in encoded entries and block; one background thread
seals a batch every `max_batch_delay_s` (<= 500 ms), at `max_batch_entries`, or as
soon as no submission arrived for BATCH_QUIET_S (group commit), drops
entries already logged (dedupe by SHA-256 of the entry bytes: a retried submission gets
its existing index), validates each new entry with `ledger.log.rules.apply_entry` against
the log state (a refused submission is refused whole, naming the rule), computes the
changed tiles and the new root (ledger.log.tiles), signs the checkpoint of the new size and
commits entries + tiles + tree state + checkpoint in ONE transaction
(`Store.commit_batch`). Only then are submitters answered, so an acknowledged entry is
durable, and because the checkpoint of a size is stored with the tree of that size, a
node never signs two different checkpoints for one size, even across crashes.
What it does not: no HTTP (ledger.node.app) and no cosignature collection of its own (it
calls the configured hook after each commit, off the sequencing thread).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, cast

from ledger.log import tiles
from ledger.log.checkpoint import Checkpoint
from ledger.log.entries import TimestampedEntry, decode_leaf, encode_leaf, is_key_entry
from ledger.log.errors import LedgerError
from ledger.log.merkle import CompactRange, empty_root, leaf_hash
from ledger.log.note import NoteSigner, SignedNote, sign_note
from ledger.log.rules import LogState, RuleViolationError, apply_entry
from ledger.log.shards import ShardRuleError, check_leaf, find_frozen, render_frozen_line
from ledger.node.config import SUBMIT_TIMEOUT_S, NodeConfig
from ledger.node.state_snapshot import (
    StateSnapshotError,
    decode_state_snapshot,
    encode_state_snapshot,
)
from ledger.node.storage import BlobToStore, NewLeaf, StorageError, Store, TreeState

log = logging.getLogger(__name__)

EMPTY_TREE_ROOT = empty_root()
TILE_CACHE_LIMIT = 64  # tiles kept in memory for the right edge of the tree
# Leaves between two stored rules-state snapshots: a restart replays at most this many
# (about 15 us each) instead of the whole log; a snapshot of 10M anchors is ~2 MB.
STATE_SNAPSHOT_INTERVAL = 100_000  # leaves
BATCH_QUIET_S = 0.01  # seconds without a new submission after which the pool is sealed
Clock = Callable[[], float]


class SequencerError(LedgerError):
    """Root of the sequencer's own failures."""


class SubmissionRefusedError(SequencerError):
    """An entry broke a ledger rule (or could not be decoded); nothing of it was logged."""

    def __init__(self, message: str, rule: str, position: int) -> None:
        super().__init__(message)
        self.rule = rule
        self.position = position


class SequencerUnavailableError(SequencerError):
    """The sequencer is stopped, or the batch could not be committed; retry later."""


class ShardFrozenError(SequencerError):
    """The shard's period is over: its log is frozen and never grows again."""


@dataclass(frozen=True)
class Receipt:
    """Where an acknowledged entry sits in the log."""

    index: int
    entry_hash: bytes  # SHA-256 of the submitted entry bytes


@dataclass
class _Submission:
    entries: list[bytes]
    hashes: list[bytes]
    done: threading.Event = field(default_factory=threading.Event)
    receipts: list[Receipt] | None = None
    error: SequencerError | None = None


def entry_hash(entry: bytes) -> bytes:
    """The idempotency key of an entry: SHA-256 of its encoded bytes."""
    return hashlib.sha256(entry).digest()


def checkpoint_text(origin: str, size: int, root: bytes, extensions: Sequence[str] = ()) -> str:
    return Checkpoint(
        origin=origin, size=size, root_hash=root, extensions=tuple(extensions)
    ).render()


class CheckpointExtender(Protocol):
    """Adds extension lines (C2SP tlog-checkpoint: lines after the root hash) to each
    checkpoint the sequencer signs, e.g. ledger.node.revocation_api.RevocationPublisher."""

    def prime(self, entries: Iterable[bytes]) -> None:
        """Learn the stored log's entries at startup (called once, in log order)."""

    def lines(self, state: LogState, size: int, new_entries: Sequence[bytes]) -> list[str]:
        """Lines for the checkpoint of `size`, `state` being the rules' state there."""

    def committed(self) -> None:
        """The batch of the last `lines` call is durable."""

    def rolled_back(self) -> None:
        """The batch of the last `lines` call was not committed."""


class _OverlayReader:
    """TileReader that sees tiles of the batch being sequenced over the cache and store."""

    def __init__(
        self,
        overlay: Mapping[tuple[int, int], bytes],
        cache: dict[tuple[int, int], bytes],
        store: Store,
    ) -> None:
        self.overlay = overlay
        self.cache = cache
        self.store = store

    def read_tile(self, level: int, index: int) -> bytes:
        key = (level, index)
        if key in self.overlay:
            return self.overlay[key]
        if key not in self.cache:
            self.cache[key] = self.store.read_tile(level, index)
        return self.cache[key]


def rebuild_log_state(
    store: Store,
    initial: LogState,
    size: int,
    entries: list[bytes] | None = None,
    start: int = 0,
) -> LogState:
    """Replay the stored leaves [start, size) through the rules, from `initial` (the
    state after `start` leaves; startup; the rules are pure); when `entries` is given,
    also collect those entries' bytes into it."""

    state = initial
    for raw in store.iter_leaves(size, start):
        leaf = decode_leaf(raw)
        state = apply_entry(state, leaf)
        if entries is not None:
            entries.append(leaf.entry_bytes)
    return state


class Sequencer:
    """One log's writer thread. `submit` is safe to call from any number of threads."""

    def __init__(
        self,
        store: Store,
        config: NodeConfig,
        signer: NoteSigner,
        initial_state: LogState,
        clock: Clock = time.time,
        extender: CheckpointExtender | None = None,
        snapshot_interval: int = STATE_SNAPSHOT_INTERVAL,
    ) -> None:
        self.store = store
        self.snapshot_interval = snapshot_interval
        self.extender = extender
        self.config = config
        self.signer = signer
        self.clock = clock
        self._cond = threading.Condition()
        self._pending: list[_Submission] = []
        self._pending_count = 0
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._cache: dict[tuple[int, int], bytes] = {}
        self.tree = store.tree_state()
        self._check_root()
        self._check_entries()
        state, keys = self._load_state_snapshot(initial_state)
        self.replayed_from = state.size  # leaves before this came from the snapshot
        self._snapshot_size = state.size
        tail: list[bytes] = []
        self.log_state = rebuild_log_state(
            store, state, self.tree.size, tail, start=self.replayed_from
        )
        self._key_entries = keys + [e for e in tail if is_key_entry(e)]
        if extender is not None:
            extender.prime(self._key_entries)
            # The latest checkpoint's extension lines must be servable again: re-derive
            # them (deterministic, so the digest equals the committed one) and keep the
            # snapshot bytes if an older node version did not store them.
            extender.lines(self.log_state, self.tree.size, [])
            blob = self._pending_blob()
            extender.committed()
            if blob is not None and self.tree.size > 0:
                store.put_revocation_snapshot(BlobToStore(blob.digest, blob.tree_size, blob.data))
        self._ensure_checkpoint()
        self._cosign_cond = threading.Condition()
        self._cosign_next: tuple[int, bytes] | None = None
        self._cosign_thread: threading.Thread | None = None
        # Held while a batch is sequenced and while a shard is frozen, so the final
        # checkpoint is signed over a tree no batch is still growing.
        self._seq_lock = threading.Lock()
        self.frozen = self._latest_is_frozen()

    def _load_state_snapshot(self, initial: LogState) -> tuple[LogState, list[bytes]]:
        """The newest stored rules-state snapshot within the tree, else `initial`."""
        row = self.store.latest_state_snapshot(self.tree.size)
        if row is None:
            return initial, []
        size, data = row
        try:
            snap = decode_state_snapshot(data)
        except StateSnapshotError:
            log.exception("stored state snapshot at %d is unreadable; replaying the log", size)
            return initial, []
        st = snap.state
        if (st.region, st.root_public_key, st.size) != (
            initial.region,
            initial.root_public_key,
            size,
        ):
            log.error("stored state snapshot at %d is for another log; replaying", size)
            return initial, []
        return st, list(snap.key_entries)

    def _pending_blob(self) -> BlobToStore | None:
        # Optional on the extender (the revocation publisher has it); typed by cast
        # because getattr yields Any.
        get = getattr(self.extender, "pending_blob", None)
        return None if get is None else cast("BlobToStore | None", get())

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ledger-sequencer", daemon=True)
        self._thread.start()
        if self.config.cosign_hook is not None:
            self._cosign_thread = threading.Thread(
                target=self._cosign_loop, name="ledger-cosigner", daemon=True
            )
            self._cosign_thread.start()
            latest = self.store.latest_checkpoint()
            if latest is not None and not latest.cosignatures:
                self._queue_cosign(latest.size, latest.note)

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        with self._cosign_cond:
            self._cosign_cond.notify_all()
        for t in (self._thread, self._cosign_thread):
            if t is not None:
                t.join(timeout)

    # -- submission ----------------------------------------------------------------

    def submit(self, entries: Sequence[bytes], timeout: float = SUBMIT_TIMEOUT_S) -> list[Receipt]:
        """Log `entries` (all or none) and return their receipts once committed."""
        sub = _Submission(list(entries), [entry_hash(e) for e in entries])
        if not sub.entries:
            return []
        with self._cond:
            if self.frozen:
                raise ShardFrozenError(self._frozen_message())
            if self._stopping:
                raise SequencerUnavailableError("the sequencer is stopped")
            self._pending.append(sub)
            self._pending_count += len(sub.entries)
            self._cond.notify_all()
        if not sub.done.wait(timeout):
            raise SequencerUnavailableError(
                f"no commit within {timeout} s; the entries may still be logged, resubmit "
                "to learn their index"
            )
        if sub.error is not None:
            raise sub.error
        assert sub.receipts is not None
        return sub.receipts

    # -- the writer thread ---------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    self._fail_pending(SequencerUnavailableError("the sequencer stopped"))
                    return
                deadline = time.monotonic() + self.config.max_batch_delay_s
                while self._pending_count < self.config.max_batch_entries and not self._stopping:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    # Group commit: seal as soon as the pool stops growing. Submitters
                    # block until their batch commits, so when none arrived for
                    # BATCH_QUIET_S, waiting for the deadline only adds latency (and,
                    # with closed-loop submitters, caps throughput at one batch per
                    # max_batch_delay_s). A steady stream keeps the pool growing and is
                    # still batched up to the deadline or max_batch_entries.
                    seen = self._pending_count
                    self._cond.wait(min(left, BATCH_QUIET_S))
                    if self._pending_count == seen:
                        break
                batch = self._take_batch()
            try:
                with self._seq_lock:
                    self._sequence(batch)
            except Exception as e:  # the writer must survive anything: fail the batch only
                log.exception("sequencing a batch failed")
                err = SequencerUnavailableError(f"batch not committed: {type(e).__name__}")
                for sub in batch:
                    if not sub.done.is_set():
                        sub.error = err
                        sub.done.set()
                self._reload()

    def _take_batch(self) -> list[_Submission]:
        batch: list[_Submission] = []
        count = 0
        while self._pending and (
            not batch or count + len(self._pending[0].entries) <= self.config.max_batch_entries
        ):
            sub = self._pending.pop(0)
            batch.append(sub)
            count += len(sub.entries)
        self._pending_count -= count
        return batch

    def _fail_pending(self, err: SequencerError) -> None:
        for sub in self._pending:
            sub.error = err
            sub.done.set()
        self._pending.clear()
        self._pending_count = 0

    def _sequence(self, batch: list[_Submission]) -> None:
        shard = self.config.shard
        if self.frozen or (shard is not None and self.clock() >= shard.end):
            # A batch pooled before the shard's end but sealed after it: refused whole,
            # never logged into a shard whose period is over.
            err = ShardFrozenError(self._frozen_message())
            for sub in batch:
                sub.error = err
                sub.done.set()
            return
        old = self.tree
        all_hashes = list({h for sub in batch for h in sub.hashes})
        existing = self.store.find_indices(all_hashes)
        now_ms = int(self.clock() * 1000)
        # Leaf timestamps never go backwards (ledger.log.rules: TIMESTAMP_REGRESSION).
        ts = max(now_ms, old.last_timestamp_ms)
        state = self.log_state
        new: list[NewLeaf] = []
        new_entries: list[bytes] = []
        assigned: dict[bytes, int] = {}
        accepted: list[tuple[_Submission, list[int]]] = []
        for sub in batch:
            trial = state
            local: dict[bytes, int] = {}
            sub_new: list[NewLeaf] = []
            sub_entries: list[bytes] = []
            indices: list[int] = []
            try:
                for pos, (raw, h) in enumerate(zip(sub.entries, sub.hashes, strict=True)):
                    known = existing.get(h, assigned.get(h, local.get(h)))
                    if known is not None:
                        indices.append(known)
                        continue
                    leaf = TimestampedEntry(timestamp_ms=ts, entry_bytes=raw)
                    try:
                        if shard is not None:
                            check_leaf(shard, leaf)
                        trial = apply_entry(trial, leaf)
                    except ShardRuleError as e:
                        raise SubmissionRefusedError(
                            f"entry {pos} refused: {e}", e.rule, pos
                        ) from e
                    except RuleViolationError as e:
                        raise SubmissionRefusedError(
                            f"entry {pos} refused: {e}", str(e.rule), pos
                        ) from e
                    except LedgerError as e:
                        raise SubmissionRefusedError(
                            f"entry {pos} malformed: {e}", "malformed_entry", pos
                        ) from e
                    idx = old.size + len(new) + len(sub_new)
                    local[h] = idx
                    indices.append(idx)
                    sub_new.append(NewLeaf(idx, h, encode_leaf(leaf)))
                    sub_entries.append(raw)
            except SubmissionRefusedError as e:
                sub.error = e
                sub.done.set()
                continue
            state = trial
            new.extend(sub_new)
            new_entries.extend(sub_entries)
            assigned.update(local)
            accepted.append((sub, indices))
        if new:
            hashes = [leaf_hash(n.leaf) for n in new]
            changed = tiles.append_leaves(
                old.size, hashes, _OverlayReader({}, self._cache, self.store)
            )
            size = old.size + len(new)
            root = tiles.tree_root(size, _OverlayReader(changed, self._cache, self.store))
            tree = TreeState(size, root, ts)
            ext: list[str] = []
            if self.extender is not None:
                ext = self.extender.lines(state, size, new_entries)
            note = sign_note(checkpoint_text(self.config.origin, size, root, ext), [self.signer])
            keys = self._key_entries + [e for e in new_entries if is_key_entry(e)]
            snapshot: tuple[int, bytes] | None = None
            if size - self._snapshot_size >= self.snapshot_interval:
                snapshot = (size, encode_state_snapshot(state, tuple(keys)))
            try:
                self.store.commit_batch(
                    old.size,
                    new,
                    changed,
                    tree,
                    note,
                    now_ms,
                    state_snapshot=snapshot,
                    revocation_snapshot=self._pending_blob(),
                )
            except BaseException:
                if self.extender is not None:
                    self.extender.rolled_back()
                raise
            if self.extender is not None:
                self.extender.committed()
            self.tree = tree
            self.log_state = state
            self._key_entries = keys
            if snapshot is not None:
                self._snapshot_size = size
            self._remember(changed)
            self._queue_cosign(size, note)
        for sub, indices in accepted:
            sub.receipts = [Receipt(i, h) for i, h in zip(indices, sub.hashes, strict=True)]
            sub.done.set()

    def _remember(self, changed: Mapping[tuple[int, int], bytes]) -> None:
        self._cache.update(changed)
        if len(self._cache) > TILE_CACHE_LIMIT:
            # Full tiles are never read again when appending; keep only the right edge.
            for key in [k for k, v in self._cache.items() if len(v) == tiles.TILE_WIDTH * 32]:
                del self._cache[key]
            if len(self._cache) > TILE_CACHE_LIMIT:
                self._cache.clear()

    def _reload(self) -> None:
        """After a failed commit, forget everything in memory and reread the store."""
        self._cache.clear()
        try:
            stored = self.store.tree_state()
            if stored.size != self.tree.size:
                log.error(
                    "stored tree moved from %d to %d under this writer", self.tree.size, stored.size
                )
        except StorageError:
            log.exception("cannot reread the tree state")

    def _check_root(self) -> None:
        if self.tree.size == 0:
            return
        root = tiles.tree_root(self.tree.size, self.store)
        if root != self.tree.root_hash:
            raise StorageError(
                f"stored tiles give root {root.hex()} at size {self.tree.size}, "
                f"tree state says {self.tree.root_hash.hex()}"
            )

    def _check_entries(self) -> None:
        """Re-hash every stored entry (RFC 9162 §2.1.1) and compare the root with the
        tree state and with the latest signed checkpoint: an entry rewritten in place
        (tiles untouched) or a lost tail must stop the node before it serves bundles
        that contradict what it signed and its witnesses cosigned. O(n) hashing: about
        1 s per million entries."""
        latest = self.store.latest_checkpoint()
        signed: Checkpoint | None = None
        if latest is not None:
            try:
                signed = Checkpoint.parse(SignedNote.parse(latest.note).text)
            except LedgerError as e:
                raise StorageError(f"the latest stored checkpoint is unreadable: {e}") from e
            if signed.size > self.tree.size:
                raise StorageError(
                    f"the log signed a checkpoint of size {signed.size} but stores only "
                    f"{self.tree.size} entries; refusing to serve"
                )
        acc = CompactRange()
        signed_root = None
        for raw in self.store.iter_leaves(self.tree.size):
            acc.append(leaf_hash(raw))
            if signed is not None and acc.size == signed.size:
                signed_root = acc.root()
        if acc.size != self.tree.size:
            raise StorageError(
                f"expected {self.tree.size} stored entries, found {acc.size}; refusing to serve"
            )
        if signed is not None and signed.size == 0:
            signed_root = EMPTY_TREE_ROOT  # RFC 9162 §2.1.1: MTH({})
        if acc.root() != self.tree.root_hash or (
            signed is not None and signed_root != signed.root_hash
        ):
            raise StorageError(
                f"the stored entries give root {acc.root().hex()[:16]}.. at size {acc.size}, "
                f"but the tree state / latest signed checkpoint say "
                f"{self.tree.root_hash.hex()[:16]}.. / "
                f"{'-' if signed is None else signed.root_hash.hex()[:16]}..: entries were "
                "altered or lost; refusing to serve (restore the database from a backup)"
            )

    def _ensure_checkpoint(self) -> None:
        """Sign the checkpoint of the stored size if none is stored (only size 0)."""
        if self.store.checkpoint(self.tree.size) is None:
            ext: list[str] = []
            if self.extender is not None:
                ext = self.extender.lines(self.log_state, self.tree.size, [])
                self.extender.committed()
            note = sign_note(
                checkpoint_text(self.config.origin, self.tree.size, self.tree.root_hash, ext),
                [self.signer],
            )
            self.store.add_checkpoint_if_absent(self.tree.size, note, int(self.clock() * 1000))

    # -- temporal shards ---------------------------------------------------------------

    def _frozen_message(self) -> str:
        shard = self.config.shard
        end = "" if shard is None else f" at {shard.end}"
        return f"log {self.config.origin} is frozen (its period ended{end}); it never grows"

    def _latest_is_frozen(self) -> bool:
        latest = self.store.latest_checkpoint()
        if latest is None:
            return False
        try:
            cp = Checkpoint.parse(SignedNote.parse(latest.note).text)
            return find_frozen(cp.extensions) is not None
        except (LedgerError, ValueError):
            return False

    def freeze(self) -> bool:
        """Close the shard: refuse every later submission and replace the checkpoint of
        the final size by one that carries the frozen line (same tree, so witnesses
        cosign it as they would a re-signed checkpoint, C2SP tlog-witness). The node
        keeps asking for fresh cosignatures of it until the shard is dropped. True when
        this call froze it."""
        shard = self.config.shard
        if shard is None:
            raise SequencerError(f"log {self.config.origin} is not a shard")
        with self._cond:
            if self.frozen:
                return False
            self.frozen = True
            self._fail_pending(ShardFrozenError(self._frozen_message()))
        with self._seq_lock:
            latest = self.store.latest_checkpoint()
            if latest is not None and self._latest_is_frozen():
                return False
            ext: list[str] = []
            if self.extender is not None:
                ext = self.extender.lines(self.log_state, self.tree.size, [])
                self.extender.committed()
            ext.append(render_frozen_line(shard))
            text = checkpoint_text(self.config.origin, self.tree.size, self.tree.root_hash, ext)
            note = sign_note(text, [self.signer])
            now_ms = int(self.clock() * 1000)
            if latest is None:
                self.store.add_checkpoint_if_absent(self.tree.size, note, now_ms)
            elif not self.store.replace_checkpoint_note(latest.size, latest.note, note, now_ms):
                raise SequencerError(f"the checkpoint of {self.config.origin} moved while freezing")
            log.info("froze %s at size %d", self.config.origin, self.tree.size)
            self._queue_cosign(self.tree.size, note)
            return True

    # -- cosignatures ----------------------------------------------------------------

    def _queue_cosign(self, size: int, note: bytes) -> None:
        if self.config.cosign_hook is None:
            return
        with self._cosign_cond:
            self._cosign_next = (size, note)
            self._cosign_cond.notify_all()

    def _cosign_loop(self) -> None:
        hook = self.config.cosign_hook
        assert hook is not None
        while True:
            with self._cosign_cond:
                while self._cosign_next is None and not self._stopping:
                    self._cosign_cond.wait()
                if self._stopping:
                    return
                size, note = self._cosign_next  # type: ignore[misc]
                self._cosign_next = None
            try:
                lines = list(hook(note))
                if lines:
                    self.store.set_cosignatures(size, lines, note=note)
            except Exception:  # a witness outage must never stop the log
                log.exception("collecting cosignatures for size %d failed", size)
