"""The issuer's Prometheus metrics and readiness checks (web service and anchor worker).

What it does: `IssuerStateCollector` reads the issuer's database at scrape time: the
anchoring outbox (rows waiting, age of the oldest), credentials issued by kind
(first issue through enrolment or conversion, and refreshes), credentials revoked,
and whether the database answered. Counting from the database keeps the numbers right
across gunicorn workers, restarts and the separate anchor-worker process; it costs a
few indexed aggregate queries per scrape. `issuer_registry(ctx)` is one registry with
that collector; `readiness_checks(ctx)` says whether the database answers and the
active signing key is readable. Request latency comes from
ledger.observability.instrument. Labels are kinds and channels, never a person's data.

`start_master_ops()` is the gunicorn master's listener (issuer/gunicorn_conf.py):
the database-derived gauges plus every worker's request histogram through
prometheus_client's multiprocess collector. What it does not: serve the public API.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError

from issuer.context import IssuerContext
from issuer.models import CredentialRow, Holder, OutboxRow, SigningKeyRow
from ledger.observability import NotReadyError, ReadinessCheck, start_ops_server

log = logging.getLogger(__name__)

METRICS_KEY = "issuer.metrics"  # app.extensions key: the app's CollectorRegistry
CHECKS_KEY = "issuer.readiness"
METRICS_PORT_ENV = "HB_ISSUER_METRICS_PORT"  # the gunicorn master's metrics listener
METRICS_HOST_ENV = "HB_ISSUER_METRICS_HOST"


@dataclass(frozen=True)
class IssuanceCounts:
    """Credentials issued since the database began, by kind, and revoked."""

    enrolment: int
    conversion: int
    refresh: int
    revoked: int


def issuance_counts(ctx: IssuerContext) -> IssuanceCounts:
    """A holder's first credential counts for the channel it came through (enrolment or
    conversion); every later one for that holder is a refresh (re-issue)."""
    with ctx.read_session() as s:
        rows = s.execute(
            select(
                Holder.via,
                func.count(CredentialRow.id),
                func.count(func.distinct(CredentialRow.holder_pk)),
            )
            .join(Holder, Holder.id == CredentialRow.holder_pk)
            .group_by(Holder.via)
        ).all()
        revoked = s.scalar(select(func.count()).where(CredentialRow.revoked_at.is_not(None)))
    first = {via: int(holders) for via, _, holders in rows}
    refresh = sum(int(total) - int(holders) for _, total, holders in rows)
    return IssuanceCounts(
        first.get("enrolment", 0), first.get("conversion", 0), refresh, int(revoked or 0)
    )


def outbox_lag(ctx: IssuerContext) -> tuple[int, int | None]:
    """(rows waiting for the log, age in seconds of the oldest one or None)."""
    with ctx.read_session() as s:
        count, oldest = s.execute(
            select(func.count(), func.min(OutboxRow.created_at)).where(
                OutboxRow.log_index.is_(None)
            )
        ).one()
    return int(count), None if oldest is None else max(0, ctx.now() - int(oldest))


@dataclass(eq=False)  # registries key collectors by identity
class IssuerStateCollector(Collector):
    ctx: IssuerContext

    def collect(self) -> Iterator[Metric]:
        region = self.ctx.region
        up = GaugeMetricFamily(
            "healthbridge_issuer_database_up",
            "1 when the issuer's database answered this scrape.",
            labels=["region"],
        )
        try:
            depth, oldest = outbox_lag(self.ctx)
            counts = issuance_counts(self.ctx)
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
