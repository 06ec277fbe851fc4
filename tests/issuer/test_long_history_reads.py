"""A wallet's fetch costs the same after a year of daily re-issues and tests as on the
first day: the holder's latest active credential is found in one index descent
(migration 0810), and a status read returns only the health records that can still
decide (status_rules.RECORD_HORIZON_S), on SQLite and on PostgreSQL.

Before, the fetch visited every credential the holder was ever issued and returned
one row per health record the resident ever had, each carrying the credential's JWS.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from issuer.app import create_app
from issuer.context import IssuerContext
from issuer.fetch_reads import FETCH_STATE, GROUP_STATE, fetch_state, group_state
from issuer.issuance import issue_many, resident_status
from issuer.models import Holder
from issuer.residents import add_records, add_residents
from issuer.status_rules import DAY_S, HealthRecord, LabResult, RecordKind, StatusRule
from issuer.testing import device_header, enrol_directly, make_context, new_device

PATH = "/v1/credential"
HISTORY = 240  # credentials re-issued, and tests taken, before the fetch under test


def _holder(ctx: IssuerContext, doc: str) -> tuple[Any, str, int]:
    """A new resident with no record yet (not one of the demo's), enrolled."""
    add_residents(ctx, [{"document_number": doc, "name": f"Resident {doc}"}])
    dev = new_device()
    holder_id = enrol_directly(ctx, doc, dev).holder_id
    with ctx.sessions() as s:
        pk = s.query(Holder.id).filter(Holder.holder_id == holder_id).scalar()
    return dev, holder_id, pk


def _reissue(ctx: IssuerContext, holder_pk: int, times: int) -> None:
    with ctx.sessions.begin() as s:
        holder = s.get_one(Holder, holder_pk)
        issue_many(ctx, s, [(holder, None)] * times, ctx.now())


def _daily_tests(ctx: IssuerContext, doc: str, days: int) -> None:
    """A negative test a day for `days` days, the newest yesterday."""
    now = ctx.now()
    add_records(
        ctx,
        [
            (doc, HealthRecord(RecordKind.TEST, now - d * DAY_S, LabResult.NEGATIVE))
            for d in range(1, days + 1)
        ],
        "lab",
    )


def _context(tmp_path: Path, database_url: str) -> IssuerContext:
    return make_context(tmp_path, "MO", database_url=database_url)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    if request.param == "sqlite":
        return ""
    url: str = request.getfixturevalue("fresh_postgres_url")
    return url


def test_a_daily_tester_of_a_year_reads_a_few_status_rows(
    tmp_path: Path, database_url: str
) -> None:
    ctx = _context(tmp_path, database_url)
    _dev, holder_id, pk = _holder(ctx, "M7000001")
    _daily_tests(ctx, "M7000001", HISTORY)
    now = ctx.now()
    with ctx.read_connection() as conn:
        state = fetch_state(conn, holder_id, now)
    assert state is not None
    # Yesterday's test and the 12 before it (a positive counts for 14 days); the
    # other 227 can no longer change anything.
    assert len(state.status_rows) == 13
    assert state.status(now).rule is StatusRule.NEGATIVE_TEST
    with ctx.sessions.begin() as s:
        _states, _key, rows = group_state(s, [pk], now, now)
        assert len(rows) == 13
        resident = s.get_one(Holder, pk).resident_id
        assert resident is not None
        assert resident_status(s, resident, now).rule is StatusRule.NEGATIVE_TEST
    ctx.dispose()


def test_a_dose_years_ago_still_completes_the_course(tmp_path: Path, database_url: str) -> None:
    ctx = _context(tmp_path, database_url)
    _dev, holder_id, _pk = _holder(ctx, "M7000002")
    now = ctx.now()
    add_records(
        ctx,
        [
            ("M7000002", HealthRecord(RecordKind.VACCINATION, now - 3 * 365 * DAY_S)),
            ("M7000002", HealthRecord(RecordKind.VACCINATION, now - 30 * DAY_S)),
        ],
        "clinic",
    )
    with ctx.read_connection() as conn:
        state = fetch_state(conn, holder_id, now)
    assert state is not None
    assert state.status(now).rule is StatusRule.VACCINATION
    ctx.dispose()


def test_a_year_of_daily_reissues_still_answers_the_latest_credential(
    tmp_path: Path, database_url: str
) -> None:
    ctx = _context(tmp_path, database_url)
    dev, holder_id, pk = _holder(ctx, "M7000003")
    _reissue(ctx, pk, HISTORY)
    client = create_app(ctx.config, context=ctx, start_workers=False).test_client()
    got = client.get(
        PATH, headers={"Authorization": device_header(dev, holder_id, "GET", PATH, ctx.now())}
    )
    assert got.status_code == 200
    with ctx.sessions() as s:
        newest = s.execute(text("SELECT jws FROM credentials ORDER BY id DESC LIMIT 1")).scalar()
    assert got.get_json()["credential"] == newest
    ctx.dispose()


def _buffers(conn: Any, statement: Any, params: dict[str, Any]) -> int:
    """Shared buffers PostgreSQL touched running `statement` with `params` (EXPLAIN
    ANALYZE, BUFFERS), every bound value included as the issuer sends it."""
    expanded = statement.compile(dialect=conn.dialect).construct_expanded_state(params)
    plan = conn.exec_driver_sql(
        "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + expanded.statement, expanded.parameters
    ).scalar()
    top = json.loads(plan) if isinstance(plan, str) else plan
    node = top[0]["Plan"]
    return int(node["Shared Hit Blocks"]) + int(node["Shared Read Blocks"])


def test_a_fetch_after_a_year_touches_no_more_pages_than_on_the_first_day(
    tmp_path: Path, fresh_postgres_url: str
) -> None:
    ctx = _context(tmp_path, fresh_postgres_url)
    _new_dev, new_id, new_pk = _holder(ctx, "M7000004")
    _old_dev, old_id, old_pk = _holder(ctx, "M7000005")
    # The tests first: the status change they make revokes what is outstanding.
    _daily_tests(ctx, "M7000005", HISTORY)
    _daily_tests(ctx, "M7000004", 13)  # as many tests as can still decide
    _reissue(ctx, old_pk, HISTORY)
    _reissue(ctx, new_pk, 1)
    now = ctx.now()
    engine = ctx.sessions.kw["bind"]
    with engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        fresh, old = (
            _buffers(conn, FETCH_STATE, {"holder_id": h, "records_at": now})
            for h in (new_id, old_id)
        )
        group_fresh, group_old = (
            _buffers(conn, GROUP_STATE, {"holders": [pk], "now": now, "records_at": now})
            for pk in (new_pk, old_pk)
        )
    # A year of history used to cost a page per credential ever issued (240 more here).
    assert old <= fresh + 8, (fresh, old)
    assert group_old <= group_fresh + 8, (group_fresh, group_old)
    ctx.dispose()
