"""Session-wide test fixtures: shared vectors, a throwaway PostgreSQL 15 cluster and a
throwaway Redis server.

The PostgreSQL fixture starts a real server for the test session through
common.pgcluster (the benchmarks' too): `initdb` in a temporary folder, run as the
`postgres` user when the tests run as root (the server refuses to run as root),
listening on a free loopback port, fsync off. In CI (`CI=true`) a
missing server or missing shared vectors fail the run; elsewhere they skip with a
message that says what is missing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.pgcluster import NO_FSYNC, pg_bin, throwaway_postgres
from tests.support.environment import VECTORS, missing
from tests.support.redis_server import RedisServer


@pytest.fixture(scope="session")
def vectors() -> Path:
    """The shared public vectors folder (never copied into the project)."""
    if not VECTORS.is_dir():
        missing(f"shared vectors at {VECTORS}")
    return VECTORS


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """Start a throwaway PostgreSQL cluster (common.pgcluster, fsync off) and yield a
    SQLAlchemy URL to a fresh database."""
    external = os.environ.get("HEALTHBRIDGE_TEST_POSTGRES_URL")
    if external:
        yield external
        return
    if pg_bin() is None:
        missing("PostgreSQL server binaries (Debian package postgresql-15)")
        return
    with throwaway_postgres("healthbridge", durability=NO_FSYNC) as url:
        yield url


@pytest.fixture()
def fresh_postgres_url(postgres_url: str) -> Iterator[str]:
    """A brand-new, empty database in the session cluster, dropped afterwards."""
    import sqlalchemy as sa

    name = f"t{os.getpid()}_{time.monotonic_ns()}"
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    base = postgres_url.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server for the test session (as PostgreSQL is), stopped at the end."""
    server = RedisServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture()
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """The session Redis, emptied before each test that uses it."""
    import redis

    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    client.close()
    yield redis_server.url
