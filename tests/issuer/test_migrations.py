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
