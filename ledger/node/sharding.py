"""A region's log as a sequence of temporal shards, served by one node process.

What it does: `ShardedNode` runs one complete log per tracked shard (ledger.log.shards:
origin `<base>/<k>`, own database, own `Sequencer`, own checkpoints, tiles and
revocation snapshots, each built by `ledger.node.app.create_app`) and
`create_sharded_app` serves them:

  /<k>/...            shard k's whole node API (checkpoint, tiles, proofs, status,
                      revocation snapshots, and its own POST /v1/entries, authenticated
                      over the shard's origin)
  POST /v1/entries    routing by content: an anchor to the shard of its expiry; a
                      revocation or reinstatement to the shard that anchored its status
                      index; a key entry to every tracked shard that is not frozen (so
                      each shard validates alone); an audit digest to the open shard
  GET  /v1/shards     every tracked shard: number, origin, period, state, size
  GET  /v1/status     the region, its base origin and the shard list
  /healthz, /readyz, and the joint blueprints (witness, mirror) unprefixed.
ledger/openapi.yaml documents these (operations tagged `sharded-node`;
tests/ledger/node/test_sharded_openapi.py). The node's metrics are one registry over
every tracked shard, each shard's series labelled shard="<k>" (ledger.metrics).

Life of a shard, driven by the injected clock on every request and on a timer: it is
opened (database created, migrated, and seeded with the region's key entries copied
from a shard already open) when it becomes tracked; at its end it is frozen (the
sequencer signs the final checkpoint with the frozen line and refuses all growth with
409); once droppable and past the clock margin it is closed (sequencer stopped, pool
released) and no longer served. Its database stays where it is until the operator
archives or drops it (docs/operations.md). Cosignatures are collected per shard, and
re-collected on the freshness timer for frozen shards too, by the hooks given.

What it does not: decide which entries are valid (the rules and the shard rule run in
each shard's sequencer) or witness other logs (ledger.joint).
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from flask import Blueprint, Flask, current_app, jsonify, request

from common.observability import SecurityEvent, health_blueprint, instrument, security_event
from ledger.log.entries import AuditDigest, decode_entry, is_key_entry, routing_fields
from ledger.log.errors import LedgerError
from ledger.log.shards import Shard, ShardPlan, ShardState
from ledger.log.writer_auth import WriterAuth, WriterAuthError
from ledger.metrics import METRICS_KEY, LedgerMetrics
from ledger.node.app import (
    EXTENSION_KEY,
    ApiError,
    LedgerNode,
    _parse_entries,
    _register_errors,
    create_app,
)
from ledger.node.config import AUTH_WINDOW_S, MAX_BODY_BYTES, CosignHook, NodeConfig
from ledger.node.sequencer import (
    Receipt,
    SequencerError,
    ShardFrozenError,
    SubmissionRefusedError,
    entry_hash,
)

log = logging.getLogger(__name__)

SHARDED_KEY = "healthbridge_ledger_shards"
SHARD_TICK_S = 1.0  # seconds between lifecycle checks when no request arrives
# A node serves shards this much beyond the plan on either side, so a station or
# witness whose clock differs from the node's still finds each shard it follows.
SHARD_CLOCK_MARGIN_S = 300  # seconds
SHARD_PATH_RE = re.compile(r"^/(0|[1-9][0-9]{0,11})(/.*)?$")
PG_SCHEMA_PREFIX = "ledger_shard_"


class ShardingError(LedgerError):
    """A sharded node that cannot be set up (database URL, plan)."""


def shard_database_url(url: str, number: int) -> str:
    """Where shard `number` of a log whose base database is `url` lives.

    `{shard}` in the URL is replaced by the number; a SQLite file `x.db` becomes
    `x.shard-<k>.db`; a PostgreSQL URL keeps its database and puts the shard in the
    schema `ledger_shard_<k>` (libpq `options=-csearch_path=...`), so an operator
    drops a shard with one DROP SCHEMA."""
    if "{shard}" in url:
        return url.replace("{shard}", str(number))
    if url.startswith("sqlite"):
        if url.endswith(":memory:") or url in ("sqlite://", "sqlite:///"):
            raise ShardingError("a sharded log needs a file or server database, not :memory:")
        head, dot, ext = url.rpartition(".")
        if dot and "/" not in ext:
            return f"{head}.shard-{number}.{ext}"
        return f"{url}.shard-{number}"
    if url.startswith("postgresql"):
        sep = "&" if "?" in url else "?"
        return f"{url}{sep}options={quote(f'-csearch_path={PG_SCHEMA_PREFIX}{number}')}"
    raise ShardingError(f"cannot place shards of {url.split(':', 1)[0]} databases")


def _prepare_database(url: str, number: int) -> None:
    """Create the shard's PostgreSQL schema (SQLite files create themselves)."""
    if not url.startswith("postgresql") or "{shard}" in url:
        return
    engine = sa.create_engine(url)
    try:
        with engine.begin() as c:
            c.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{PG_SCHEMA_PREFIX}{number}"'))
    finally:
        engine.dispose()


@dataclass
class ShardLog:
    """One tracked shard: its schedule entry and the node app serving its log."""

    shard: Shard
    app: Flask

    @property
    def node(self) -> LedgerNode:
        n: LedgerNode = self.app.extensions[EXTENSION_KEY]
        return n


@dataclass(frozen=True)
class ShardHooks:
    """How joint operation follows the shards: a cosignature hook for a new shard's
    sequencer, and calls when its app is up and when it is closed."""

    hook_for: Callable[[Shard], CosignHook | None] = lambda shard: None
    opened: Callable[[Shard, Flask], None] = lambda shard, app: None
    closed: Callable[[Shard], None] = lambda shard: None


class ShardedNode:
    """The tracked shards of one region's log, opened, frozen and closed by the clock."""

    def __init__(
        self,
        config: NodeConfig,
        plan: ShardPlan,
        *,
        clock: Callable[[], float] = time.time,
        hooks: ShardHooks | None = None,
        margin_s: int = SHARD_CLOCK_MARGIN_S,
    ) -> None:
        if plan.schedule.base_origin != config.origin:
            raise ShardingError(
                f"the shard plan's base origin {plan.schedule.base_origin!r} is not "
                f"this node's origin {config.origin!r}"
            )
        shard_database_url(config.database_url, 0)  # refuse an unusable URL up front
        self.config = config
        self.plan = plan
        self.clock = clock
        self.hooks = hooks or ShardHooks()
        self.margin_s = margin_s
        self.shards: dict[int, ShardLog] = {}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------

    def ensure(self) -> None:
        """Bring the set of open shards in line with the plan at the clock's time."""
        now = int(self.clock())
        with self._lock:
            wanted = {s.number: s for s in self.plan.tracked(now, self.margin_s)}
            for number in sorted(set(self.shards) - set(wanted)):
                self._close(number)
            for number, shard in sorted(wanted.items()):
                if number not in self.shards:
                    self._open(shard)
            for sl in self.shards.values():
                if now >= sl.shard.end and not sl.node.sequencer.frozen:
                    sl.node.sequencer.freeze()

    def _open(self, shard: Shard) -> None:
        url = shard_database_url(self.config.database_url, shard.number)
        _prepare_database(self.config.database_url, shard.number)
        cfg = dataclasses.replace(
            self.config,
            origin=shard.origin,
            database_url=url,
            shard=shard,
            cosign_hook=self.hooks.hook_for(shard),
        )
        app = create_app(cfg, clock=self.clock)
        sl = ShardLog(shard, app)
        self.shards[shard.number] = sl
        self._seed_keys(sl)
        self.hooks.opened(shard, app)
        log.info("opened shard %s (expiries %d..%d)", shard.origin, shard.start, shard.end)

    def _seed_keys(self, new: ShardLog) -> None:
        """Copy the region's key entries into a new shard, so it validates alone (the
        root key's signatures do not name a log, ledger.log.entries)."""
        if new.node.sequencer.frozen or self.clock() >= new.shard.end:
            return
        donors = [
            sl for n, sl in sorted(self.shards.items(), reverse=True)
            if n != new.shard.number and sl.node.sequencer._key_entries
        ]  # fmt: skip
        if not donors:
            return
        keys = list(donors[0].node.sequencer._key_entries)
        have = new.node.store.find_indices([entry_hash(k) for k in keys])
        missing = [k for k in keys if entry_hash(k) not in have]
        if missing:
            new.node.sequencer.submit(missing)

    def _close(self, number: int) -> None:
        sl = self.shards.pop(number)
        self.hooks.closed(sl.shard)
        sl.node.sequencer.stop()
        sl.node.store.dispose()
        log.info("closed droppable shard %s; its database can be archived", sl.shard.origin)

    def start(self) -> None:
        self.ensure()

        def tick() -> None:
            while not self._stop.wait(SHARD_TICK_S):
                try:
                    self.ensure()
                except Exception:  # the ticker must survive a database outage
                    log.exception("shard lifecycle check failed")

        self._ticker = threading.Thread(target=tick, name="ledger-shards", daemon=True)
        self._ticker.start()

    def stop(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(5.0)
        with self._lock:
            for sl in self.shards.values():
                sl.node.sequencer.stop()
                sl.node.store.dispose()

    def get(self, number: int) -> ShardLog | None:
        with self._lock:
            return self.shards.get(number)

    def live(self) -> list[ShardLog]:
        with self._lock:
            return [self.shards[n] for n in sorted(self.shards)]

    # -- routing ---------------------------------------------------------------------

    def targets(
        self, raw: bytes, position: int, shards: list[ShardLog] | None = None
    ) -> list[ShardLog]:
        """The shard(s) an encoded entry goes to; ApiError when none can take it."""
        now = int(self.clock())
        shards = self.live() if shards is None else shards
        if is_key_entry(raw):
            return [sl for sl in shards if not sl.node.sequencer.frozen]
        fields = routing_fields(raw)
        if fields is not None and fields[2] is not None:
            return self._anchor_target(fields[2], position, shards, now)
        if fields is not None:
            return self._revocation_target(fields[1], position, shards)
        try:
            entry = decode_entry(raw)
        except LedgerError as e:
            raise ApiError(
                422, "rule_violation", f"entry {position} malformed: {e}",
                rule="malformed_entry", position=position,
            ) from e  # fmt: skip
        if isinstance(entry, AuditDigest):
            current = self.plan.schedule.shard_for(max(now, self.plan.schedule.epoch)).number
            sl = next((x for x in shards if x.shard.number == current), None)
            if sl is None or sl.node.sequencer.frozen:
                raise ApiError(503, "unavailable", "the current shard is not open")
            return [sl]
        raise _refused(position, f"no shard takes a {entry.type} entry")

    def _anchor_target(
        self, expires_at: int, position: int, shards: list[ShardLog], now: int
    ) -> list[ShardLog]:
        """An anchor goes to the shard of its expiry."""
        sch = self.plan.schedule
        if expires_at < sch.epoch:
            raise _refused(position, f"expiry {expires_at} precedes the shards")
        shard = sch.shard_for(expires_at)
        sl = next((x for x in shards if x.shard.number == shard.number), None)
        if (sl is None and shard.end <= now) or (sl is not None and sl.node.sequencer.frozen):
            raise ApiError(409, "shard_frozen", f"entry {position}: {shard.origin} is frozen")
        if sl is None:
            raise _refused(position, f"{shard.origin} is not open yet")
        return [sl]

    def _revocation_target(
        self, status_index: int, position: int, shards: list[ShardLog]
    ) -> list[ShardLog]:
        """A revocation or reinstatement goes to the shard that anchored its index."""
        for sl in shards:
            if status_index in sl.node.sequencer.log_state.anchored:
                if sl.node.sequencer.frozen:
                    raise ApiError(
                        409, "shard_frozen",
                        f"entry {position}: the credential's shard {sl.shard.origin} is "
                        "frozen (it has expired)",
                    )  # fmt: skip
                return [sl]
        raise ApiError(
            422, "rule_violation",
            f"entry {position}: status index {status_index} is anchored in no open shard",
            rule="not_anchored", position=position,
        )  # fmt: skip

    def submit(self, entries: list[bytes]) -> list[dict[str, Any]]:
        """Route and log `entries`; receipts in request order. Each shard's part is all
        or nothing, and the parts are sequenced at the same time (each shard has its own
        writer); a refusal of one part leaves the others logged (a resubmission is
        idempotent per shard), and the first refusal in shard order is answered."""
        per: dict[int, list[int]] = {}
        logs: dict[int, ShardLog] = {}
        first: dict[int, int] = {}
        shards = self.live()
        for pos, raw in enumerate(entries):
            for sl in self.targets(raw, pos, shards):
                per.setdefault(sl.shard.number, []).append(pos)
                logs[sl.shard.number] = sl
                first.setdefault(pos, sl.shard.number)
        results: dict[int, list[Receipt] | SequencerError] = {}

        def run(number: int) -> None:
            part = [entries[p] for p in per[number]]
            try:
                results[number] = logs[number].node.sequencer.submit(part)
            except SequencerError as e:
                results[number] = e

        numbers = sorted(per)
        threads = [threading.Thread(target=run, args=(k,)) for k in numbers[1:]]
        for t in threads:
            t.start()
        if numbers:
            run(numbers[0])
        for t in threads:
            t.join()
        receipts: dict[tuple[int, int], dict[str, Any]] = {}
        for number in numbers:
            positions, sl, got = per[number], logs[number], results[number]
            if isinstance(got, SubmissionRefusedError):
                e = got
                pos = positions[e.position] if 0 <= e.position < len(positions) else e.position
                raise ApiError(
                    422, "rule_violation", f"{sl.shard.origin}: {e}", rule=e.rule, position=pos
                ) from e
            if isinstance(got, ShardFrozenError):
                raise ApiError(409, "shard_frozen", str(got)) from got
            if isinstance(got, SequencerError):
                raise ApiError(503, "unavailable", str(got)) from got
            for p, r in zip(positions, got, strict=True):
                receipts[(p, number)] = {
                    "index": r.index, "entry_hash": r.entry_hash.hex(),
                    "shard": number, "origin": sl.shard.origin,
                }  # fmt: skip
        return [receipts[(p, first[p])] for p in range(len(entries))]

    def describe(self) -> list[dict[str, Any]]:
        now = int(self.clock())
        out = []
        for sl in self.live():
            cp = sl.node.store.latest_checkpoint()
            state = self.plan.state(sl.shard, now)
            out.append({
                "number": sl.shard.number, "origin": sl.shard.origin,
                "start": sl.shard.start, "end": sl.shard.end,
                "state": str(ShardState.FROZEN if sl.node.sequencer.frozen
                             and state is ShardState.OPEN else state),
                "frozen": sl.node.sequencer.frozen,
                "size": sl.node.sequencer.tree.size,
                "cosignatures": 0 if cp is None else len(cp.cosignatures),
            })  # fmt: skip
        return out


def _refused(position: int, message: str) -> ApiError:
    return ApiError(
        422, "rule_violation", f"entry {position}: {message}", rule="wrong_shard",
        position=position,
    )  # fmt: skip


def sharded() -> ShardedNode:
    s: ShardedNode = current_app.extensions[SHARDED_KEY]
    return s


top = Blueprint("ledger_sharded", __name__)


@top.post("/v1/entries")
def submit_entries() -> Any:
    body = request.get_data(cache=True)
    s = sharded()
    try:
        auth = WriterAuth.parse(request.headers.get("Authorization", ""))
        if auth.public_key not in s.config.writer_public_keys:
            raise WriterAuthError("the key is not a writer of this log")
        now = int(s.clock())
        if abs(now - auth.timestamp) > AUTH_WINDOW_S:
            raise WriterAuthError(
                f"expected a timestamp within {AUTH_WINDOW_S} s of {now}, found {auth.timestamp}"
            )
        auth.verify(s.config.origin, body)
    except WriterAuthError as e:
        # Counted and logged once as a security event, as an unsharded node does.
        metrics: LedgerMetrics | None = current_app.extensions.get(METRICS_KEY)
        if metrics is not None:
            metrics.writer_refusals.inc()
        security_event(log, SecurityEvent.WRITER_REFUSED, origin=s.config.origin, why=str(e))
        raise ApiError(401, "unauthorized", str(e)) from e
    receipts = s.submit(_parse_entries(body))
    return jsonify(receipts=receipts, size=None)


@top.get("/v1/shards")
def shards() -> Any:
    s = sharded()
    return jsonify(origin=s.config.origin, region=s.config.region, shards=s.describe())


@top.get("/v1/status")
def status() -> Any:
    s = sharded()
    return jsonify(
        region=s.config.region,
        origin=s.config.origin,
        sharded=True,
        period_s=s.plan.schedule.period_s,
        epoch=s.plan.schedule.epoch,
        root_public_key=base64.b64encode(s.config.root_public_key).decode("ascii"),
        shards=s.describe(),
    )


@top.get("/checkpoint")
def checkpoint() -> Any:
    raise ApiError(404, "not_found", "this log is sharded: read /<shard>/checkpoint (/v1/shards)")


class _Dispatcher:
    """WSGI: `/<k>/...` to shard k's app (after a lifecycle check), the rest to the top."""

    def __init__(self, top_app: Any, node: ShardedNode) -> None:
        self.top_app = top_app
        self.node = node

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        try:
            self.node.ensure()
        except Exception:  # a lifecycle failure must not take reads down with it
            log.exception("shard lifecycle check failed")
        path = environ.get("PATH_INFO", "")
        m = SHARD_PATH_RE.match(path)
        if m is not None:
            sl = self.node.get(int(m.group(1)))
            if sl is not None:
                environ = dict(environ)
                environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + f"/{m.group(1)}"
                environ["PATH_INFO"] = m.group(2) or "/"
                return sl.app.wsgi_app(environ, start_response)
        return self.top_app(environ, start_response)  # type: ignore[no-any-return]


def create_sharded_app(
    config: NodeConfig,
    plan: ShardPlan,
    extra_blueprints: Iterable[Blueprint] = (),
    *,
    clock: Callable[[], float] = time.time,
    hooks: ShardHooks | None = None,
    margin_s: int = SHARD_CLOCK_MARGIN_S,
    start: bool = True,
) -> Flask:
    """The node of a sharded region: its shards under `/<k>`, routing at the top."""
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.json.sort_keys = False  # type: ignore[attr-defined]
    node = ShardedNode(config, plan, clock=clock, hooks=hooks, margin_s=margin_s)
    app.extensions[SHARDED_KEY] = node
    # One scrape for the whole node: its own request histogram and counters, and every
    # tracked shard's metrics labelled shard="<k>" (ledger.metrics.ShardedCollector).
    metrics = LedgerMetrics.for_sharded(
        lambda: [(sl.shard.number, sl.app.extensions[METRICS_KEY]) for sl in node.live()]
    )
    app.extensions[METRICS_KEY] = metrics
    assert metrics.base is not None
    instrument(app, metrics.base)
    app.register_blueprint(health_blueprint(lambda: ()))
    app.register_blueprint(top)
    for bp in extra_blueprints:
        app.register_blueprint(bp)
    _register_errors(app)
    app.wsgi_app = _Dispatcher(app.wsgi_app, node)  # type: ignore[method-assign]
    if start:
        node.start()  # else the first request (or `node.start()`) opens the shards
    return app
