"""The issuer's run-time context: config, database sessions, key files, clock, delivery.

Everything with I/O that the service layer needs, gathered in one object so that
tests swap the clock (`ManualClock`) and the code delivery (`InMemoryDelivery`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, sessionmaker

from issuer.config import IssuerConfig
from issuer.db import open_db, read_options
from issuer.delivery import CodeDelivery, FileDelivery
from issuer.keystore import KeyStore


class Clock(Protocol):
    def now(self) -> float: ...


class SystemClock:
    def now(self) -> float:
        return time.time()


@dataclass
class ManualClock:
    t: float = 1_800_000_000.0

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@dataclass
class IssuerContext:
    config: IssuerConfig
    sessions: sessionmaker[Session]
    keys: KeyStore
    clock: Clock = field(default_factory=SystemClock)
    delivery: CodeDelivery | None = None

    def __post_init__(self) -> None:
        if self.delivery is None:
            self.delivery = FileDelivery(self.config.delivery_file, self.keys.delivery_ref)

    @classmethod
    def open(
        cls,
        config: IssuerConfig,
        clock: Clock | None = None,
        delivery: CodeDelivery | None = None,
        run_migrations: bool = True,
    ) -> IssuerContext:
        return cls(
            config=config,
            sessions=open_db(config.database_url, run_migrations=run_migrations),
            keys=KeyStore(config),
            clock=clock or SystemClock(),
            delivery=delivery,
        )

    def now(self) -> int:
        return int(self.clock.now())

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """A session for reads only: no write lock, nothing written through it is ever
        committed. SQLite: one snapshot, rolled back at the end. PostgreSQL: autocommit,
        one snapshot per statement (issuer.db.read_options)."""
        with self.sessions() as s:
            s.connection(execution_options=read_options(self.config.database_url))
            yield s

    @contextmanager
    def read_connection(self) -> Iterator[Connection]:
        """A Core connection for reads only, as `read_session` but without an ORM
        session (the credential fetch reads plain columns: issuer.fetch_reads.fetch_state)."""
        engine = self.sessions.kw["bind"]
        with engine.connect() as conn:
            yield conn.execution_options(**read_options(self.config.database_url))

    @property
    def region(self) -> str:
        return self.config.region

    def dispose(self) -> None:
        bind = self.sessions.kw.get("bind")
        if bind is not None:
            bind.dispose()
