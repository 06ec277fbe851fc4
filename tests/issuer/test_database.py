"""The Alembic migrations build exactly the models' schema, on SQLite and PostgreSQL,
and the issuance flow runs on PostgreSQL as on SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from issuer import anchor
from issuer.db import make_engine, migrate
from issuer.models import Base, CredentialRow
from issuer.testing import enrol_directly, make_context, new_device


def own_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """Tables of other migrations in this database (the console's) are not drift."""
    table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
    return table is None or table in Base.metadata.tables


def schema_drift(url: str) -> list[object]:
    engine = make_engine(url)
    try:
        migrate(engine)
        migrate(engine)  # idempotent
        with engine.connect() as conn:
            mc = MigrationContext.configure(conn, opts={"include_object": own_object})
            return list(compare_metadata(mc, Base.metadata))
    finally:
        engine.dispose()


def test_migrations_match_models_on_sqlite(tmp_path: Path) -> None:
    assert schema_drift(f"sqlite:///{tmp_path / 'm.db'}") == []


@pytest.mark.postgres
def test_migrations_match_models_on_postgres(fresh_postgres_url: str) -> None:
    assert schema_drift(fresh_postgres_url) == []


@pytest.mark.postgres
def test_enrolment_issuance_and_anchoring_on_postgres(
    tmp_path: Path, fresh_postgres_url: str
) -> None:
    ctx = make_context(tmp_path, "GD", database_url=fresh_postgres_url)
    try:
        for doc in ("G10000001", "G10000002"):
            enrol_directly(ctx, doc, new_device())
        ledger = anchor.InMemoryLedger()
        assert anchor.drain(ctx, ledger) == 3
        with ctx.sessions() as s:
            assert sorted(c.status_index for c in s.query(CredentialRow)) == [1, 2]
    finally:
        ctx.dispose()
