"""Crash safety of issuance and anchoring: the issuer is killed with SIGKILL at random
instants during a stream of issuances (50+ times); after restart, every credential it
committed is anchored on the real ledger exactly once, and every index it reported
issued is in its database. Run on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter as Tally
from pathlib import Path

import pytest

from issuer import anchor
from issuer.context import IssuerContext
from issuer.models import CredentialRow
from issuer.testing import enrol_directly, ledger_node, make_context, new_device
from ledger.clients.client import LedgerClient
from ledger.log.entries import CredentialAnchored
from ledger.testing import log_entries

ROOT = Path(__file__).resolve().parents[2]
KILLS = 50
RUN_BEFORE_KILL_S = (0.0, 0.4)  # seconds after the child says ready


def crash_cycle(ctx: IssuerContext, ledger_url: str, db_url: str) -> set[int]:
    env = {
        **os.environ,
        "KILL_DATA_DIR": str(ctx.config.data_dir),
        "KILL_DB_URL": db_url,
        "KILL_LEDGER_URL": ledger_url,
    }
    reported: set[int] = set()
    rng = random.Random(1234)
    for _ in range(KILLS):
        child = subprocess.Popen(
            [sys.executable, "-m", "tests.issuer.kill_child"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(*RUN_BEFORE_KILL_S))
        child.send_signal(signal.SIGKILL)
        out, _ = child.communicate(timeout=30)
        reported |= {int(x) for x in out.split() if x.isdigit()}
    return reported


def check_exactly_once(ctx: IssuerContext, node_url: str, reported: set[int]) -> None:
    port = anchor.ClientLedgerPort(node_url, ctx.keys.writer_key(), 10)
    anchor.drain(ctx, port)
    assert anchor.pending_count(ctx) == 0
    client = LedgerClient(node_url, timeout=10)
    deadline = time.monotonic() + 20
    with ctx.sessions() as s:
        rows = {r.digest: r.status_index for r in s.query(CredentialRow)}
    assert reported <= set(rows.values()), "an index reported issued was lost"
    while True:
        tally = Tally(e.digest for e in log_entries(client) if isinstance(e, CredentialAnchored))
        if set(rows) <= set(tally) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    missing = set(rows) - set(tally)
    assert not missing, f"{len(missing)} issued credentials never anchored"
    assert all(n == 1 for n in tally.values()), "a credential was anchored twice"
    assert set(tally) == set(rows), "the log anchors a credential the issuer never committed"


def run_crash_test(tmp_path: Path, db_url: str) -> None:
    ctx = make_context(tmp_path, "GD", database_url=db_url)
    try:
        enrol_directly(ctx, "G10000001", new_device())
        with ledger_node(ctx, tmp_path) as node:
            reported = crash_cycle(ctx, node.url, ctx.config.database_url)
            assert len(reported) > KILLS // 2, "the child hardly issued anything"
            check_exactly_once(ctx, node.url, reported)
    finally:
        ctx.dispose()


@pytest.mark.slow
def test_sigkill_during_issuance_never_loses_or_duplicates_an_anchor_sqlite(tmp_path: Path) -> None:
    run_crash_test(tmp_path, "")


@pytest.mark.slow
@pytest.mark.postgres
def test_sigkill_during_issuance_never_loses_or_duplicates_an_anchor_postgres(
    tmp_path: Path, fresh_postgres_url: str
) -> None:
    run_crash_test(tmp_path, fresh_postgres_url)
