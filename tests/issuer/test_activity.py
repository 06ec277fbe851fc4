"""The overview's hourly counts (issuer.activity) are written with the rows they count:
exactly what committed, nothing of a rolled-back transaction, every row of a bulk
revocation, concurrent commits on PostgreSQL without lost updates, and the last day
counted from the outbox when an existing database is upgraded. The overview reads
only the counts: a day of outbox rows is never read on a page view."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import delete, func, insert, select

from issuer import activity
from issuer.admin.overview import HOUR_S, hourly_activity
from issuer.context import IssuerContext, ManualClock
from issuer.db import MIGRATIONS_DIR, make_engine, open_db
from issuer.issuance import issue_many, revoke_credential_row
from issuer.models import CredentialRow, Holder, OutboxRow
from issuer.testing import enrol_directly, make_context, new_device

T0 = 1_800_000_000 - 1_800_000_000 % HOUR_S + 1800  # half past an hour


def holder_of(ctx: IssuerContext) -> int:
    with ctx.sessions() as s:
        return s.scalars(select(Holder.id)).first()  # type: ignore[return-value]


def issue(ctx: IssuerContext, holder_pk: int, k: int) -> None:
    with ctx.sessions.begin() as s:
        holder = s.get_one(Holder, holder_pk)
        issue_many(ctx, s, [(holder, None)] * k, ctx.now())


def outbox_count(ctx: IssuerContext, kind: str) -> int:
    with ctx.sessions() as s:
        return int(s.scalar(select(func.count()).where(OutboxRow.kind == kind)) or 0)


def test_overview_counts_survive_an_outbox_emptied_after_anchoring(tmp_path: Path) -> None:
    # The page is answered from the counts alone: with the outbox rows gone (as an
    # operator archiving anchored rows would leave it) the day still shows.
    clock = ManualClock(T0)
    ctx = make_context(tmp_path, clock=clock)
    enrol_directly(ctx, "G10000001", new_device())
    issue(ctx, holder_of(ctx), 5)
    clock.advance(HOUR_S)
    issue(ctx, holder_of(ctx), 3)
    with ctx.sessions.begin() as s:
        s.execute(delete(OutboxRow))
    a = hourly_activity(ctx, ctx.now())
    assert a.issued[-1] == 3 and a.issued[-2] == 6 and sum(a.issued) == 9  # 1 at enrolment


def test_a_rolled_back_issuance_is_not_counted(tmp_path: Path) -> None:
    ctx = make_context(tmp_path, clock=ManualClock(T0))
    enrol_directly(ctx, "G10000001", new_device())
    pk = holder_of(ctx)
    with pytest.raises(RuntimeError), ctx.sessions.begin() as s:
        issue_many(ctx, s, [(s.get_one(Holder, pk), None)] * 4, ctx.now())
        raise RuntimeError("the transaction fails after the rows were written")
    # The same session object used again: nothing of the failed transaction lingers.
    with ctx.sessions() as s, s.begin():
        pass
    issue(ctx, pk, 2)
    a = hourly_activity(ctx, ctx.now())
    assert sum(a.issued) == 3 == outbox_count(ctx, activity.ISSUED_KIND)


def test_bulk_revocation_counts_every_row_in_its_hour(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    ctx = make_context(tmp_path, clock=clock)
    enrol_directly(ctx, "G10000001", new_device())
    issue(ctx, holder_of(ctx), 40)
    clock.advance(HOUR_S)
    with ctx.sessions.begin() as s:
        rows = s.scalars(select(CredentialRow).where(CredentialRow.state == "active")).all()
        for row in rows[:30]:
            revoke_credential_row(ctx, s, row, "bulk", ctx.now())
    a = hourly_activity(ctx, ctx.now())
    assert a.revoked[-1] == 30 and sum(a.revoked) == 30
    assert sum(a.issued) == 41 == outbox_count(ctx, activity.ISSUED_KIND)


def test_recount_from_the_outbox_matches_the_running_counts(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    ctx = make_context(tmp_path, clock=clock)
    enrol_directly(ctx, "G10000001", new_device())
    for k in (3, 7, 2):
        issue(ctx, holder_of(ctx), k)
        clock.advance(HOUR_S)
    before = hourly_activity(ctx, ctx.now())
    with ctx.sessions.begin() as s:
        activity.recount(s, ctx.now() - 24 * HOUR_S)
    assert hourly_activity(ctx, ctx.now()) == before
    assert sum(before.issued) == 13


def test_recount_rebuilds_the_first_credential_counts_by_channel(tmp_path: Path) -> None:
    """Every kind the table holds, the issuance metrics' first credentials by channel
    included, comes back the same from a recount (a refresh is not a first one)."""
    clock = ManualClock(T0)
    ctx = make_context(tmp_path, clock=clock)
    enrol_directly(ctx, "G10000001", new_device())
    issue(ctx, holder_of(ctx), 2)
    clock.advance(HOUR_S)
    enrol_directly(ctx, "G10000002", new_device())
    with ctx.sessions() as s:
        before = sorted(activity.counts_since(s, 0))
    assert [(k, n) for _, k, n in before if k == activity.FIRST_ENROLMENT_KIND] == [
        (activity.FIRST_ENROLMENT_KIND, 1),
        (activity.FIRST_ENROLMENT_KIND, 1),
    ]
    with ctx.sessions.begin() as s:
        activity.recount(s, ctx.now() - 24 * HOUR_S)
    with ctx.sessions() as s:
        assert sorted(activity.counts_since(s, 0)) == before


def test_upgrade_counts_the_last_day_of_an_existing_outbox(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    now = int(time.time())
    with engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0700_outbox_shard")
        rows = [
            {"kind": kind, "ref": str(i), "entry": b"e", "created_at": at, "attempts": 0,
             "next_attempt_at": 0.0}
            for i, (kind, at) in enumerate(
                [(activity.ISSUED_KIND, now - 30 * HOUR_S)] * 4  # older than the day
                + [(activity.ISSUED_KIND, now - 2 * HOUR_S)] * 5
                + [(activity.REVOKED_KIND, now - 2 * HOUR_S)] * 2
                + [("key_added", now)]
                + [(activity.ISSUED_KIND, now)] * 3
            )
        ]  # fmt: skip
        conn.execute(insert(OutboxRow), rows)
        conn.commit()
    engine.dispose()
    sessions = open_db(url)  # upgrades to the head
    with sessions() as s:
        got = {(h, k): n for h, k, n in activity.counts_since(s, 0)}
    hour = now - now % HOUR_S
    assert got == {
        (hour - 2 * HOUR_S, activity.ISSUED_KIND): 5,
        (hour - 2 * HOUR_S, activity.REVOKED_KIND): 2,
        (hour, activity.ISSUED_KIND): 3,
    }
    sessions.kw["bind"].dispose()


@pytest.mark.postgres
def test_concurrent_commits_on_postgres_lose_no_count(
    tmp_path: Path, fresh_postgres_url: str
) -> None:
    # Six writers at once, each committing small groups and revocations in the same
    # hour: the counts add up to the outbox, with no lost update and no deadlock.
    ctx = make_context(tmp_path, database_url=fresh_postgres_url, clock=ManualClock(T0))
    try:
        for i in range(1, 7):  # the seeded residents
            enrol_directly(ctx, f"G1000000{i}", new_device())
        with ctx.sessions() as s:
            pks = list(s.scalars(select(Holder.id)))
        errors: list[BaseException] = []

        def writer(pk: int) -> None:
            try:
                for _ in range(10):
                    issue(ctx, pk, 3)
                    with ctx.sessions.begin() as s:
                        row = s.scalars(
                            select(CredentialRow)
                            .where(CredentialRow.holder_pk == pk, CredentialRow.state == "active")
                            .limit(1)
                        ).one()
                        revoke_credential_row(ctx, s, row, "test", ctx.now())
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=writer, args=(pk,)) for pk in pks]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        a = hourly_activity(ctx, ctx.now())
        assert sum(a.issued) == outbox_count(ctx, activity.ISSUED_KIND) == 6 + 6 * 10 * 3
        assert sum(a.revoked) == outbox_count(ctx, activity.REVOKED_KIND) == 6 * 10
        with ctx.sessions() as s:
            slots = s.scalar(
                select(func.count()).where(activity.ActivityHourRow.kind.in_(activity.OUTBOX_KINDS))
            )
        assert slots is not None and 1 < slots <= 2 * activity.SLOTS
    finally:
        ctx.dispose()
