"""Compact revocation on the node side: commit a revocation snapshot digest in every
checkpoint, and serve snapshots and XOR deltas by content address over HTTP.

`RevocationPublisher` is the sequencer's checkpoint extender: for each new tree size it
builds the region's `RevocationSnapshot` (revoked status indices + key entries,
ledger.log.revocation) from the rules' state, remembers its bytes by SHA-256 digest and
returns the `revocation.render_extension(digest)` line the checkpoint carries. The
validating witnesses re-derive the same snapshot from the entries before cosigning
(ledger.joint.mirror), so a station that trusts the quorum trusts the digest, and may then
fetch the bytes from anyone.

Endpoints (blueprint `revocation_blueprint(publisher)`; a validating mirror serves the
same two paths under its tlog-mirror prefix, see ledger.joint.api):

- `GET /revocation/snapshot/<hex digest>` — the snapshot bytes, immutable;
- `GET /revocation/delta/<hex from>/<hex to>` — `RevocationDelta` bytes, immutable.

Both are content-addressed (the URL names the digest(s) of what it returns), so they are
served with `Cache-Control: immutable` like full tiles. The publisher keeps the latest
`MAX_KEPT_SNAPSHOTS` snapshots in memory and, given the node's store, in the database
(written in the same transaction as the batch whose checkpoint commits them), so deltas
survive a restart; a station whose old digest has been pruned gets 404 for the delta
and fetches the full snapshot instead. What it does not: decide what is revoked
(ledger.log.rules does) or verify anything a client sends.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence

from flask import Blueprint, Response, jsonify

from ledger.log.entries import is_key_entry
from ledger.log.revocation import (
    DIGEST_SIZE,
    RevocationError,
    RevocationSnapshot,
    make_delta,
    render_extension,
)
from ledger.log.rules import LogState
from ledger.node.config import IMMUTABLE_MAX_AGE_S
from ledger.node.storage import BlobToStore, StorageError, Store

MAX_KEPT_SNAPSHOTS = 64  # snapshots kept for deltas (one per checkpoint)
SNAPSHOT_MEDIA_TYPE = "application/octet-stream"


class RevocationPublisher:
    """The sequencer's `CheckpointExtender` plus a small content-addressed store.

    The latest `keep` snapshots are held in memory; with a `store`, every committed
    snapshot is also written in its batch's transaction (`pending_blob`), the last
    `keep` are kept there, and reads fall back to the database, so a station's delta
    request still finds its old snapshot after a node restart.
    """

    def __init__(
        self, region: str, keep: int = MAX_KEPT_SNAPSHOTS, store: Store | None = None
    ) -> None:
        self.region = region
        self.keep = keep
        self.store = store
        self.key_entries: list[bytes] = []
        self._snapshots: OrderedDict[bytes, RevocationSnapshot] = OrderedDict()
        self._bytes: dict[bytes, bytes] = {}
        self._lock = threading.Lock()
        self._pending_keys: list[bytes] | None = None
        self._pending_blob: BlobToStore | None = None

    # -- the sequencer's side --------------------------------------------------------

    def prime(self, entries: Iterable[bytes]) -> None:
        """Learn the key entries of the stored log (node startup)."""
        self.key_entries = [e for e in entries if is_key_entry(e)]

    def lines(self, state: LogState, size: int, new_entries: Sequence[bytes]) -> list[str]:
        """The extension lines for the checkpoint of `size` after `new_entries`."""
        keys = self.key_entries + [e for e in new_entries if is_key_entry(e)]
        snap = RevocationSnapshot(
            self.region, size, frozenset(state.revoked), tuple(keys), state.anchored.to_bitmap32()
        )
        data = snap.to_bytes()
        digest = _sha256(data)
        with self._lock:
            self._snapshots[digest] = snap
            self._bytes[digest] = data
            while len(self._snapshots) > self.keep:
                old, _ = self._snapshots.popitem(last=False)
                self._bytes.pop(old, None)
            full = len(self._snapshots) >= self.keep
            oldest = next(iter(self._snapshots.values())).tree_size
        self._pending_keys = keys
        if self.store is not None:
            self._pending_blob = BlobToStore(digest, size, data, oldest if full else 0)
        return [render_extension(digest)]

    def pending_blob(self) -> BlobToStore | None:
        """The snapshot of the last `lines` call, for the sequencer to store in the batch."""
        return self._pending_blob

    def committed(self) -> None:
        """The batch whose lines were last asked for is durable: adopt its key entries."""
        if self._pending_keys is not None:
            self.key_entries = self._pending_keys
            self._pending_keys = None
        self._pending_blob = None

    def rolled_back(self) -> None:
        self._pending_keys = None
        self._pending_blob = None

    # -- the read side -----------------------------------------------------------------

    def snapshot_bytes(self, digest: bytes) -> bytes | None:
        with self._lock:
            data = self._bytes.get(digest)
        if data is None and self.store is not None:
            try:
                data = self.store.revocation_snapshot(digest)
            except StorageError:
                return None
        return data

    def _snapshot(self, digest: bytes) -> RevocationSnapshot | None:
        with self._lock:
            snap = self._snapshots.get(digest)
        if snap is not None:
            return snap
        data = self.snapshot_bytes(digest)
        if data is None:
            return None
        try:
            return RevocationSnapshot.from_bytes(data)
        except RevocationError:
            return None

    def delta_bytes(self, from_digest: bytes, to_digest: bytes) -> bytes | None:
        old = self._snapshot(from_digest)
        new = self._snapshot(to_digest)
        if old is None or new is None or new.tree_size < old.tree_size:
            return None
        return make_delta(old, new).to_bytes()


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def parse_digest(text: str) -> bytes | None:
    """A hex SHA-256 digest from a URL segment, or None when it is not one."""
    if len(text) != 2 * DIGEST_SIZE:
        return None
    try:
        return bytes.fromhex(text)
    except ValueError:
        return None


def immutable(body: bytes) -> Response:
    resp = Response(body, mimetype=SNAPSHOT_MEDIA_TYPE)
    resp.headers["Cache-Control"] = f"public, max-age={IMMUTABLE_MAX_AGE_S}, immutable"
    return resp


def not_found(message: str) -> Response:
    resp = jsonify(error="not_found", message=message)
    resp.status_code = 404
    return resp


def bad_digest() -> Response:
    resp = jsonify(error="bad_request", message="expected a 64-hex-digit SHA-256 digest")
    resp.status_code = 400
    return resp


def revocation_blueprint(publisher: RevocationPublisher) -> Blueprint:
    bp = Blueprint("ledger_revocation", __name__)

    @bp.get("/revocation/snapshot/<digest>")
    def snapshot(digest: str) -> Response:
        d = parse_digest(digest)
        if d is None:
            return bad_digest()
        data = publisher.snapshot_bytes(d)
        if data is None:
            return not_found("no snapshot with that digest here (fetch the latest one)")
        return immutable(data)

    @bp.get("/revocation/delta/<from_digest>/<to_digest>")
    def delta(from_digest: str, to_digest: str) -> Response:
        a, b = parse_digest(from_digest), parse_digest(to_digest)
        if a is None or b is None:
            return bad_digest()
        data = publisher.delta_bytes(a, b)
        if data is None:
            return not_found("no delta between those snapshots here (fetch the full snapshot)")
        return immutable(data)

    return bp
