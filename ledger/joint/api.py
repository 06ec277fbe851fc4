"""Joint operation wired into a ledger node: the witness and mirror HTTP endpoints, and
the post-checkpoint hook that collects cosignatures from every member's witness.

Endpoints (a Flask blueprint registered through `ledger.node.app.create_app(config,
extra_blueprints=...)`):

- `POST /add-checkpoint` — C2SP tlog-witness@v1.0.0; 200 with cosignature lines;
  409 `text/x.tlog.size` when the old size is stale; other refusals as JSON
  {"error", "message", ...} with the spec's status (400/403/404/409/422), a rule
  violation found by the validating mirror naming the rule (`"rule"`).
- `GET /v1/alarms` — fork and misbehaviour evidence (both signed notes, base64).
- `GET /v1/witness/status` — the latest checkpoint cosigned per origin.
- `GET /mirror/<origin hash>/checkpoint`, `/mirror/<origin hash>/tile/...` — the
  mirrored copy of another region's log (C2SP tlog-mirror / tlog-tiles read API).
- `GET /mirror/<origin hash>/revocation/snapshot/<hex>` and
  `/mirror/<origin hash>/revocation/delta/<hex from>/<hex to>` — the revocation
  snapshots the validating mirror re-derived (and XOR deltas between them), with the
  node's caching and error rules (ledger.node.revocation_api): immutable, 400 for a
  malformed digest, 404 JSON when not kept.

`JointServices.open(...)` builds the witness, mirror and collector for one member;
`CosignatureCollector` is the node's `cosign_hook`. The domain logic lives in
ledger.joint.witness and ledger.joint.mirror; this module only translates HTTP.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa
from flask import Blueprint, Flask, Response, current_app, jsonify, request

from common import db as common_db
from common.db import SqliteTuning
from common.observability import SecurityEvent, security_event
from ledger.clients.reader import LogReadError, bounded_request
from ledger.joint.mirror import MirrorStore, ValidatingMirror, origin_hash
from ledger.joint.witness import (
    MAX_REQUEST_BYTES,
    SIZE_MEDIA_TYPE,
    AddCheckpointRequest,
    ForkError,
    FrozenShardError,
    OldSizeMismatchError,
    RuleRefusedError,
    Witness,
    WitnessError,
    WitnessStore,
)
from ledger.log import tiles
from ledger.log.checkpoint import Checkpoint, attach_signatures
from ledger.log.consortium import Consortium, Member
from ledger.log.errors import LedgerError, TileError
from ledger.log.note import NoteSignature, NoteSigner, SignedNote
from ledger.metrics import METRICS_KEY
from ledger.node.app import EXTENSION_KEY
from ledger.node.config import CHECKPOINT_INTERVAL_S
from ledger.node.http_cache import cacheable
from ledger.node.migrations import upgrade_head
from ledger.node.revocation_api import bad_digest, immutable, not_found, parse_digest
from ledger.node.sharding import ShardHooks

log = logging.getLogger(__name__)

PUSH_TIMEOUT_S = 10.0  # seconds for one add-checkpoint call to a peer witness
MAX_COSIGNATURE_ANSWER_BYTES = 1 << 12  # bytes; a cosignature line, a size, or an error
RETRY_INTERVAL_S = 2.0  # seconds between retries of witnesses that did not cosign yet
SQLITE_BUSY_TIMEOUT_S = 10.0  # seconds a connection waits on a locked SQLite file
ProofSource = Callable[[int, int], list[bytes]]


def make_engine(url: str) -> sa.Engine:
    """An engine for the witness and mirror tables (common.db)."""
    return common_db.make_engine(url, SqliteTuning(busy_timeout_s=SQLITE_BUSY_TIMEOUT_S))


def _json_error(status: int, code: str, message: str, **extra: Any) -> Response:
    resp = jsonify(error=code, message=message, **extra)
    resp.status_code = status
    return resp


def _refused(code: str, message: str | None = None) -> None:
    """Count a refusal; log it as a security event unless the witness already raised
    an alarm for it (forks and rule violations are logged once, as alarms, where the
    evidence is recorded) or it is routine (a stale old size, tlog-witness 409)."""
    metrics = current_app.extensions.get(METRICS_KEY)
    if metrics is not None:
        metrics.witness_refusals.labels(code).inc()
    if message is not None:
        security_event(log, SecurityEvent.WITNESS_REFUSED, code=code, why=message[:200])


def joint_blueprint(witness: Witness, validating: ValidatingMirror) -> Blueprint:
    bp = Blueprint("joint", __name__)
    mirror = validating.store

    @bp.post("/add-checkpoint")
    def add_checkpoint() -> Response:
        body = request.get_data(cache=False)
        if len(body) > MAX_REQUEST_BYTES:
            _refused("bad_request", f"body over {MAX_REQUEST_BYTES} bytes")
            return _json_error(400, "bad_request", f"body over {MAX_REQUEST_BYTES} bytes")
        try:
            line = witness.add_checkpoint(body)
        except OldSizeMismatchError as e:
            _refused("old_size_mismatch")
            # tlog-witness: 409 with the latest cosigned size as text/x.tlog.size.
            return Response(f"{e.latest_size}\n", status=409, mimetype=SIZE_MEDIA_TYPE)
        except (ForkError, FrozenShardError) as e:
            _refused(e.code)
            return _json_error(409, e.code, str(e), latest_size=e.latest_size)
        except RuleRefusedError as e:
            _refused(e.code)
            return _json_error(422, e.code, str(e), rule=e.rule, index=e.index)
        except WitnessError as e:
            _refused(e.code, str(e))
            return _json_error(e.status, e.code, str(e))
        except LedgerError as e:
            _refused("bad_request", str(e))
            return _json_error(400, "bad_request", str(e))
        try:
            req = AddCheckpointRequest.parse(body)
            cp = Checkpoint.parse(SignedNote.parse(req.checkpoint).text)
            # Served only if better than what the mirror serves (ledger.joint.mirror.offer).
            validating.offer(cp.origin, attach_signatures(req.checkpoint, [line]))
        except LedgerError:
            log.exception("could not attach our cosignature to the mirrored checkpoint")
        return Response(line, status=200, mimetype="text/plain")

    @bp.get("/v1/alarms")
    def alarms() -> Response:
        items = [
            {
                "id": ev.id,
                "origin": ev.origin,
                "kind": str(ev.kind),
                "size": ev.size,
                "detail": ev.detail,
                "detected_at": ev.detected_at,
                "held_note": base64.b64encode(ev.held_note).decode(),
                "conflicting_note": base64.b64encode(ev.conflicting_note).decode(),
            }
            for ev in witness.store.evidence()
        ]
        return jsonify(alarms=items, count=len(items))

    @bp.get("/v1/witness/status")
    def status() -> Response:
        logs = []
        for origin in witness.logs:
            latest = witness.store.latest(origin)
            logs.append(
                {
                    "origin": origin,
                    "size": latest.size if latest else 0,
                    "root_hash": base64.b64encode(latest.root_hash).decode() if latest else None,
                }
            )
        return jsonify(witness=witness.signer.name, logs=logs,
                       alarms=len(witness.store.evidence()))  # fmt: skip

    def _origin(h: str) -> str:
        for origin in witness.logs:
            if origin_hash(origin) == h:
                return origin
        raise KeyError(h)

    @bp.get("/mirror/<h>/checkpoint")
    def mirror_checkpoint(h: str) -> Response:
        try:
            note = mirror.checkpoint(_origin(h))
        except KeyError:
            note = None
        if note is None:
            return _json_error(404, "not_found", "no mirrored log with that origin hash")
        return cacheable(Response(note, mimetype="text/plain; charset=utf-8"), immutable=False)

    @bp.get("/mirror/<h>/tile/<path:subpath>")
    def mirror_tile(h: str, subpath: str) -> Response:
        try:
            origin = _origin(h)
            tid = tiles.TileId.parse_path("tile/" + subpath)
        except (KeyError, TileError, ValueError):
            return _json_error(404, "not_found", "no such mirrored tile")
        size = mirror.size(origin)
        level = 0 if tid.level == tiles.ENTRIES_LEVEL else tid.level
        available = tiles.tile_width(level, tid.index, size)
        if available == 0 or tid.width > available or (not tid.is_partial and available < 256):
            return _json_error(404, "not_found", f"{tid.path()} not in the mirrored tree")
        if tid.level == tiles.ENTRIES_LEVEL:
            start = tid.index * tiles.TILE_WIDTH
            body = tiles.encode_entry_bundle(mirror.leaves(origin, start, start + tid.width))
        else:
            body = mirror.read_tile(origin, tid.level, tid.index)[: tid.width * 32]
        return cacheable(
            Response(body, mimetype="application/octet-stream"), immutable=not tid.is_partial
        )

    # Same answers as the node's /revocation/... (ledger.node.revocation_api): the URL names
    # the digest(s) of what it returns, so the bytes are immutable; a station checks
    # them against the quorum-cosigned digest, so this mirror need not be trusted.
    @bp.get("/mirror/<h>/revocation/snapshot/<digest>")
    def mirror_snapshot(h: str, digest: str) -> Response:
        d = parse_digest(digest)
        if d is None:
            return bad_digest()
        try:
            data = mirror.revocation_snapshot(_origin(h), d)
        except KeyError:
            return not_found("no mirrored log with that origin hash")
        if data is None:
            return not_found("no snapshot with that digest here (fetch the latest one)")
        return immutable(data)

    @bp.get("/mirror/<h>/revocation/delta/<from_digest>/<to_digest>")
    def mirror_delta(h: str, from_digest: str, to_digest: str) -> Response:
        a, b = parse_digest(from_digest), parse_digest(to_digest)
        if a is None or b is None:
            return bad_digest()
        try:
            data = mirror.revocation_delta(_origin(h), a, b)
        except KeyError:
            return not_found("no mirrored log with that origin hash")
        if data is None:
            return not_found("no delta between those snapshots here (fetch the full snapshot)")
        return immutable(data)

    return bp


@dataclass
class CosignatureCollector:
    """The node's post-checkpoint hook: push the new checkpoint to every witness in the
    consortium (this node's own in-process, peers over HTTP), return their lines.

    It remembers each witness's last cosigned size (learned from 200s and from 409
    `text/x.tlog.size` answers) to send the right consistency proof, and `retry()`
    re-asks witnesses missing on the latest checkpoint (a peer back after an outage
    catches up without waiting for new entries) and those whose cosignature is older
    than `interval_s`: the same checkpoint is cosigned again with a new timestamp
    (C2SP tlog-witness accepts an unchanged size), so a quiet log stays fresh for
    stations (docs/ledger-protocol.md §6). A witness that does not answer keeps its
    older cosignature on the served checkpoint."""

    consortium: Consortium
    self_id: str
    local: Witness | None = None
    proofs: ProofSource | None = None
    timeout: float = PUSH_TIMEOUT_S
    sizes: dict[str, int] = field(default_factory=dict)
    session: requests.Session = field(default_factory=requests.Session)
    store_lines: Callable[[int, Sequence[str]], None] | None = None
    latest_stored: Callable[[], tuple[int, bytes, Sequence[str]] | None] | None = None
    interval_s: float = CHECKPOINT_INTERVAL_S
    clock: Callable[[], float] = time.monotonic
    _latest: tuple[int, bytes] | None = None
    _lines: dict[str, str] = field(default_factory=dict)
    _got_at: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def attach_node(self, app: Flask) -> None:
        """Take proofs from the node's tiles and store retried lines in its store."""
        n = app.extensions["healthbridge_ledger"]
        store = n.store
        self.proofs = lambda old, new: tiles.consistency_proof(old, new, store)

        def store_lines(size: int, lines: Sequence[str]) -> None:
            # Only onto the note they sign (a frozen shard replaces its final note).
            note = None if self._latest is None else self._latest[1]
            store.set_cosignatures(size, lines, note=note)

        self.store_lines = store_lines
        self.interval_s = n.config.checkpoint_interval_s

        def latest() -> tuple[int, bytes, Sequence[str]] | None:
            cp = store.latest_checkpoint()
            return None if cp is None else (cp.size, cp.note, cp.cosignatures)

        self.latest_stored = latest

    def __call__(self, note: bytes) -> list[str]:
        cp = Checkpoint.parse(SignedNote.parse(note).text)
        with self._lock:
            if self._latest is None or (cp.size, note) != self._latest:
                self._lines, self._got_at = {}, {}
            self._latest = (cp.size, note)
            return self._collect(cp, note, None)

    def retry(self) -> None:
        """Ask again the witnesses that have not cosigned the latest checkpoint, or whose
        cosignature is older than `interval_s`."""
        with self._lock:
            if self._latest is None:
                self._load_stored()
            if self._latest is None:
                return
            size, note = self._latest
            stale_before = self.clock() - self.interval_s
            due = [
                m for m in self.consortium.members
                if m.id not in self._lines or self._got_at.get(m.id, -1.0) < stale_before
            ]  # fmt: skip
            if not due:
                return
            cp = Checkpoint.parse(SignedNote.parse(note).text)
            before = dict(self._lines)
            lines = self._collect(cp, note, stale_before)
            if self._lines != before and self.store_lines is not None:
                self.store_lines(size, lines)

    def _load_stored(self) -> None:
        """After a restart: the stored latest checkpoint and its lines, all due again."""
        got = None if self.latest_stored is None else self.latest_stored()
        if got is None:
            return
        size, note, lines = got
        self._latest = (size, note)
        self._lines, self._got_at = {}, {}
        for line in lines:
            try:
                name = NoteSignature.parse(line).name
            except LedgerError:
                continue
            m = self.consortium.witness_member_by_name(name)
            if m is not None:
                self._lines[m.id] = line.rstrip("\n") + "\n"
                self._got_at[m.id] = -1.0  # age unknown: refresh at once

    def _collect(self, cp: Checkpoint, note: bytes, stale_before: float | None) -> list[str]:
        order = sorted(self.consortium.members, key=lambda m: m.id != self.self_id)
        for m in order:
            have = m.id in self._lines
            if have and (stale_before is None or self._got_at.get(m.id, -1.0) >= stale_before):
                continue
            # Send the other witnesses' lines along (a peer's mirror serves them), never
            # the asked witness's own older line.
            others = [line for mid, line in self._lines.items() if mid != m.id]
            current = attach_signatures(note, others) if others else note
            line = self._ask(m, cp, current)
            if line:
                self._lines[m.id] = line
                self._got_at[m.id] = self.clock()
                # Served at once: a witness that answered is not held back by a peer
                # that is slow or restarting (each ask may wait PUSH_TIMEOUT_S).
                if self.store_lines is not None:
                    try:
                        self.store_lines(cp.size, list(self._lines.values()))
                    except LedgerError:
                        log.exception("storing cosignatures for size %d failed", cp.size)
        return list(self._lines.values())

    def _ask(self, m: Member, cp: Checkpoint, note: bytes) -> str | None:
        for _ in range(2):
            old = self.sizes.get(m.id, 0)
            if old > cp.size:
                return None
            proof: list[bytes] = []
            if 0 < old < cp.size:
                if self.proofs is None:
                    return None
                proof = self.proofs(old, cp.size)
            body = AddCheckpointRequest(old, tuple(proof), note).render()
            if m.id == self.self_id and self.local is not None:
                try:
                    line = self.local.add_checkpoint(body, validate=False)
                except OldSizeMismatchError as e:
                    self.sizes[m.id] = e.latest_size
                    continue
                except WitnessError as e:
                    log.error("own witness refused %s size %d: %s", cp.origin, cp.size, e)
                    return None
                self.sizes[m.id] = cp.size
                return line
            try:
                r = bounded_request(self.session, "POST", f"{m.node_url}/add-checkpoint",
                                    data=body, timeout=self.timeout,
                                    limit=MAX_COSIGNATURE_ANSWER_BYTES)  # fmt: skip
            except LogReadError as e:
                log.warning("witness %s unreachable: %s", m.id, type(e).__name__)
                return None
            if r.status == 200:
                self.sizes[m.id] = cp.size
                return r.text
            if r.status == 409 and r.content_type().startswith(SIZE_MEDIA_TYPE):
                try:
                    self.sizes[m.id] = int(r.text.strip())
                except ValueError:
                    return None
                continue
            log.warning("witness %s refused %s size %d: %s %s", m.id, cp.origin, cp.size,
                        r.status, r.text[:300])  # fmt: skip
            return None
        return None


@dataclass
class JointServices:
    """Everything joint operation adds to one member's node."""

    consortium: Consortium
    member: Member
    witness: Witness
    mirror: ValidatingMirror
    collector: CosignatureCollector
    clock: Callable[[], float] = time.time
    # One collector per temporal shard of this member's own log (ledger.node.sharding).
    shard_collectors: dict[str, CosignatureCollector] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @classmethod
    def open(
        cls,
        consortium: Consortium,
        member_id: str,
        witness_key_file: str | Path,
        database_url: str,
        *,
        clock: Callable[[], float] = time.time,
    ) -> JointServices:
        member = consortium.member(member_id)
        path = Path(witness_key_file)
        if path.stat().st_mode & 0o077:
            raise LedgerError(f"witness key file {path} must not be readable by others (0600)")
        signer = NoteSigner.from_skey(path.read_text(encoding="ascii").strip())
        if signer.name != member.witness.name or signer.public_key != member.witness.public_key:
            raise LedgerError(
                f"witness key {signer.name} is not member {member_id}'s {member.witness.name}"
            )
        engine = make_engine(database_url)
        upgrade_head(engine)  # witness and mirror tables: the node's Alembic history
        mirror = ValidatingMirror(consortium, MirrorStore(engine, migrate=False))
        witness = Witness(
            consortium, signer, WitnessStore(engine, migrate=False), validator=mirror, clock=clock
        )
        collector = CosignatureCollector(consortium, member_id, local=witness)
        return cls(consortium, member, witness, mirror, collector, clock=clock)

    def shard_hooks(self) -> ShardHooks:
        """Cosignature collection for each shard a sharded node opens: a collector per
        shard (each shard is its own log to every witness), bound to the shard's store
        once its app is up, forgotten when the shard is closed."""

        def hook_for(shard: Any) -> CosignatureCollector:
            c = CosignatureCollector(self.consortium, self.member.id, local=self.witness)
            self.shard_collectors[shard.origin] = c
            return c

        def opened(shard: Any, app: Flask) -> None:
            self.shard_collectors[shard.origin].attach_node(app)

        def closed(shard: Any) -> None:
            self.shard_collectors.pop(shard.origin, None)

        return ShardHooks(hook_for, opened, closed)

    def _tick(self) -> None:
        """One round of the retry loop: re-ask missing or stale cosignatures of every
        log this node runs (frozen shards too: their freshness continues until they
        are dropped), and stop mirroring droppable shards of the other members."""
        collectors = [self.collector, *list(self.shard_collectors.values())]
        for c in collectors:
            if c.latest_stored is None and c is self.collector:
                continue  # a sharded node's top level runs no log of its own
            try:
                c.retry()
            except Exception:  # a witness outage must never stop the retry loop
                log.exception("cosignature retry failed")
        try:
            self.mirror.drop_droppable(int(self.clock()))
        except Exception:
            log.exception("dropping droppable mirrored shards failed")

    def blueprints(self) -> list[Blueprint]:
        return [joint_blueprint(self.witness, self.mirror)]

    def attach(self, app: Flask, retry_interval_s: float = RETRY_INTERVAL_S) -> None:
        """Bind the collector to the node's store and start the retry loop (which also
        re-collects cosignatures every `checkpoint_interval_s` of the node's config)."""
        if EXTENSION_KEY in app.extensions:
            self.collector.attach_node(app)
        retry_interval_s = min(retry_interval_s, self.collector.interval_s / 4)

        def loop() -> None:
            while not self._stop.wait(retry_interval_s):
                self._tick()

        self._thread = threading.Thread(target=loop, name="cosign-retry", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
