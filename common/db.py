"""The one SQLAlchemy engine factory: SQLite (the embedded default) or PostgreSQL.

Every SQLite database is created mode 0600 (common.private_files) and gets WAL
(readers never block the writer), foreign keys, a busy timeout (a writer waits for
the lock instead of failing), and its folder created;
`SqliteTuning` says how durable commits are and whether writers take the lock up front
(BEGIN IMMEDIATE, so two writers queue instead of failing on a read-to-write lock
upgrade; a connection with the `READ_ONLY` execution option reads a snapshot instead).
PostgreSQL engines check connections before use and keep a bounded pool. No schema,
no migrations: each component runs its own Alembic history.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from common.private_files import private_sqlite, sqlite_path_of

# Execution option marking a connection that only reads (see `SqliteTuning`).
READ_ONLY = "hb_read_only"
PG_POOL_SIZE = 10  # connections kept open per engine
PG_MAX_OVERFLOW = 20  # extra connections under load


@dataclass(frozen=True)
class SqliteTuning:
    # NORMAL in WAL keeps every commit across a process crash (only an OS crash may lose
    # the last ones); FULL also survives power loss (https://sqlite.org/pragma.html#pragma_synchronous).
    synchronous: str = "NORMAL"
    busy_timeout_s: float = 10.0  # seconds a connection waits on a locked database
    begin_immediate: bool = False

    def __post_init__(self) -> None:
        if self.synchronous not in {"NORMAL", "FULL"}:
            raise ValueError(f"expected synchronous NORMAL or FULL, found {self.synchronous!r}")


def make_engine(
    url: str,
    sqlite: SqliteTuning | None = None,
    *,
    pg_pre_ping: bool = True,
    pg_options: str | None = None,
) -> Engine:
    """An engine for `url`; raises SQLAlchemyError or ValueError on a bad URL.
    `pg_pre_ping=False` saves a round trip per checkout where a hot path prefers one
    failed request after a server restart to a ping on every request; `pg_options`
    are server settings for every PostgreSQL session (libpq `options`)."""
    if not url.startswith("sqlite"):
        connect_args = {} if pg_options is None else {"options": pg_options}
        return sa.create_engine(
            url,
            pool_pre_ping=pg_pre_ping,
            pool_size=PG_POOL_SIZE,
            max_overflow=PG_MAX_OVERFLOW,
            connect_args=connect_args,
        )
    tuning = sqlite or SqliteTuning()
    path = sqlite_path_of(url)
    if path is not None:
        # Databases hold personal data (the issuer's) or state nobody else should read:
        # the file exists 0600 (with its folder) before SQLite opens it, and its WAL /
        # SHM files inherit that mode.
        private_sqlite(path)
    engine = sa.create_engine(
        url, connect_args={"check_same_thread": False, "timeout": tuning.busy_timeout_s}
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        if tuning.begin_immediate:
            # Let the "begin" hook below decide when a transaction starts.
            dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={tuning.synchronous}")
        cur.execute(f"PRAGMA busy_timeout={int(tuning.busy_timeout_s * 1000)}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    if tuning.begin_immediate:

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            if conn.get_execution_options().get(READ_ONLY):
                conn.exec_driver_sql("BEGIN")
            else:
                conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def redact(url: str) -> str:
    """The URL with any password hidden (for messages and logs)."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except (SQLAlchemyError, ValueError):
        return "<unparseable database URL>"
