"""The console's overview (landing) page through Flask's test client: the hourly
counts come from the database, the page is in both of the console's languages, and
the charts are inline SVG (nothing for the browser to fetch)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from issuer.context import ManualClock
from issuer.overview import HOUR_S, fetch_alarms, hourly_activity
from issuer.testing import enrol_directly, make_context, new_device
from tests.issuer.test_console import PASSWORD, cheap_argon2, client, gd, login  # noqa: F401


def test_hourly_activity_buckets_by_utc_hour(tmp_path: Path) -> None:
    clock = ManualClock(1_800_000_000 - 1_800_000_000 % HOUR_S + 1800)  # half past an hour
    ctx = make_context(tmp_path, clock=clock)
    enrol_directly(ctx, "G10000001", new_device())
    clock.advance(2 * HOUR_S)
    enrol_directly(ctx, "G10000002", new_device())
    a = hourly_activity(ctx, ctx.now())
    assert len(a.issued) == 24 and sum(a.issued) == 2
    assert a.issued[-1] == 1 and a.issued[-3] == 1
    assert a.start % HOUR_S == 0 and a.hours[-1] <= ctx.now() < a.hours[-1] + HOUR_S
    # A day later both have left the window.
    assert sum(hourly_activity(ctx, ctx.now() + 25 * HOUR_S).issued) == 0


def test_first_outbox_row_of_a_window_is_found_by_binary_search(tmp_path: Path) -> None:
    from issuer.issuance import add_outbox
    from issuer.overview import first_outbox_id_from

    t0 = 1_700_000_000
    ctx = make_context(tmp_path, clock=ManualClock(t0))  # its own key entries: at t0
    with ctx.sessions.begin() as s:
        ids = [add_outbox(s, "k", str(t), b"e", t0 + 1_000 + t).id for t in range(0, 100, 3)]
    with ctx.sessions.begin() as s:
        for t, expected in ((1_000, ids[0]), (1_001, ids[1]), (1_099, ids[-1]), (1_042, ids[14])):
            assert first_outbox_id_from(s, t0 + t) == expected, t
        assert first_outbox_id_from(s, t0) == 1
        assert first_outbox_id_from(s, 10**10) is None


def test_unreachable_node_gives_an_alarm_error_not_a_failure() -> None:
    got = fetch_alarms("http://127.0.0.1:9")
    assert got.items == () and got.error is not None and "cannot reach" in got.error


def test_login_lands_on_the_overview_in_both_languages(client, gd) -> None:  # noqa: F811
    enrol_directly(gd, "G10000001", new_device())
    token = re.search(
        r'name="csrf_token" value="([^"]+)"', client.get("/console/login").get_data(True)
    ).group(1)
    r = client.post(
        "/console/login", data={"username": "viewer", "password": PASSWORD, "csrf_token": token}
    )
    assert r.status_code == 302 and r.headers["Location"].endswith("/console/overview")
    html = client.get("/console/overview").get_data(as_text=True)
    pairs = (
        ("Overview", "概览"),
        ("Anchoring outbox", "上链待办队列"),
        ("Checkpoint freshness", "检查点新鲜度"),
        ("Recent alarms", "最近警报"),
    )
    for en, zh in pairs:
        assert en in html and zh in html
    assert html.count("<svg") >= 3
    assert 'id="issued-total">1<' in html
    assert "G10000001" not in html
    # Nothing on the page is fetched from elsewhere: no src= or href= leaves the site.
    assert not re.search(r'(?:src|href)="(?:https?:)?//', html)


@pytest.mark.postgres
def test_hourly_activity_and_metrics_queries_on_postgres(
    tmp_path: Path, fresh_postgres_url: str
) -> None:
    from issuer.metrics import issuance_counts, newest_ids, outbox_lag

    clock = ManualClock(1_800_000_000 - 1_800_000_000 % HOUR_S + 1800)
    ctx = make_context(tmp_path, database_url=fresh_postgres_url, clock=clock)
    try:
        enrol_directly(ctx, "G10000001", new_device())
        clock.advance(2 * HOUR_S)
        enrol_directly(ctx, "G10000002", new_device())
        a = hourly_activity(ctx, ctx.now())
        assert a.issued[-1] == 1 and a.issued[-3] == 1 and sum(a.issued) == 2
        assert issuance_counts(ctx).enrolment == 2
        assert issuance_counts(ctx, *newest_ids(ctx)).enrolment == 0
        depth, oldest = outbox_lag(ctx)
        assert depth >= 3 and oldest is not None and oldest >= 2 * HOUR_S
    finally:
        ctx.dispose()
