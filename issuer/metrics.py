"""The issuer's Prometheus metrics and readiness checks (web service and anchor worker).

What it does: `IssuerStateCollector` reads the issuer's database at scrape time: the
anchoring outbox (rows waiting, age of the oldest), credentials issued by kind
(first issue through enrolment or conversion, and refreshes), credentials revoked,
and whether the database answered. The issuance counters come from the exact hourly
counts that every issuance and revocation writes in its own transaction
(issuer.activity), so they hold what committed, in whatever order it committed, on
SQLite and PostgreSQL alike; a scrape reads a bounded number of those small rows
whatever the size of the tables (`IssuanceTally`, bench/metrics.py).
`issuer_registry(ctx)` is one registry with that collector; `readiness_checks(ctx)`
says whether the database answers and the active signing key is readable. Request
latency comes from common.observability.instrument. Labels are kinds and channels,
never a person's data.

`issuance_counts` counts the same figures from the rows themselves (the credentials
and outbox tables): a reference for tests and for the benchmark, never run by a scrape.

`start_master_ops()` is the gunicorn master's listener (issuer/gunicorn_conf.py):
the database-derived gauges plus every worker's request histogram through
prometheus_client's multiprocess collector. What it does not: serve the public API.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import exists, func, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import aliased

from common.observability import NotReadyError, ReadinessCheck, start_ops_server
from issuer import activity
from issuer.context import IssuerContext
from issuer.models import CredentialRow, Holder, OutboxRow, SigningKeyRow

log = logging.getLogger(__name__)

METRICS_KEY = "issuer.metrics"  # app.extensions key: the app's CollectorRegistry
CHECKS_KEY = "issuer.readiness"
METRICS_PORT_ENV = "HB_ISSUER_METRICS_PORT"  # the gunicorn master's metrics listener
METRICS_HOST_ENV = "HB_ISSUER_METRICS_HOST"
REVOKED_KIND = "credential_revoked"  # issuer.issuance.revoke_credential_row's outbox kind
# How long after the time stamped on its rows (its `now`) a transaction may commit and
# still be counted: the hours that recent are read again on every scrape. A commit
# later than that is left out of the counters of the processes already running (the
# console's overview, which reads the hourly counts themselves, still shows it).
# Nothing in the issuer holds a transaction open for long: group commits wait at most
# issuer.group_commit.WAIT_S, SQLite writers issuer.db.SQLITE_BUSY_TIMEOUT_S.
LATE_COMMIT_S = 24 * activity.HOUR_S  # seconds


@dataclass(frozen=True)
class IssuanceTotals:
    """The issuance counters: credentials issued by kind, and revoked."""

    enrolment: int
    conversion: int
    refresh: int
    revoked: int


@dataclass(frozen=True)
class IssuanceCounts:
    """Credentials issued by kind and revoked, in rows after the given ids."""

    enrolment: int
    conversion: int
    refresh: int
    revoked: int
    last_credential_id: int  # the newest row counted (the next call starts after it)
    last_outbox_id: int


def newest_ids(ctx: IssuerContext) -> tuple[int, int]:
    """(newest credential row id, newest outbox row id): primary-key lookups."""
    with ctx.read_session() as s:
        c = s.scalar(select(func.max(CredentialRow.id)))
        o = s.scalar(select(func.max(OutboxRow.id)))
    return int(c or 0), int(o or 0)


def issuance_counts(
    ctx: IssuerContext, after_credential_id: int = 0, after_outbox_id: int = 0
) -> IssuanceCounts:
    """Count the rows added after the given ids (a primary-key range: the cost follows
    what was issued since the last call, not the size of the tables). A holder's first
    credential counts for the channel it came through (enrolment or conversion); each
    later one for that holder is a refresh. Revocations are the outbox's
    `credential_revoked` rows. A reference count from the rows (tests, bench/metrics.py):
    used with `after_*` ids from an earlier call it would miss, on PostgreSQL, a row
    committed late behind a newer one, which is why the collector reads the hourly
    counts instead (IssuanceTally)."""
    earlier = aliased(CredentialRow)
    again = (
        exists()
        .where(earlier.holder_pk == CredentialRow.holder_pk, earlier.id < CredentialRow.id)
        .label("again")
    )
    tail = (
        select(CredentialRow.id, Holder.via, again)
        .join(Holder, Holder.id == CredentialRow.holder_pk)
        .where(CredentialRow.id > after_credential_id)
        .subquery()
    )
    with ctx.read_session() as s:
        rows = s.execute(
            select(tail.c.via, tail.c.again, func.count(), func.max(tail.c.id)).group_by(
                tail.c.via, tail.c.again
            )
        ).all()
        revoked, last_box = s.execute(
            select(
                func.count().filter(OutboxRow.kind == REVOKED_KIND), func.max(OutboxRow.id)
            ).where(OutboxRow.id > after_outbox_id)
        ).one()
    first = {"enrolment": 0, "conversion": 0}
    refresh = 0
    last = after_credential_id
    for via, was_again, count, newest in rows:
        if was_again:
            refresh += int(count)
        elif via in first:
            first[via] += int(count)
        last = max(last, int(newest))
    return IssuanceCounts(
        first["enrolment"],
        first["conversion"],
        refresh,
        int(revoked or 0),
        last,
        max(after_outbox_id, int(last_box or 0)),
    )


def outbox_lag(ctx: IssuerContext) -> tuple[int, int | None]:
    """(rows waiting for the log, age in seconds of the oldest one or None).
    Quarantined rows (refused by the ledger, never sent again) are not waiting: they
    are counted by `outbox_quarantined` and raise their own alert."""
    with ctx.read_session() as s:
        count, oldest = s.execute(
            select(func.count(), func.min(OutboxRow.created_at)).where(
                OutboxRow.log_index.is_(None), OutboxRow.quarantined_at.is_(None)
            )
        ).one()
    return int(count), None if oldest is None else max(0, ctx.now() - int(oldest))


def outbox_quarantined(ctx: IssuerContext) -> int:
    """Outbox rows the ledger refused and the worker set aside (issuer.anchor)."""
    with ctx.read_session() as s:
        return int(s.scalar(select(func.count()).where(OutboxRow.quarantined_at.is_not(None))) or 0)


class IssuanceTally:
    """Running totals of the issuance counters, from the hourly counts (issuer.activity).

    Why not the rows above the highest id seen: on PostgreSQL an id is taken when a
    row is inserted, not when it commits; with issuer replicas and group commits a
    transaction holding id 100 can commit after the one holding id 101 was counted,
    and a scrape in between moves past 100 for good. The hourly counts are written in
    the transaction of the rows they count, so each (hour, kind) sum only ever grows
    by what committed, whatever the order.

    How: each kind's total is (the sums of the closed hours, cached) + (the sums of the
    recent hours, read again on every scrape) - (the sums at the first scrape, so the
    counters start at 0 when the process starts counting, as Prometheus expects of a
    counter). An hour is closed once it ended more than `late_s` before the scrape: a
    commit within `late_s` of the time stamped on its rows is always counted, one
    stamped in a closed hour is not (LATE_COMMIT_S). A scrape reads at
    most (late_s / 1 h + 1) hours x 4 kinds x activity.SLOTS rows of the table's
    primary key, whatever the volume issued. Refreshes are the anchored credentials
    that are not a holder's first (issuer.issuance.issue_first_credential).

    A pure accumulator: `update` takes the rows read and the scrape's time."""

    def __init__(self, late_s: int = LATE_COMMIT_S) -> None:
        self.late_s = late_s
        self.open_from: int | None = None  # first hour read again on each scrape
        self._closed: Counter[str] = Counter()  # sums of hours [start, open_from)
        self._base: Counter[str] | None = None  # sums at the first scrape

    def horizon(self, now: int) -> int:
        """The first hour that a scrape at `now` must read."""
        return self.open_from if self.open_from is not None else self._opening(now)

    def _opening(self, now: int) -> int:
        return activity.hour_of(now - self.late_s)

    def update(self, now: int, rows: Iterable[tuple[int, str, int]]) -> IssuanceTotals:
        """Totals after a scrape at `now` that read `rows` (hour, kind, count) for
        every hour from `horizon(now)` on."""
        start = self.horizon(now)
        closing = max(start, self._opening(now))  # never moves back (clock skew)
        recent: Counter[str] = Counter()
        for hour, kind, n in rows:
            if hour < start:
                continue
            (self._closed if hour < closing else recent)[kind] += n
        self.open_from = closing
        total = self._closed + recent
        if self._base is None:
            self._base = total.copy()
        d = {k: total[k] - self._base[k] for k in activity.COUNTED_KINDS}
        enrolment = d[activity.FIRST_ENROLMENT_KIND]
        conversion = d[activity.FIRST_CONVERSION_KIND]
        refresh = d[activity.ISSUED_KIND] - enrolment - conversion
        return IssuanceTotals(enrolment, conversion, refresh, d[activity.REVOKED_KIND])


@dataclass(eq=False)  # registries key collectors by identity
class IssuerStateCollector(Collector):
    """The outbox figures are read on every scrape (indexed, cheap). The issuance
    counters are this process's running totals since its first scrape (IssuanceTally,
    read from issuer.activity's hourly counts): a scrape reads at most 25 x 4 x 16 small
    rows of those, whatever the size of the tables. Prometheus reads a restart as a counter
    reset (rate() and increase() handle it)."""

    ctx: IssuerContext
    _tally: IssuanceTally = field(default_factory=IssuanceTally)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _issuance(self) -> IssuanceTotals:
        with self._lock:
            now = self.ctx.now()
            with self.ctx.read_session() as s:
                rows = activity.counts_since(s, self._tally.horizon(now))
            return self._tally.update(now, rows)

    def collect(self) -> Iterator[Metric]:
        region = self.ctx.region
        up = GaugeMetricFamily(
            "healthbridge_issuer_database_up",
            "1 when the issuer's database answered this scrape.",
            labels=["region"],
        )
        try:
            depth, oldest = outbox_lag(self.ctx)
            quarantined = outbox_quarantined(self.ctx)
            counts = self._issuance()
        except SQLAlchemyError as e:
            log.warning("metrics: the issuer database did not answer: %s", type(e).__name__)
            up.add_metric([region], 0)
            yield up
            return
        up.add_metric([region], 1)
        yield up
        g = GaugeMetricFamily(
            "healthbridge_outbox_depth", "Outbox rows not yet on the log.", labels=["region"]
        )
        g.add_metric([region], depth)
        yield g
        g = GaugeMetricFamily(
            "healthbridge_outbox_oldest_age_seconds",
            "Age of the oldest outbox row not yet on the log (0 when empty).",
            labels=["region"],
        )
        g.add_metric([region], oldest or 0)
        yield g
        g = GaugeMetricFamily(
            "healthbridge_outbox_quarantined",
            "Outbox rows the ledger refused (a rule broken); set aside, never re-sent.",
            labels=["region"],
        )
        g.add_metric([region], quarantined)
        yield g
        c = CounterMetricFamily(
            "healthbridge_credentials_issued",
            "Credentials issued: a holder's first through enrolment or conversion, then refreshes.",
            labels=["region", "kind"],
        )
        for kind in ("enrolment", "conversion", "refresh"):
            c.add_metric([region, kind], getattr(counts, kind))
        yield c
        c = CounterMetricFamily(
            "healthbridge_credentials_revoked", "Credentials revoked.", labels=["region"]
        )
        c.add_metric([region], counts.revoked)
        yield c


def issuer_registry(ctx: IssuerContext) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(IssuerStateCollector(ctx))
    return registry


def readiness_checks(ctx: IssuerContext) -> list[ReadinessCheck]:
    def database() -> None:
        try:
            with ctx.sessions() as s:
                s.execute(text("SELECT 1"))
        except SQLAlchemyError as e:
            raise NotReadyError("the issuer database does not answer") from e

    def signing_key() -> None:
        try:
            with ctx.read_session() as s:
                kid = s.scalar(
                    select(SigningKeyRow.kid)
                    .where(SigningKeyRow.state == "active")
                    .order_by(SigningKeyRow.created_at.desc())
                )
        except SQLAlchemyError as e:
            raise NotReadyError("the issuer database does not answer") from e
        if kid is None:
            raise NotReadyError("no active signing key is registered")
        try:
            ctx.keys.signing_key(kid)
        except Exception as e:  # a missing or unreadable key file, whatever the cause
            raise NotReadyError("the active signing key cannot be read") from e

    return [ReadinessCheck("database", database), ReadinessCheck("signing_key", signing_key)]


def start_master_ops() -> None:
    """In the gunicorn master: one listener for the whole issuer (every worker's request
    histograms merged by prometheus_client's multiprocess collector)."""
    port = os.environ.get(METRICS_PORT_ENV)
    if not port:
        return
    from pathlib import Path

    from prometheus_client import multiprocess

    from issuer.config import load_config

    path = os.environ.get("HB_ISSUER_CONFIG")
    ctx = IssuerContext.open(load_config(Path(path) if path else None), run_migrations=False)
    registry = issuer_registry(ctx)
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    checks = readiness_checks(ctx)
    start_ops_server(
        registry, lambda: checks, os.environ.get(METRICS_HOST_ENV, "127.0.0.1"), int(port)
    )
