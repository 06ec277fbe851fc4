"""The wallet's credential fetch on its read path: asking again with an already accepted
header for an unchanged credential writes nothing (no write transaction at all), a
reader never takes SQLite's write lock, and the device signature, skew and replay
checks still refuse what they refused before."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select

from issuer.app import create_app
from issuer.context import IssuerContext, ManualClock
from issuer.device_auth import load_device_key
from issuer.models import CredentialRow, Holder, OutboxRow
from issuer.testing import (
    device_header,
    device_key_text,
    enrol_directly,
    make_context,
    new_device,
)

PATH = "/v1/credential"


def _writes(ctx: IssuerContext) -> list[str]:
    """Record every statement that writes or takes the write lock on ctx's engine."""
    seen: list[str] = []
    engine = ctx.sessions.kw["bind"]

    @event.listens_for(engine, "before_cursor_execute")
    def _record(_c: Any, _cur: Any, statement: str, *_a: Any) -> None:
        word = statement.lstrip().split(" ", 1)[0].upper()
        if word in {"INSERT", "UPDATE", "DELETE"} or statement.startswith("BEGIN IMMEDIATE"):
            seen.append(statement)

    return seen


def _setup(tmp_path: Path) -> tuple[IssuerContext, Any, str, ManualClock]:
    clock = ManualClock(time.time())
    ctx = make_context(tmp_path, "MO", clock=clock)
    dev = new_device()
    holder_id = enrol_directly(ctx, "M1000001", dev).holder_id
    return ctx, dev, holder_id, clock


def test_asking_again_for_an_unchanged_credential_writes_nothing(tmp_path: Path) -> None:
    ctx, dev, holder_id, _clock = _setup(tmp_path)
    client = create_app(ctx.config, context=ctx, start_workers=False).test_client()
    hdr = {"Authorization": device_header(dev, holder_id, "GET", PATH, ctx.now())}
    first = client.get(PATH, headers=hdr)
    assert first.status_code == 200
    writes = _writes(ctx)
    again = client.get(PATH, headers=hdr)
    assert again.status_code == 200
    assert again.get_json() == first.get_json()
    assert writes == []


def test_a_newer_timestamp_is_recorded_so_older_headers_are_refused(tmp_path: Path) -> None:
    ctx, dev, holder_id, clock = _setup(tmp_path)
    client = create_app(ctx.config, context=ctx, start_workers=False).test_client()
    old = {"Authorization": device_header(dev, holder_id, "GET", PATH, ctx.now())}
    assert client.get(PATH, headers=old).status_code == 200
    clock.advance(ctx.config.device_auth_reorder_s + 1)
    new = {"Authorization": device_header(dev, holder_id, "GET", PATH, ctx.now())}
    assert client.get(PATH, headers=new).status_code == 200
    with ctx.sessions() as s:
        assert s.scalars(select(Holder.last_auth_ts)).one() == ctx.now()
    replayed = client.get(PATH, headers=old)
    assert replayed.status_code == 401
    assert replayed.get_json()["error"] == "unauthorized"


def test_read_path_still_refuses_bad_signature_and_skewed_timestamp(tmp_path: Path) -> None:
    ctx, dev, holder_id, clock = _setup(tmp_path)
    client = create_app(ctx.config, context=ctx, start_workers=False).test_client()
    hdr = {"Authorization": device_header(dev, holder_id, "GET", PATH, ctx.now())}
    assert client.get(PATH, headers=hdr).status_code == 200
    forged = {"Authorization": device_header(new_device(), holder_id, "GET", PATH, ctx.now())}
    assert client.get(PATH, headers=forged).status_code == 401
    clock.advance(ctx.config.device_auth_skew_s + 1)
    assert client.get(PATH, headers=hdr).status_code == 401  # the accepted header, too late


def test_due_credential_is_reissued_with_its_outbox_row(tmp_path: Path) -> None:
    clock = ManualClock(time.time())
    ctx = make_context(tmp_path, "MO", clock=clock, refresh_before_s=10 * 86_400)
    dev = new_device()
    holder_id = enrol_directly(ctx, "M1000001", dev).holder_id
    client = create_app(ctx.config, context=ctx, start_workers=False).test_client()
    hdr = {"Authorization": device_header(dev, holder_id, "GET", PATH, ctx.now())}
    jws = {client.get(PATH, headers=hdr).get_json()["credential"] for _ in range(3)}
    assert len(jws) == 3  # the same header, but every fetch was due: three new credentials
    with ctx.sessions() as s:
        for token in jws:
            row = s.scalars(select(CredentialRow).where(CredentialRow.jws == token)).one()
            boxes = s.scalar(
                select(func.count()).where(
                    OutboxRow.kind == "credential_anchored",
                    OutboxRow.ref == str(row.status_index),
                )
            )
            assert boxes == 1


def test_read_session_does_not_wait_for_a_writer(tmp_path: Path) -> None:
    ctx, _dev, holder_id, _clock = _setup(tmp_path)
    writer = sqlite3.connect(ctx.config.database_url.removeprefix("sqlite:///"), timeout=0)
    writer.isolation_level = None
    writer.execute("BEGIN IMMEDIATE")  # another process in the middle of a write
    try:
        start = time.monotonic()
        with ctx.read_session() as s:
            found = s.scalars(select(Holder.holder_id)).one()
        assert found == holder_id
        assert time.monotonic() - start < 1.0
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_parsed_device_key_is_reused_for_the_same_der(tmp_path: Path) -> None:
    der_text = device_key_text(new_device())
    from common.b64 import b64url_decode

    der = b64url_decode(der_text)
    assert load_device_key(der) is load_device_key(bytes(der))


@pytest.mark.postgres
def test_fetch_path_on_postgres_reissues_then_answers_unchanged(
    tmp_path: Path, fresh_postgres_url: str
) -> None:
    clock = ManualClock(time.time())
    ctx = make_context(tmp_path, "MO", database_url=fresh_postgres_url, clock=clock)
    try:
        dev = new_device()
        holder_id = enrol_directly(ctx, "M1000001", dev).holder_id
        client = create_app(ctx.config, context=ctx, start_workers=False).test_client()
        clock.advance(1)
        hdr = {"Authorization": device_header(dev, holder_id, "GET", PATH, ctx.now())}
        first = client.get(PATH, headers=hdr)
        assert first.status_code == 200
        writes = _writes(ctx)
        assert client.get(PATH, headers=hdr).get_json() == first.get_json()
        assert writes == []
        clock.advance(ctx.config.device_auth_reorder_s + 1)
        old = hdr
        hdr = {"Authorization": device_header(dev, holder_id, "GET", PATH, ctx.now())}
        assert client.get(PATH, headers=hdr).status_code == 200
        assert client.get(PATH, headers=old).status_code == 401
    finally:
        ctx.dispose()


@pytest.mark.parametrize("group_commit", [True, False])
def test_overlapping_fetches_arriving_out_of_order_are_both_answered(
    tmp_path: Path, group_commit: bool
) -> None:
    """A wallet's two overlapping fetches, the one signed a second later arriving first:
    the older one is answered too (it used to be refused 401 "older than one already
    used"), and it does not pull the holder's high-water timestamp back."""
    clock = ManualClock(time.time())
    ctx = make_context(tmp_path, "MO", clock=clock, group_commit=group_commit)
    dev = new_device()
    holder_id = enrol_directly(ctx, "M1000001", dev).holder_id
    client = create_app(ctx.config, context=ctx, start_workers=False).test_client()
    earlier = {"Authorization": device_header(dev, holder_id, "GET", PATH, ctx.now() + 1)}
    later = {"Authorization": device_header(dev, holder_id, "GET", PATH, ctx.now() + 2)}
    first = client.get(PATH, headers=later)
    assert first.status_code == 200
    overtaken = client.get(PATH, headers=earlier)
    assert overtaken.status_code == 200
    assert overtaken.get_json() == first.get_json()
    with ctx.sessions() as s:
        assert s.scalars(select(Holder.last_auth_ts)).one() == ctx.now() + 2


@pytest.mark.postgres
def test_unchanged_fetch_on_postgres_is_one_round_trip(
    tmp_path: Path, fresh_postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Asking again for an unchanged credential sends ONE statement to PostgreSQL: no
    pool ping, no BEGIN / ROLLBACK (autocommit read), holder, credential, outbox row and
    status inputs in one query. It was about ten round trips. Counted at the driver
    (psycopg's cursor), since the read no longer goes through SQLAlchemy's execution."""
    import psycopg

    clock = ManualClock(time.time())
    ctx = make_context(tmp_path, "MO", database_url=fresh_postgres_url, clock=clock)
    try:
        dev = new_device()
        holder_id = enrol_directly(ctx, "M1000001", dev).holder_id
        client = create_app(ctx.config, context=ctx, start_workers=False).test_client()
        hdr = {"Authorization": device_header(dev, holder_id, "GET", PATH, ctx.now())}
        first = client.get(PATH, headers=hdr)
        assert first.status_code == 200
        sent: list[tuple[str, bool]] = []  # statement, and whether psycopg autocommits
        execute = psycopg.Cursor.execute

        def recording(cur: Any, query: Any, *a: Any, **kw: Any) -> Any:
            sent.append((str(query), cur.connection.autocommit))
            return execute(cur, query, *a, **kw)

        monkeypatch.setattr(psycopg.Cursor, "execute", recording)
        again = client.get(PATH, headers=hdr)
        assert again.get_json() == first.get_json()
        assert len(sent) == 1, sent
        sql, autocommit = sent[0]
        assert sql.lstrip().upper().startswith("SELECT") and autocommit  # no BEGIN sent
    finally:
        ctx.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_unchanged_fetch_skips_sqlalchemy_execution(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    """The fetch's one read runs on a pooled driver connection (issuer.db.DriverRead):
    SQLAlchemy's execution layer (Connection, cache key, execution context, result
    metadata of 30 columns) cost about a third of an unchanged fetch's CPU. No statement
    passes through it, and the answer is the same."""
    url = request.getfixturevalue("fresh_postgres_url") if backend == "postgres" else ""
    ctx = make_context(tmp_path, "MO", database_url=url)
    try:
        dev = new_device()
        holder_id = enrol_directly(ctx, "M1000001", dev).holder_id
        client = create_app(ctx.config, context=ctx, start_workers=False).test_client()
        hdr = {"Authorization": device_header(dev, holder_id, "GET", PATH, ctx.now())}
        first = client.get(PATH, headers=hdr)
        assert first.status_code == 200
        through: list[str] = []
        event.listen(
            ctx.sessions.kw["bind"],
            "before_cursor_execute",
            lambda _c, _cur, sql, *_a: through.append(sql),
        )
        again = client.get(PATH, headers=hdr)
        assert again.status_code == 200 and again.get_json() == first.get_json()
        assert through == []
    finally:
        ctx.dispose()


@pytest.mark.postgres
def test_fetch_recovers_after_the_database_drops_its_connections(
    tmp_path: Path, fresh_postgres_url: str
) -> None:
    """PostgreSQL restarted (every connection of the pool killed): the fetch that finds
    its pooled connection dead is answered with a typed 503, the pool is discarded as
    SQLAlchemy's own disconnect handling does, and the next fetches are answered."""
    import sqlalchemy as sa

    ctx = make_context(tmp_path, "MO", database_url=fresh_postgres_url)
    admin = sa.create_engine(fresh_postgres_url, isolation_level="AUTOCOMMIT")
    try:
        dev = new_device()
        holder_id = enrol_directly(ctx, "M1000001", dev).holder_id
        client = create_app(ctx.config, context=ctx, start_workers=False).test_client()
        hdr = {"Authorization": device_header(dev, holder_id, "GET", PATH, ctx.now())}
        first = client.get(PATH, headers=hdr)
        assert first.status_code == 200
        with admin.connect() as c:
            c.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        dropped = client.get(PATH, headers=hdr)
        assert dropped.status_code == 503
        assert dropped.get_json()["error"] == "unavailable"
        for _ in range(3):
            again = client.get(PATH, headers=hdr)
            assert again.status_code == 200 and again.get_json() == first.get_json()
    finally:
        admin.dispose()
        ctx.dispose()


def test_unchanged_fetch_loads_no_orm_objects(tmp_path: Path) -> None:
    """The read path reads plain columns on a Core connection: no ORM session executes
    a statement for an unchanged credential (loading the holder and credential as ORM
    objects cost more CPU than the round trip itself)."""
    from sqlalchemy.orm import Session

    ctx, dev, holder_id, _clock = _setup(tmp_path)
    client = create_app(ctx.config, context=ctx, start_workers=False).test_client()
    hdr = {"Authorization": device_header(dev, holder_id, "GET", PATH, ctx.now())}
    first = client.get(PATH, headers=hdr)
    assert first.status_code == 200
    orm: list[object] = []
    listener = lambda state: orm.append(state.statement)  # noqa: E731
    event.listen(Session, "do_orm_execute", listener)
    try:
        again = client.get(PATH, headers=hdr)
    finally:
        event.remove(Session, "do_orm_execute", listener)
    assert again.get_json() == first.get_json()
    assert orm == []
