"""What a Prometheus scrape and the console's overview cost an issuer with big tables.

Fills a fresh SQLite issuer database with N holders, N credentials issued evenly over
the last two days with their outbox rows (1 % revoked, with their revocation rows),
then times the queries. Prints one JSON object on the last line:
  rows                     credentials in the table
  count_from_scratch_ms    issuance counts over the whole tables (what a scrape would
                           cost without the running totals; the collector never does it)
  scrape_ms                one /metrics rendering after 1 000 new credentials (the
                           collector reads only the rows since its previous scrape)
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
from sqlalchemy import insert

from issuer import activity
from issuer.admin.overview import HOUR_S, hourly_activity
from issuer.config import IssuerConfig
from issuer.context import IssuerContext
from issuer.metrics import issuance_counts, issuer_registry, outbox_lag
from issuer.models import CredentialRow, Holder, OutboxRow

BATCH = 10_000  # rows per executemany


def fill(ctx: IssuerContext, n: int, now: int, first: int = 1) -> None:
    """Credentials `first`..`first + n - 1`, issued in id order over the last two days."""
    span = 2 * 86_400

    def at(i: int) -> int:
        return now - span + (i * span) // (first + n)

    with ctx.sessions.begin() as s:
        for start in range(first, first + n, BATCH):
            ids = range(start, min(first + n, start + BATCH))
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
        registry = issuer_registry(ctx)
        generate_latest(registry)  # the collector's first scrape sets its starting point
        fill(ctx, 1000, now, first=n + 1)

        def recount() -> None:  # the bulk load bypassed the writers that keep the counts
            with ctx.sessions.begin() as s:
                activity.recount(s, now - 24 * HOUR_S)

        out = {
            "rows": n,
            "count_from_scratch_ms": timed(lambda: issuance_counts(ctx)),
            "scrape_ms": timed(lambda: generate_latest(registry)),
            "outbox_lag_ms": timed(lambda: outbox_lag(ctx)),
            "recount_ms": timed(recount),
            "hourly_activity_ms": timed(lambda: hourly_activity(ctx, now)),
        }
        ctx.dispose()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
