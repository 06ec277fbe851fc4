"""The anchor worker: drains the outbox onto the region's log.

Rows are read in id order, submitted in batches through a `LedgerPort`, and marked
with the log index the node returned. Submission is idempotent on the node (identical
entry bytes get their existing index), so a crash between the submit and the update
only means the batch is sent again: every row ends up in the log exactly once.
The node refuses a whole submission when one entry breaks a ledger rule and names its
position: that row is quarantined (kept, named in the console's ledger page, the status
API and an ALARM log line, never sent again) and the rest of the batch is re-sent at
once. Other failures (node down, timeouts) back off exponentially with jitter, capped at
`anchor_max_backoff_s`; rows are always sent in outbox order (head of line), so an entry
never reaches the log before one written earlier (a revocation before its anchor).
The worker runs as a thread in the service or alone (`healthbridge issuer anchor-worker`).

A sharded log (ledger.log.shards): each row names its shard (issuer.sharding); a batch
is the leading run of rows of one shard, sent to that shard's own endpoint
(`<node>/<k>/v1/entries`) when the port can (`submit_to_shard`), else to the node's
routing endpoint. A shard that froze before its row was anchored (the credential has
expired by then) refuses it for good: such rows are quarantined like rule refusals.
"""

from __future__ import annotations

import itertools
import logging
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Select, and_, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from common.observability import request_id_scope
from issuer.context import IssuerContext
from issuer.errors import ConfigError
from issuer.models import OutboxRow
from ledger.clients.client import LedgerClient

log = logging.getLogger(__name__)
BACKOFF_BASE_S = 0.25  # seconds before the first retry; doubles per failed attempt
# Each delay is drawn from [JITTER_FLOOR * d, d]: rows that failed together (a node
# outage) do not all come back in one burst.
JITTER_FLOOR = 0.5
MAX_LISTED_QUARANTINED = 100  # rows named by the status API and the console
_jitter = random.Random()


class EntryRefusedError(Exception):
    """The ledger refused the entry at `position` of a submission (it breaks `rule`);
    nothing of that submission was logged."""

    def __init__(self, position: int, rule: str, message: str) -> None:
        super().__init__(message)
        self.position = position
        self.rule = rule


class LedgerPort(Protocol):
    """What the worker needs from a ledger node: submit entries, get their indices.
    A rule refusal naming the entry raises `EntryRefusedError`; anything else is a
    transient failure."""

    def submit(self, entries: list[bytes]) -> list[int]: ...


class ShardLedgerPort(LedgerPort, Protocol):
    """A port that can also send straight to one temporal shard of the log."""

    def submit_to_shard(self, shard: int, entries: list[bytes]) -> list[int]: ...


@dataclass(frozen=True)
class QuarantinedRow:
    """An outbox row the ledger refused; `ref` is a status index or key id (no
    personal data)."""

    id: int
    kind: str
    ref: str
    error: str
    quarantined_at: int


@dataclass
class InMemoryLedger:
    """A LedgerPort for tests: an append-only list that dedupes identical entries."""

    entries: list[bytes] = field(default_factory=list)
    index: dict[bytes, int] = field(default_factory=dict)
    fail_next: int = 0
    refuse: set[bytes] = field(default_factory=set)  # entries that "break a rule"

    def submit(self, entries: list[bytes]) -> list[int]:
        if self.fail_next > 0:
            self.fail_next -= 1
            raise ConnectionError("ledger unavailable (injected)")
        for pos, e in enumerate(entries):
            if e in self.refuse:
                raise EntryRefusedError(pos, "injected_rule", f"entry {pos} refused (injected)")
        out = []
        for e in entries:
            if e not in self.index:
                self.index[e] = len(self.entries)
                self.entries.append(e)
            out.append(self.index[e])
        return out


class ClientLedgerPort:
    """A LedgerPort over ledger.clients.client.LedgerClient (real HTTP to the region's node)."""

    def __init__(self, base_url: str, writer_key: Ed25519PrivateKey | Path, timeout: float) -> None:
        self.client = LedgerClient(base_url, writer_key, timeout)
        self._shards: dict[int, LedgerClient] = {}

    def submit(self, entries: list[bytes]) -> list[int]:
        return self._submit(self.client, entries)

    def submit_to_shard(self, shard: int, entries: list[bytes]) -> list[int]:
        """Send to shard `shard`'s own log (`<node>/<shard>`, writer auth over its origin)."""
        client = self._shards.get(shard)
        if client is None:
            client = LedgerClient(f"{self.client.base_url}/{shard}", self.client.key,
                                  self.client.timeout)  # fmt: skip
            self._shards[shard] = client
        return self._submit(client, entries)

    @staticmethod
    def _submit(client: LedgerClient, entries: list[bytes]) -> list[int]:
        from ledger.clients.client import LedgerRefusedError, LedgerResponseError

        try:
            return [r.index for r in client.submit(entries)]
        except LedgerRefusedError as e:
            position = e.body.get("position")
            if isinstance(position, int) and not isinstance(position, bool):
                raise EntryRefusedError(position, e.rule, str(e)) from e
            raise
        except LedgerResponseError as e:
            if e.status == 409 and e.code == "shard_frozen":
                # The shard never grows again: the first row is set aside, the rest of
                # the run is re-sent and refused in turn.
                raise EntryRefusedError(0, "shard_frozen", str(e)) from e
            raise


def ledger_port_for(ctx: IssuerContext) -> LedgerPort:
    if not ctx.config.ledger_url:
        raise ConfigError("ledger_url is not configured: the outbox cannot be anchored")
    return ClientLedgerPort(
        ctx.config.ledger_url, ctx.keys.writer_key(), ctx.config.ledger_timeout_s
    )


_PENDING = (OutboxRow.log_index.is_(None), OutboxRow.quarantined_at.is_(None))


def pending_count(ctx: IssuerContext) -> int:
    """Rows still to anchor (quarantined rows excluded: they will never be sent)."""
    with ctx.sessions() as s:
        return int(s.scalar(select(func.count()).where(*_PENDING)) or 0)


def quarantined(ctx: IssuerContext, limit: int = MAX_LISTED_QUARANTINED) -> list[QuarantinedRow]:
    """The newest quarantined rows, newest first."""
    with ctx.sessions() as s:
        rows = s.execute(
            select(OutboxRow.id, OutboxRow.kind, OutboxRow.ref, OutboxRow.last_error,
                   OutboxRow.quarantined_at)
            .where(OutboxRow.quarantined_at.is_not(None))
            .order_by(OutboxRow.id.desc())
            .limit(limit)
        ).all()  # fmt: skip
    return [QuarantinedRow(r.id, r.kind, r.ref, r.last_error or "", r.quarantined_at) for r in rows]


def quarantined_count(ctx: IssuerContext) -> int:
    with ctx.sessions() as s:
        return int(s.scalar(select(func.count()).where(OutboxRow.quarantined_at.is_not(None))) or 0)


def _backoff(ctx: IssuerContext, attempts: int) -> float:
    delay = min(ctx.config.anchor_max_backoff_s, BACKOFF_BASE_S * 2 ** min(attempts, 32))
    return delay * _jitter.uniform(JITTER_FLOOR, 1.0)


# Outbox kinds whose order on the log matters. A key entry is a barrier: credentials
# signed by a new key may only follow its registration. Entries of one credential (one
# status index as `ref`) keep their order: revoked needs anchored, reinstated needs
# revoked (ledger.log.rules NOT_ANCHORED / NOT_REVOKED).
BARRIER_KINDS = ("key_added", "key_revoked")
CREDENTIAL_KINDS = ("credential_anchored", "credential_revoked", "credential_reinstated")
_barrier, _pending, _earlier = aliased(OutboxRow), aliased(OutboxRow), aliased(OutboxRow)
_NO_BARRIER = 2**62  # above any outbox id: no key entry pending
# With several workers each holding a batch, no entry may overtake one it depends on.
# Written so that PostgreSQL evaluates each part cheaply however long the backlog (a
# single NOT EXISTS over "earlier pending rows, key kinds OR same ref" was planned as
# a nested-loop anti-join over every pending row: quadratic in a backlog). Quarantined
# rows are never sent again, so they hold nothing back.
# 1. Key entries are barriers: rows before the first pending key entry are claimable,
#    and the key entry itself only once it is the first pending row (two scalar
#    subqueries, evaluated once per claim, from the (kind, ref) and pending indexes).
_BARRIERS_KEPT = or_(
    OutboxRow.id
    < func.coalesce(
        select(func.min(_barrier.id))
        .where(
            _barrier.kind.in_(BARRIER_KINDS),
            _barrier.log_index.is_(None),
            _barrier.quarantined_at.is_(None),
        )
        .scalar_subquery(),
        _NO_BARRIER,
    ),
    OutboxRow.id
    == select(func.min(_pending.id))
    .where(_pending.log_index.is_(None), _pending.quarantined_at.is_(None))
    .scalar_subquery(),
)
# 2. A revocation or reinstatement waits for every earlier pending entry of its status
#    index (an index probe on (kind, ref) per such row; anchors are always first).
_REF_ORDER_KEPT = or_(
    OutboxRow.kind.not_in(("credential_revoked", "credential_reinstated")),
    ~select(_earlier.id)
    .where(
        _earlier.kind.in_(CREDENTIAL_KINDS),
        _earlier.ref == OutboxRow.ref,
        _earlier.id < OutboxRow.id,
        _earlier.log_index.is_(None),
        _earlier.quarantined_at.is_(None),
    )
    .exists(),
)
_IN_ORDER = and_(_BARRIERS_KEPT, _REF_ORDER_KEPT)


def _pending_in_order(ctx: IssuerContext) -> Select[int, bytes, int, float, int | None]:
    return (
        select(
            OutboxRow.id,
            OutboxRow.entry,
            OutboxRow.attempts,
            OutboxRow.next_attempt_at,
            OutboxRow.shard,
        )
        .where(*_PENDING)
        .order_by(OutboxRow.id)
        .limit(ctx.config.anchor_batch)
    )


def uses_row_locks(ctx: IssuerContext) -> bool:
    """Whether workers claim outbox rows with row locks (PostgreSQL). SQLite has one
    writer at a time and no row locks: one worker per database there."""
    return not ctx.config.database_url.startswith("sqlite")


def _submit(ledger: LedgerPort, rows: Sequence[Any]) -> list[int]:
    shard = rows[0].shard
    to_shard = getattr(ledger, "submit_to_shard", None)
    if shard is not None and to_shard is not None:
        indices = to_shard(shard, [r.entry for r in rows])
    else:
        indices = ledger.submit([r.entry for r in rows])
    if len(indices) != len(rows):
        raise ValueError(f"expected {len(rows)} receipts, found {len(indices)}")
    return indices


def _record_failure(
    ctx: IssuerContext, s: Session, rows: Sequence[Any], e: Exception, now: float
) -> None:
    log.warning("anchoring %d outbox rows failed: %s", len(rows), type(e).__name__)
    for r in rows:
        s.execute(
            update(OutboxRow)
            .where(OutboxRow.id == r.id)
            .values(
                attempts=r.attempts + 1,
                next_attempt_at=now + _backoff(ctx, r.attempts),
                last_error=f"{type(e).__name__}: {e}"[:500],
            )
        )


def _record_indices(s: Session, rows: Sequence[Any], indices: list[int]) -> None:
    # One executemany for the batch (ORM bulk UPDATE by primary key): the indices of a
    # whole submission are committed together, or not at all and the batch is re-sent.
    s.execute(
        update(OutboxRow),
        [
            {"id": r.id, "log_index": index, "last_error": None}
            for r, index in zip(rows, indices, strict=True)
        ],
    )


def _quarantine(s: Session, row_id: int, e: EntryRefusedError, now: float) -> None:
    row = s.get_one(OutboxRow, row_id)
    row.quarantined_at = int(now)
    row.attempts += 1
    row.last_error = f"refused by the ledger ({e.rule}): {e}"[:500]
    log.error(
        "ALARM: the ledger refused outbox row %d (%s %s, rule %s); quarantined, the rest "
        "of the outbox goes on", row_id, row.kind, row.ref, e.rule,
    )  # fmt: skip


def _send(
    ctx: IssuerContext, ledger: LedgerPort, rows: list[Any], now: float, s: Session | None
) -> int:
    """Submit `rows` in order: a refused entry is quarantined and the rest re-sent at
    once; any other failure is recorded on every row (jittered backoff). Returns how
    many were anchored. Outcomes are written in `s` (the claiming transaction, which
    holds the row locks) or, without one, each in a short transaction of its own, so
    SQLite's single writer is never held across a network call."""

    def write(fn: Callable[[Session], None]) -> None:
        if s is not None:
            fn(s)
        else:
            with ctx.sessions.begin() as own:
                fn(own)

    # One shard per submission: the leading run of rows bound for the first row's shard
    # (rows keep outbox order; the rest waits for the next round).
    if not rows:
        return 0
    first = rows[0].shard
    rows = list(itertools.takewhile(lambda r: r.shard == first, rows))
    # The batch's own correlation id: its log lines here and the node's access log
    # name the same id (sent as X-Request-ID by the ledger client).
    with request_id_scope(outbox_correlation_id(rows)):
        return _send_in_order(ctx, ledger, rows, now, write)


def outbox_correlation_id(rows: Sequence[Any]) -> str:
    """`outbox-<first id>-<last id>` of a batch of outbox rows (ids, nothing personal)."""
    return f"outbox-{rows[0].id}-{rows[-1].id}"


def _send_in_order(
    ctx: IssuerContext,
    ledger: LedgerPort,
    rows: list[Any],
    now: float,
    write: Callable[[Callable[[Session], None]], None],
) -> int:
    while rows:
        try:
            indices = _submit(ledger, rows)
        except EntryRefusedError as e:
            if not 0 <= e.position < len(rows):
                write(lambda t, e=e: _record_failure(ctx, t, rows, e, now))
                return 0
            refused = rows.pop(e.position).id
            write(lambda t, e=e, refused=refused: _quarantine(t, refused, e, now))
            continue
        except Exception as e:  # any failure of the edge: retry later, never lose a row
            write(lambda t, e=e: _record_failure(ctx, t, rows, e, now))
            return 0
        write(lambda t, got=indices: _record_indices(t, rows, got))
        log.debug("anchored outbox rows %d..%d", rows[0].id, rows[-1].id)
        return len(rows)
    return 0


def anchor_once(ctx: IssuerContext, ledger: LedgerPort, now: float | None = None) -> int:
    """Submit one batch of due outbox rows; return how many were anchored (0: idle or
    failed, the failure recorded on the rows with their next attempt time). A row the
    ledger refuses is quarantined and the rest of the batch is submitted again."""
    now = ctx.clock.now() if now is None else now
    if uses_row_locks(ctx):
        return _anchor_claimed(ctx, ledger, now)
    with ctx.sessions() as s:
        rows = list(s.execute(_pending_in_order(ctx)).all())
    # Head of line: rows go to the log in the order they were written (a revocation
    # after the anchor it revokes), so nothing is sent while the oldest pending row is
    # still backing off; rows written after a failure wait behind it.
    if not rows or rows[0].next_attempt_at > now:
        return 0
    return _send(ctx, ledger, rows, now, None)


def _anchor_claimed(ctx: IssuerContext, ledger: LedgerPort, now: float) -> int:
    """Several workers (threads, processes, hosts) on one PostgreSQL database: each
    claims a batch with `FOR UPDATE SKIP LOCKED`, so no two hold the same row, and
    keeps the row locks until the indices (or the failure, or a quarantine) are
    committed. Order is kept by `_IN_ORDER` (no entry claimable before one it depends
    on). A worker killed mid-batch loses its connection, PostgreSQL rolls its
    transaction back and releases the rows to the others; the node dedupes a re-sent
    entry, so each is on the log exactly once."""
    with ctx.sessions.begin() as s:
        claim = (
            _pending_in_order(ctx)
            .where(OutboxRow.next_attempt_at <= now, _IN_ORDER)
            .with_for_update(skip_locked=True)
        )
        rows = list(s.execute(claim).all())
        if not rows:
            return 0
        return _send(ctx, ledger, rows, now, s)


def drain(ctx: IssuerContext, ledger: LedgerPort, max_rounds: int = 1000) -> int:
    """Anchor until nothing is due (tests, CLI); returns the number anchored."""
    total = 0
    for _ in range(max_rounds):
        n = anchor_once(ctx, ledger)
        if n == 0:
            break
        total += n
    return total


class AnchorWorker:
    """A daemon thread running `anchor_once` until stopped."""

    def __init__(self, ctx: IssuerContext, ledger: LedgerPort) -> None:
        self.ctx, self.ledger = ctx, ledger
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="anchor-worker", daemon=True)

    def start(self) -> AnchorWorker:
        self._thread.start()
        return self

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                n = anchor_once(self.ctx, self.ledger)
            except Exception:  # the database itself failed; keep the thread alive
                log.exception("anchor worker round failed")
                n = 0
            if n == 0:
                self._wake.wait(self.ctx.config.anchor_interval_s)
                self._wake.clear()
