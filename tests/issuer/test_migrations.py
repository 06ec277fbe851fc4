"""The issuer's Alembic history has exactly one head, and `upgrade head` on an empty
database builds exactly the models' schema (every table of the issuer and its
console, nothing left over such as a dropped table), on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from issuer.admin import models as console_models  # noqa: F401 - registers its tables
from issuer.db import MIGRATIONS_DIR, make_engine, migrate
from issuer.models import Base


def scripts() -> ScriptDirectory:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ScriptDirectory.from_config(cfg)


def test_migrations_have_exactly_one_head() -> None:
    heads = scripts().get_heads()
    assert len(heads) == 1, f"expected one Alembic head, found {heads}"


def drift_after_upgrade(url: str) -> list[object]:
    engine = make_engine(url)
    try:
        migrate(engine)
        with engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_heads()
            assert current == tuple(scripts().get_heads())
            # No include_object filter: a table in the database that no model declares
            # is drift as much as a missing one.
            return list(compare_metadata(MigrationContext.configure(conn), Base.metadata))
    finally:
        engine.dispose()


def test_upgrade_head_on_empty_sqlite_yields_the_models_schema(tmp_path: Path) -> None:
    assert drift_after_upgrade(f"sqlite:///{tmp_path / 'empty.db'}") == []


@pytest.mark.postgres
def test_upgrade_head_on_empty_postgres_yields_the_models_schema(fresh_postgres_url: str) -> None:
    assert drift_after_upgrade(fresh_postgres_url) == []


def _upgrade(engine: object, target: str) -> None:
    from alembic import command

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.connect() as conn:  # type: ignore[attr-defined]
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, target)
        conn.commit()


@pytest.mark.postgres
def test_an_interrupted_concurrent_index_build_is_redone_on_the_next_start(
    fresh_postgres_url: str,
) -> None:
    # 0810 builds its index CONCURRENTLY, outside a transaction: a build cut short
    # leaves an INVALID index of that name behind, which the next start must replace
    # rather than keep (an invalid index is never used) or trip over.
    from sqlalchemy import text

    engine = make_engine(fresh_postgres_url)
    try:
        _upgrade(engine, "0800_activity_hourly")
        with engine.connect() as conn:
            conn.execute(
                text(
                    "INSERT INTO holders (id, holder_id, device_key, via, created_at,"
                    " last_auth_ts) VALUES (1, 'h', '\\x00', 'enrolment', 0, 0)"
                )
            )
            for i in (1, 2):
                conn.execute(
                    text(
                        "INSERT INTO credentials (credential_id, status_index, holder_pk, kid,"
                        " colour, basis, rule, issued_at, expires_at, digest, jws, state)"
                        " VALUES (:c, :i, 1, 'k', 'green', 'test', 'R4', 0, 1, :d, 'j', 'active')"
                    ),
                    {"c": f"c{i}", "i": i, "d": bytes([i])},
                )
            conn.commit()
        auto = engine.execution_options(isolation_level="AUTOCOMMIT")
        with auto.connect() as conn, pytest.raises(Exception, match="could not create unique"):
            # Fails on the two rows of holder 1, as a cut build would: INVALID, same name.
            conn.execute(
                text(
                    "CREATE UNIQUE INDEX CONCURRENTLY ix_credentials_holder_state_id"
                    " ON credentials (holder_pk)"
                )
            )
        migrate(engine)
        with engine.connect() as conn:
            valid, columns = conn.execute(
                text(
                    "SELECT i.indisvalid, pg_get_indexdef(i.indexrelid) FROM pg_index i"
                    " JOIN pg_class c ON c.oid = i.indexrelid"
                    " WHERE c.relname = 'ix_credentials_holder_state_id'"
                )
            ).one()
        assert valid
        assert "(holder_pk, state, id)" in columns
    finally:
        engine.dispose()
    assert drift_after_upgrade(fresh_postgres_url) == []
