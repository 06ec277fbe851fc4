"""Opening the issuer database: engine set-up for SQLite (WAL) or PostgreSQL, and the
Alembic migrations run at start-up. No domain logic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from common import db as common_db
from common.db import READ_ONLY, SqliteTuning

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_S = 30  # seconds a writer waits for the lock before failing
# common.db.READ_ONLY marks a connection that only reads: on SQLite its transaction
# starts with a deferred BEGIN (a WAL snapshot, no write lock), so authentication and
# unchanged-credential answers neither queue behind writers nor block them.


def make_engine(url: str) -> Engine:
    """The issuer's engine (common.db): on SQLite a committed issuance survives power
    loss (synchronous=FULL) and writers take the lock up front (BEGIN IMMEDIATE). On
    PostgreSQL, no pool_pre_ping: it cost one round trip per request (a third of the
    read path's); a connection that died with the server fails its one request with a
    typed 503, and SQLAlchemy then invalidates the whole pool (disconnect detection),
    so the next requests reconnect."""
    return common_db.make_engine(
        url,
        SqliteTuning(
            synchronous="FULL", busy_timeout_s=SQLITE_BUSY_TIMEOUT_S, begin_immediate=True
        ),
        pg_pre_ping=False,
    )


def read_options(url: str) -> dict[str, Any]:
    """Execution options of a read-only session. On PostgreSQL it runs in autocommit:
    every statement reads its own committed snapshot and no BEGIN / ROLLBACK round
    trips are sent; the read path is written so that each decision rests on one
    statement (issuer.fetch_reads.FETCH_STATE: one round trip for an unchanged credential)."""
    if url.startswith("sqlite"):
        return {READ_ONLY: True}
    return {READ_ONLY: True, "isolation_level": "AUTOCOMMIT"}


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (idempotent)."""
    from alembic import command  # imported here: workers that skip migrations start faster
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
        conn.commit()


def open_db(url: str, run_migrations: bool = True) -> sessionmaker[Session]:
    engine = make_engine(url)
    if run_migrations:
        migrate(engine)
    return sessionmaker(engine, expire_on_commit=False)
