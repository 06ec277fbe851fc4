"""What a Prometheus scrape and the console's overview cost an issuer with big tables.

Fills a fresh SQLite issuer database with N holders, N credentials issued evenly over
the last two days with their outbox rows (1 % revoked, with their revocation rows),
each batch adding its hourly counts in its own transaction as the issuer's writers do
(issuer.activity), then fills every slot of every hour the collector re-reads (the
most rows a scrape can meet), and times the queries. Prints one JSON object on the
last line:
  rows                     credentials in the table
  count_from_scratch_ms    issuance counts over the whole tables (what a scrape would
                           cost without the running totals; the collector never does it)
  scrape_ms                one /metrics rendering after 1 000 new credentials (the
                           collector re-reads the hourly counts of the last day)
  scrape_counted           the enrolments that scrape counted (must be 1 000)
  scrape_activity_rows     hourly-count rows in the hours a scrape re-reads
  outbox_lag_ms            outbox depth and oldest age (every scrape)
  hourly_activity_ms       the overview's 24 hourly buckets (issuer.activity's running
                           counts, rebuilt from the bulk-loaded outbox before timing)
  recount_ms               rebuilding those counts from the last day's outbox rows (what
                           every overview view cost before the running counts)
Usage: .venv/bin/python bench/metrics.py [--n 100000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prometheus_client import generate_latest
from sqlalchemy import func, insert, select

from issuer import activity
from issuer.admin.overview import HOUR_S, hourly_activity
from issuer.config import IssuerConfig
from issuer.context import IssuerContext
from issuer.metrics import LATE_COMMIT_S, issuance_counts, issuer_registry, outbox_lag
from issuer.models import ActivityHourRow, CredentialRow, Holder, OutboxRow

BATCH = 10_000  # rows per executemany


def fill(ctx: IssuerContext, n: int, now: int, first: int = 1, span: int = 2 * 86_400) -> None:
    """Credentials `first`..`first + n - 1`, issued in id order over the `span` seconds
    before `now` (0: all at `now`)."""

    def at(i: int) -> int:
        return now - span + ((i - first) * span) // n

    for start in range(first, first + n, BATCH):
        ids = range(start, min(first + n, start + BATCH))
        with ctx.sessions.begin() as s:
            s.execute(
                insert(Holder),
                [{"id": i, "holder_id": f"h{i}", "device_key": b"k", "via": "enrolment",
                  "created_at": at(i)} for i in ids],
            )  # fmt: skip
            s.execute(
                insert(CredentialRow),
                [
                    {
                        "id": i, "credential_id": f"c{i}", "status_index": i, "holder_pk": i,
                        "kid": "k", "colour": "green", "basis": "vaccination", "rule": "r",
                        "issued_at": at(i), "expires_at": now + 86_400,
                        "digest": i.to_bytes(8, "big"), "jws": "x",
                        "state": "revoked" if i % 100 == 0 else "active",
                        "revoked_at": at(i) if i % 100 == 0 else None,
                    }
                    for i in ids
                ],
            )  # fmt: skip
            s.execute(
                insert(OutboxRow),
                [
                    {"kind": kind, "ref": str(i), "entry": b"e", "created_at": at(i),
                     "log_index": i}
                    for i in ids
                    for kind in (("credential_anchored", "credential_revoked")
                                 if i % 100 == 0 else ("credential_anchored",))
                ],
            )  # fmt: skip
            for i in ids:  # the hourly counts, written at commit (issuer.activity)
                activity.note(s, activity.ISSUED_KIND, at(i))
                activity.note(s, activity.FIRST_ENROLMENT_KIND, at(i))  # each holder's first
                if i % 100 == 0:
                    activity.note(s, activity.REVOKED_KIND, at(i))


def fill_every_slot(ctx: IssuerContext, now: int) -> int:
    """Zero counts in every (hour, kind, slot) a scrape re-reads that has none yet:
    the most rows a scrape can meet, whatever was issued. Returns those rows."""
    first = activity.hour_of(now - LATE_COMMIT_S)
    with ctx.sessions.begin() as s:
        recorded = select(ActivityHourRow.hour, ActivityHourRow.kind, ActivityHourRow.slot)
        have = {tuple(r) for r in s.execute(recorded.where(ActivityHourRow.hour >= first))}
        missing = [
            {"hour": h, "kind": k, "slot": slot, "n": 0}
            for h in range(first, now + 1, HOUR_S)
            for k in activity.COUNTED_KINDS
            for slot in range(activity.SLOTS)
            if (h, k, slot) not in have
        ]
        if missing:
            s.execute(insert(ActivityHourRow), missing)
        return int(s.scalar(select(func.count()).where(ActivityHourRow.hour >= first)) or 0)


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    fn()
    return round((time.perf_counter() - t0) * 1000.0, 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    n = ap.parse_args().n
    with tempfile.TemporaryDirectory() as tmp:
        ctx = IssuerContext.open(IssuerConfig(region="GD", data_dir=Path(tmp)))
        now = ctx.now()
        t0 = time.perf_counter()
        fill(ctx, n, now)
        print(f"filled {n} rows in {time.perf_counter() - t0:.1f} s", flush=True)
        read_rows = fill_every_slot(ctx, now)
        registry = issuer_registry(ctx)
        generate_latest(registry)  # the collector's first scrape sets its starting point
        fill(ctx, 1000, now, first=n + 1, span=0)
        scrape_ms = timed(lambda: generate_latest(registry))
        text = generate_latest(registry).decode()
        line = 'healthbridge_credentials_issued_total{kind="enrolment",region="GD"} '
        counted = int(float(text.split(line, 1)[1].split("\n", 1)[0]))

        def recount() -> None:  # the bulk load bypassed the writers that keep the counts
            with ctx.sessions.begin() as s:
                activity.recount(s, now - 24 * HOUR_S)

        out = {
            "rows": n,
            "count_from_scratch_ms": timed(lambda: issuance_counts(ctx)),
            "scrape_ms": scrape_ms,
            "scrape_counted": counted,
            "scrape_activity_rows": read_rows,
            "outbox_lag_ms": timed(lambda: outbox_lag(ctx)),
            "recount_ms": timed(recount),
            "hourly_activity_ms": timed(lambda: hourly_activity(ctx, now)),
        }
        ctx.dispose()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
