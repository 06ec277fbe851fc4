"""Status indices on PostgreSQL: issuer replicas reserve them without waiting for each
other's commits, never the same one twice, and an upgrade continues after the last
index the counter handed out (migration 0830)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from issuer.context import IssuerContext
from issuer.db import make_engine, migrate
from issuer.issuance import next_status_indices
from issuer.testing import make_context

pytestmark = pytest.mark.postgres


@pytest.fixture
def ctx(tmp_path: Path, fresh_postgres_url: str) -> Iterator[IssuerContext]:
    c = make_context(tmp_path, "GD", database_url=fresh_postgres_url)
    yield c
    c.dispose()


def test_a_replica_reserves_indices_while_another_is_still_committing(
    ctx: IssuerContext,
) -> None:
    # Replica A has reserved its group's indices and is still in its transaction (its
    # signatures, inserts and durable commit to come). Replica B must not wait for it:
    # with the counter row's lock it waited until A's commit, so every issuance of the
    # region queued behind the one before, on every host.
    a = ctx.sessions()
    a.begin()
    held = list(next_status_indices(a, 16))
    try:
        with ctx.sessions.begin() as b:
            b.execute(text("SET LOCAL lock_timeout = '2s'"))
            got = list(next_status_indices(b, 16))
    finally:
        a.commit()
        a.close()
    assert not set(held) & set(got)
    assert got == sorted(got) and len(set(got)) == 16


def test_concurrent_reservations_never_hand_out_an_index_twice(ctx: IssuerContext) -> None:
    seen: list[int] = []
    lock = threading.Lock()

    def reserve() -> None:
        for n in (1, 7, 16, 3) * 5:
            with ctx.sessions.begin() as s:
                got = next_status_indices(s, n)
            with lock:
                seen.extend(got)

    threads = [threading.Thread(target=reserve) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 6 * 5 * (1 + 7 + 16 + 3)
    assert len(set(seen)) == len(seen)


def test_an_upgrade_continues_after_the_counter(fresh_postgres_url: str) -> None:
    from alembic import command
    from alembic.config import Config

    from issuer.db import MIGRATIONS_DIR

    engine = make_engine(fresh_postgres_url)
    try:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        with engine.connect() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0820_outbox_quarantined_index")
            conn.execute(text("INSERT INTO counters (name, value) VALUES ('status_index', 4096)"))
            conn.commit()
        migrate(engine)
        with engine.begin() as conn:
            got = conn.execute(text("SELECT nextval('status_index_seq')")).scalar()
        assert got == 4097
    finally:
        engine.dispose()
