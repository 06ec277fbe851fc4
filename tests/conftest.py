"""Session-wide test fixtures: shared vectors, a throwaway PostgreSQL 15 cluster and a
throwaway Redis server.

The PostgreSQL fixture starts a real server for the test session: `initdb` in a
temporary folder, run as the `postgres` user when the tests run as root (the server
refuses to run as root), listening on a free loopback port. In CI (`CI=true`) a
missing server or missing shared vectors fail the run; elsewhere they skip with a
message that says what is missing.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.serving import free_port
from tests.support.environment import VECTORS, missing
from tests.support.redis_server import RedisServer

PG_BIN_CANDIDATES = (Path("/usr/lib/postgresql/15/bin"), Path("/usr/lib/postgresql/16/bin"))


@pytest.fixture(scope="session")
def vectors() -> Path:
    """The shared public vectors folder (never copied into the project)."""
    if not VECTORS.is_dir():
        missing(f"shared vectors at {VECTORS}")
    return VECTORS


def _pg_bin() -> Path | None:
    for cand in PG_BIN_CANDIDATES:
        if (cand / "initdb").exists():
            return cand
    return None


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """Start a throwaway PostgreSQL cluster and yield a SQLAlchemy URL to a fresh database."""
    external = os.environ.get("HEALTHBRIDGE_TEST_POSTGRES_URL")
    if external:
        yield external
        return
    pg_bin = _pg_bin()
    if pg_bin is None:
        missing("PostgreSQL server binaries (Debian package postgresql-15)")
        return
    as_root = os.geteuid() == 0
    workdir = Path(tempfile.mkdtemp(prefix="hb-pg-"))
    data = workdir / "data"
    port = free_port()
    prefix: list[str] = []
    if as_root:
        pw = pwd.getpwnam("postgres")
        os.chown(workdir, pw.pw_uid, pw.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [
            *prefix,
            str(pg_bin / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "--no-sync",
            "-E",
            "UTF8",
        ],
        check=True,
        capture_output=True,
    )
    log = workdir / "server.log"
    subprocess.run(
        [
            *prefix,
            str(pg_bin / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(log),
            "-w",
            "start",
            "-o",
            f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=200",
        ],
        check=True,
        capture_output=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            r = subprocess.run(
                [
                    *prefix,
                    str(pg_bin / "createdb"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "-U",
                    "postgres",
                    "healthbridge",
                ],
                capture_output=True,
            )
            if r.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/healthbridge"
    finally:
        subprocess.run(
            [*prefix, str(pg_bin / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(workdir, ignore_errors=True)


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
