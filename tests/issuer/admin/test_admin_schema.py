"""The console's Alembic revision builds exactly its models' tables, and the audit
table's append-only trigger holds, on SQLite and on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.orm import sessionmaker

from issuer import audit
from issuer.admin import models as console_models
from issuer.audit import AuditEvent, Channel, Outcome
from issuer.db import make_engine, migrate
from issuer.models import AdminAuditRecord, Base

CONSOLE_TABLES = {t.name for t in Base.metadata.sorted_tables if t.name.startswith("admin_")} | {
    "admin_audit"
}


def console_object(obj: object, name: str | None, type_: str, *_args: object) -> bool:
    table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
    return table in CONSOLE_TABLES


def check(url: str) -> None:
    assert AdminAuditRecord.__tablename__ in CONSOLE_TABLES
    assert console_models.AdminAccount.__tablename__ in CONSOLE_TABLES
    engine = make_engine(url)
    try:
        migrate(engine)
        with engine.connect() as conn:
            mc = MigrationContext.configure(conn, opts={"include_object": console_object})
            assert list(compare_metadata(mc, Base.metadata)) == []
        sessions = sessionmaker(engine)
        ev = AuditEvent("alice", "GD", "revoke", "GD:1", "", "127.0.0.1", Channel.CLI, Outcome.OK)
        audit.record(sessions, ev, 1)
        for stmt in ("UPDATE admin_audit SET actor = 'mallory'", "DELETE FROM admin_audit"):
            with pytest.raises(Exception, match="append-only"), engine.begin() as conn:
                conn.execute(text(stmt))
        with sessions() as s:
            assert audit.verify_all(s) == 1
    finally:
        engine.dispose()


def test_console_migration_matches_models_on_sqlite(tmp_path: Path) -> None:
    check(f"sqlite:///{tmp_path / 'console.db'}")


@pytest.mark.postgres
def test_console_migration_matches_models_on_postgres(fresh_postgres_url: str) -> None:
    check(fresh_postgres_url)
