"""Opening the issuer database: engine set-up for SQLite (WAL) or PostgreSQL, and the
Alembic migrations run at start-up. No domain logic.
"""

from __future__ import annotations

from collections import namedtuple
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from common import db as common_db
from common.db import READ_ONLY, SqliteTuning
from issuer import activity

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
    sessions = sessionmaker(engine, expire_on_commit=False)
    activity.track(sessions)  # hourly counts written with the rows they count
    return sessions


class DriverRead:
    """One Core SELECT, compiled once for an engine's dialect and run straight on a
    pooled DBAPI connection, without SQLAlchemy's execution layer.

    Why: the credential fetch's one read (issuer.fetch_reads.FETCH_STATE, 30 columns)
    spent more CPU in SQLAlchemy's per-execution bookkeeping (a Connection object, the
    isolation level set and reset on every checkout, the statement's cache key, an
    execution context, result metadata built from 30 column descriptions) than in the
    driver's round trip: 0.3-0.5 ms of the 0.95-1.55 ms a refresh cost in-process
    (docs/performance.md). Rows are named tuples of the statement's column keys, with
    no result processing: only for columns whose driver values are what callers read
    (integers, text, bytes). The statement's own bound literals are sent as compiled.

    Isolation as `read_options`: on PostgreSQL the one statement runs in autocommit
    (its own snapshot, no BEGIN / ROLLBACK round trips); on SQLite the connection is in
    the driver's autocommit mode (the issuer's engine starts transactions itself), so a
    lone SELECT reads one WAL snapshot and takes no write lock. A driver error is raised
    as SQLAlchemy's DBAPIError, which callers already handle; a connection the dialect
    finds lost is discarded together with the rest of the pool, as SQLAlchemy's own
    disconnect handling does (no pre-ping: issuer.db.make_engine).
    """

    def __init__(self, engine: Engine, statement: Select[*tuple[Any, ...]]) -> None:
        self.engine = engine
        compiled = statement.compile(dialect=engine.dialect)
        self._compiled = compiled
        self._sql = compiled.string
        self._autocommit = engine.dialect.name == "postgresql"
        self._row: Any = namedtuple("DriverRow", list(statement.selected_columns.keys()))  # type: ignore[misc]

    def _args(self, params: dict[str, Any]) -> Any:
        values = self._compiled.construct_params(params)
        if self._compiled.positional:  # SQLite's qmark style
            return tuple(values[k] for k in self._compiled.positiontup or ())
        return values

    def rows(self, params: dict[str, Any]) -> list[Any]:
        args = self._args(params)
        conn = self.engine.raw_connection()
        try:
            try:
                if self._autocommit:
                    conn.driver_connection.autocommit = True  # type: ignore[union-attr]
                cursor = conn.cursor()
                try:
                    cursor.execute(self._sql, args)
                    got = cursor.fetchall()
                finally:
                    cursor.close()
                if self._autocommit:
                    conn.driver_connection.autocommit = False  # type: ignore[union-attr]
            except self.engine.dialect.loaded_dbapi.Error as e:
                dialect = self.engine.dialect
                lost = dialect.is_disconnect(e, conn.dbapi_connection, None)
                conn.invalidate(e)
                if lost:
                    self.engine.dispose(close=False)  # the others died with the server too
                raise DBAPIError.instance(
                    self._sql,
                    args,
                    e,
                    dialect.loaded_dbapi.Error,
                    dialect=dialect,
                    connection_invalidated=lost,
                ) from e
        finally:
            conn.close()
        return [self._row._make(r) for r in got]
