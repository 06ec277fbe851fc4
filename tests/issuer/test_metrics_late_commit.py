"""A row committed late behind a newer one is still counted by the issuance counters.

On PostgreSQL, ids come from sequences when a row is inserted, not when its
transaction commits: transaction A can insert the lower id, transaction B the higher
one, and B commit first. A scrape between the two commits must not move past A's row
for good, as counting "rows above the highest id seen" did. On SQLite writers run one
at a time, so the same scenario is played across an hour boundary instead: a commit
stamped in an hour the previous scrape already read."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from issuer import activity
from issuer.context import IssuerContext, ManualClock
from issuer.issuance import issue_many, next_status_indices, revoke_credential_row
from issuer.metrics import IssuanceTally, IssuanceTotals, issuance_counts, issuer_registry
from issuer.models import CredentialRow, Holder, OutboxRow
from issuer.testing import enrol_directly, make_context, new_device

T0 = 1_800_000_000 - 1_800_000_000 % 3600 + 1800  # half past an hour


def counter(registry: CollectorRegistry, name: str, kind: str | None = None) -> float:
    """One sample of a scrape, read from the exposition text Prometheus would get."""
    text = generate_latest(registry).decode()
    labels = f'kind="{kind}",region="GD"' if kind else 'region="GD"'
    found = re.search(rf"^{name}_total\{{{labels}\}} (\S+)$", text, re.M)
    assert found is not None, text
    return float(found.group(1))


@pytest.fixture()
def ctx(tmp_path: Path, fresh_postgres_url: str) -> Iterator[IssuerContext]:
    """On PostgreSQL: transactions A and B are both open at once (SQLite has one writer)."""
    made = make_context(tmp_path, database_url=fresh_postgres_url, clock=ManualClock(T0))
    try:
        yield made
    finally:
        made.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_ctx(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[IssuerContext]:
    url = request.getfixturevalue("fresh_postgres_url") if request.param == "postgresql" else ""
    made = make_context(tmp_path, database_url=url, clock=ManualClock(T0))
    try:
        yield made
    finally:
        made.dispose()


def write_refresh(ctx: IssuerContext, s: Session, holder_pk: int, index: int) -> int:
    """A credential row and its anchor row as issue_many writes them (its status index
    reserved beforehand: the counter's row lock would otherwise hold B behind A);
    returns the credential row's id."""
    now = ctx.now()
    cred_id = s.execute(
        insert(CredentialRow).returning(CredentialRow.id),
        {
            "credential_id": f"late{index}", "status_index": index, "holder_pk": holder_pk,
            "kid": "k", "colour": "green", "basis": "vaccination", "rule": "r",
            "issued_at": now, "expires_at": now + 86_400, "digest": index.to_bytes(8, "big"),
            "jws": "x", "state": "active",
        },
    ).scalar_one()  # fmt: skip
    s.execute(
        insert(OutboxRow),
        {"kind": "credential_anchored", "ref": str(index), "entry": b"e", "created_at": now,
         "attempts": 0, "next_attempt_at": 0.0},
    )  # fmt: skip
    activity.note(s, "credential_anchored", now)
    return int(cred_id)


def test_late_committed_revocation_is_counted(ctx: IssuerContext) -> None:
    enrol_directly(ctx, "G10000001", new_device())
    enrol_directly(ctx, "G10000002", new_device())
    registry = issuer_registry(ctx)
    assert counter(registry, "healthbridge_credentials_revoked") == 0
    with ctx.sessions() as s:
        first, second = s.scalars(select(CredentialRow.id).order_by(CredentialRow.id)).all()
    a = ctx.sessions()
    a.begin()
    box_a = revoke_credential_row(ctx, a, a.get_one(CredentialRow, first), "admin", ctx.now())
    with ctx.sessions.begin() as b:  # B takes a higher id and commits first
        box_b = revoke_credential_row(ctx, b, b.get_one(CredentialRow, second), "admin", ctx.now())
    assert box_a.id < box_b.id
    assert counter(registry, "healthbridge_credentials_revoked") == 1
    a.commit()
    a.close()
    assert counter(registry, "healthbridge_credentials_revoked") == 2


def test_late_committed_credential_is_counted(ctx: IssuerContext) -> None:
    enrol_directly(ctx, "G10000001", new_device())
    registry = issuer_registry(ctx)
    assert counter(registry, "healthbridge_credentials_issued", "refresh") == 0
    with ctx.sessions.begin() as s:
        holder_pk = s.scalars(select(Holder.id)).one()
        lo, hi = next_status_indices(s, 2)
    a = ctx.sessions()
    a.begin()
    id_a = write_refresh(ctx, a, holder_pk, lo)
    with ctx.sessions.begin() as b:  # B takes a higher id and commits first
        id_b = write_refresh(ctx, b, holder_pk, hi)
    assert id_a < id_b
    assert counter(registry, "healthbridge_credentials_issued", "refresh") == 1
    a.commit()
    a.close()
    assert counter(registry, "healthbridge_credentials_issued", "refresh") == 2
    assert counter(registry, "healthbridge_credentials_issued", "enrolment") == 0


def test_commit_stamped_in_an_hour_already_scraped_is_counted(any_ctx: IssuerContext) -> None:
    """Both databases: a transaction stamps its rows with the time it started; it can
    commit after a scrape that already read that hour, and after the hour is over."""
    ctx = any_ctx
    enrol_directly(ctx, "G10000001", new_device())
    enrol_directly(ctx, "G10000002", new_device())
    registry = issuer_registry(ctx)
    assert counter(registry, "healthbridge_credentials_revoked") == 0
    stamped = ctx.now()
    with ctx.sessions.begin() as s:
        first = s.scalars(select(CredentialRow).order_by(CredentialRow.id)).first()
        assert first is not None
        revoke_credential_row(ctx, s, first, "admin", stamped)
    assert counter(registry, "healthbridge_credentials_revoked") == 1
    assert isinstance(ctx.clock, ManualClock)
    ctx.clock.advance(3600)
    assert counter(registry, "healthbridge_credentials_revoked") == 1
    with ctx.sessions.begin() as s:  # committed now, stamped in the previous hour
        newest = s.scalars(select(CredentialRow).order_by(CredentialRow.id.desc())).first()
        assert newest is not None
        revoke_credential_row(ctx, s, newest, "admin", stamped)
    assert counter(registry, "healthbridge_credentials_revoked") == 2
    enrol_directly(ctx, "G10000003", new_device())
    assert counter(registry, "healthbridge_credentials_issued", "enrolment") == 1


def test_tally_reads_only_recent_hours_and_caches_closed_ones() -> None:
    """IssuanceTally alone (no database): the rows a scrape reads start at its horizon,
    which moves forward as hours close and never back; a closed hour's sum is kept."""
    h = 3600
    tally = IssuanceTally(late_s=2 * h)
    base = T0 - T0 % h
    assert tally.horizon(T0) == base - 2 * h
    first = tally.update(T0, [(base, activity.ISSUED_KIND, 5)])  # before counting began
    assert first == IssuanceTotals(0, 0, 0, 0)
    rows = [
        (base, activity.ISSUED_KIND, 7),  # two committed since
        (base, activity.FIRST_ENROLMENT_KIND, 1),
        (base, activity.REVOKED_KIND, 1),
        (base - 10 * h, activity.ISSUED_KIND, 99),  # before the horizon: not the tally's
    ]
    assert tally.update(T0 + 60, rows) == IssuanceTotals(1, 0, 1, 1)
    # Three hours on, `base` is closed: its sums are kept and it is not read again.
    later = T0 + 3 * h
    assert tally.horizon(later) == base - 2 * h
    assert tally.update(later, rows[:3]) == IssuanceTotals(1, 0, 1, 1)
    assert tally.horizon(later) == base + h
    # A commit stamped in the closed hour after that is beyond the bound (LATE_COMMIT_S).
    assert tally.update(later + 60, [(base, activity.ISSUED_KIND, 8)]) == IssuanceTotals(1, 0, 1, 1)
    # A clock stepping back does not reopen closed hours.
    assert tally.horizon(T0) == base + h
    now_rows = [(base + h, activity.FIRST_CONVERSION_KIND, 2), (base + h, activity.ISSUED_KIND, 3)]
    assert tally.update(T0, now_rows) == IssuanceTotals(1, 2, 2, 1)


def test_counters_match_the_rows_after_concurrent_writers_and_scrapes(
    ctx: IssuerContext,
) -> None:
    """Four writers issue and revoke on PostgreSQL while a scraper scrapes without
    pause: at the end the counters hold exactly what the rows hold."""
    for i in range(1, 5):  # the seeded residents
        enrol_directly(ctx, f"G1000000{i}", new_device())
    registry = issuer_registry(ctx)
    assert counter(registry, "healthbridge_credentials_issued", "refresh") == 0
    with ctx.sessions() as s:
        pks = list(s.scalars(select(Holder.id)))
    errors: list[BaseException] = []
    writing = threading.Event()

    def writer(pk: int) -> None:
        try:
            for _ in range(5):
                with ctx.sessions.begin() as s:
                    issue_many(ctx, s, [(s.get_one(Holder, pk), None)] * 2, ctx.now())
                with ctx.sessions.begin() as s:
                    row = s.scalars(
                        select(CredentialRow)
                        .where(CredentialRow.holder_pk == pk, CredentialRow.state == "active")
                        .limit(1)
                    ).one()
                    revoke_credential_row(ctx, s, row, "admin", ctx.now())
        except BaseException as e:
            errors.append(e)

    def scraper() -> None:
        while writing.is_set():
            generate_latest(registry)

    writing.set()
    threads = [threading.Thread(target=writer, args=(pk,)) for pk in pks]
    scraping = threading.Thread(target=scraper)
    scraping.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writing.clear()
    scraping.join()
    assert not errors, errors
    rows = issuance_counts(ctx)
    assert (rows.enrolment, rows.refresh, rows.revoked) == (4, 4 * 5 * 2, 4 * 5)
    assert counter(registry, "healthbridge_credentials_issued", "refresh") == rows.refresh
    assert counter(registry, "healthbridge_credentials_revoked") == rows.revoked
    assert counter(registry, "healthbridge_credentials_issued", "enrolment") == 0
