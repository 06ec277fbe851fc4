"""Opening the issuer database: engine set-up for SQLite (WAL) or PostgreSQL, and the
Alembic migrations run at start-up. No domain logic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_S = 30  # seconds a writer waits for the lock before failing
# Execution option marking a connection that only reads: on SQLite its transaction
# starts with a deferred BEGIN (a WAL snapshot, no write lock), so authentication and
# unchanged-credential answers neither queue behind writers nor block them.
READ_ONLY = "hb_read_only"


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy's "begin" below decide when a transaction starts.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")  # a committed issuance survives power loss
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            # BEGIN IMMEDIATE takes the write lock up front, so two writers queue on the
            # busy timeout instead of failing on a read-to-write upgrade. A connection
            # marked READ_ONLY reads a snapshot instead (a write there fails loudly:
            # SQLite refuses the lock upgrade while another writer holds it).
            if conn.get_execution_options().get(READ_ONLY):
                conn.exec_driver_sql("BEGIN")
            else:
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    # No pool_pre_ping: it cost one round trip per request (a third of the read path's).
    # A connection that died with the server fails its one request with a typed 503,
    # and SQLAlchemy then invalidates the whole pool (disconnect detection), so the
    # next requests reconnect.
    return create_engine(url, pool_size=10, max_overflow=20)


def read_options(url: str) -> dict[str, Any]:
    """Execution options of a read-only session. On PostgreSQL it runs in autocommit:
    every statement reads its own committed snapshot and no BEGIN / ROLLBACK round
    trips are sent; the read path is written so that each decision rests on one
    statement (issuer.issuance.FETCH_STATE: one round trip for an unchanged credential)."""
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
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    if run_migrations:
        migrate(engine)
    return sessionmaker(engine, expire_on_commit=False)
