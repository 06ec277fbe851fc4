"""The console's overview (landing) page through Flask's test client: the hourly
counts come from the database, the page speaks the admin's language (headings, chart
titles, hour ticks, durations, alarms), and the charts are inline SVG (nothing for the
browser to fetch)."""

from __future__ import annotations

import gettext
import re
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from credential.languages import Language
from issuer.admin.overview import HOUR_S, fetch_alarms, hourly_activity
from issuer.context import ManualClock
from issuer.testing import enrol_directly, make_context, new_device
from tests.issuer.admin.test_console import PASSWORD, cheap_argon2, client, gd, login  # noqa: F401

CATALOGS = Path(__file__).resolve().parents[3] / "issuer" / "admin" / "translations"


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
    from issuer.activity import first_outbox_id_from
    from issuer.issuance import add_outbox

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


def test_login_lands_on_the_overview_in_english(client, gd) -> None:  # noqa: F811
    enrol_directly(gd, "G10000001", new_device())
    token = re.search(
        r'name="csrf_token" value="([^"]+)"', client.get("/console/login").get_data(True)
    ).group(1)
    r = client.post(
        "/console/login", data={"username": "viewer", "password": PASSWORD, "csrf_token": token}
    )
    assert r.status_code == 302 and r.headers["Location"].endswith("/console/overview")
    html = client.get("/console/overview").get_data(as_text=True)
    for heading in ("Overview", "Anchoring outbox", "Checkpoint freshness", "Recent alarms"):
        assert heading in html
    # One language at a time: the side-by-side Chinese labels are gone.
    assert not re.search(r"[\u4e00-\u9fff]", html.split("<main>", 1)[1])
    assert "6 h 00 min" in html  # a station's limit, in words
    assert html.count("<svg") >= 3
    assert 'id="issued-total">1<' in html
    assert "G10000001" not in html
    # Nothing on the page is fetched from elsewhere: no src= or href= leaves the site.
    assert not re.search(r'(?:src|href)="(?:https?:)?//', html)


def choose_language(web: FlaskClient, language: Language) -> str:
    """The admin picks `language` on the overview; the page it returns to, in it."""
    html = web.get("/console/overview").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    r = web.post(
        "/console/language",
        data={"language": language.value, "next": "/console/overview", "csrf_token": token},
    )
    assert r.status_code == 302 and r.headers["Location"].endswith("/console/overview")
    return web.get("/console/overview").get_data(as_text=True)


@pytest.mark.parametrize(
    ("language", "words"),
    [
        (
            Language.ZH_HANS,
            ("概览", "上链待办队列", "见证方状态", "最近警报", "6 小时 00 分钟", "合计："),
        ),
        (
            Language.ZH_HANT,
            ("概覽", "上鏈待辦隊列", "見證方狀態", "最近警報", "6 小時 00 分鐘", "合計："),
        ),
        (
            Language.PT,
            ("Visão geral", "Fila de ancoragem", "Estado das testemunhas", "Alarmes recentes"),
        ),
    ],
    ids=["zh-Hans", "zh-Hant", "pt"],
)
def test_overview_speaks_the_admins_language(
    client,  # noqa: F811
    gd,  # noqa: F811
    language: Language,
    words: tuple[str, ...],
) -> None:
    enrol_directly(gd, "G10000001", new_device())
    login(client, "viewer")
    html = choose_language(client, language)
    assert f'<html lang="{language.value}">' in html
    for w in words:
        assert w in html, w
    # No English heading, chart title or status word is left on the page.
    main = html.split("<main>", 1)[1]
    for english in (
        ">Overview<",
        "Anchoring outbox",
        "Credentials issued per hour",
        "Revocations per hour",
        "Checkpoint freshness",
        "Witness status",
        "Recent alarms",
        "not reachable",
    ):
        assert english not in main, english
    # The charts' titles and each bar's tooltip are in the language too, on a 24-hour clock.
    titles = re.findall(r"<title>([^<]*)</title>", main)
    catalog = gettext.translation("messages", str(CATALOGS), [language.catalog])
    assert catalog.gettext("Credentials issued per hour, last 24 h (UTC)") in titles
    assert all(re.search(r"\b([01]\d|2[0-3]):00 UTC", t) for t in titles if "UTC:" in t)
    ticks = re.findall(r'fill="#5b6473">(\d\d:\d\d)</text>', main)
    assert len(ticks) >= 8 and all(int(t[:2]) < 24 for t in ticks)


def test_ledger_alarms_are_worded_in_the_admins_language(gd) -> None:  # noqa: F811
    from flask import g

    from issuer.admin.views import alarm_text, word
    from issuer.app import create_app
    from issuer.ledger_state import AlarmKind, LedgerAlarm

    fork = LedgerAlarm(AlarmKind.FORK, 9)
    rollback = LedgerAlarm(AlarmKind.ROLLBACK, 7, 12)
    # The admin API keeps its English wording.
    assert str(fork) == "fork: two different roots for tree size 9"
    assert str(rollback) == "rollback: tree size went from 12 down to 7"
    app = create_app(gd.config, context=gd, start_workers=False)
    with app.test_request_context("/console/overview"):
        g.console_language = Language.ZH_HANT
        assert alarm_text(fork) == "分叉：樹大小 9 出現兩個不同的根雜湊"
        assert alarm_text(rollback) == "回退：樹大小從 12 降至 7"
        assert word("same_size_other_root") == "同一樹大小出現兩個根雜湊"
    with app.test_request_context("/console/overview"):
        g.console_language = Language.PT
        assert alarm_text(LedgerAlarm(AlarmKind.BAD_SIGNATURE)) == (
            "a assinatura do checkpoint foi recusada"
        )


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
