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
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT.parent / "shared" / "vectors"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
PG_BIN_CANDIDATES = (Path("/usr/lib/postgresql/15/bin"), Path("/usr/lib/postgresql/16/bin"))


def missing(what: str) -> None:
    """Fail in CI, skip elsewhere, always saying what is missing."""
    if IN_CI:
        pytest.fail(f"required for CI but missing: {what}")
    pytest.skip(f"missing: {what}")


@pytest.fixture(scope="session")
def vectors() -> Path:
    """The shared public vectors folder (never copied into the project)."""
    if not VECTORS.is_dir():
        missing(f"shared vectors at {VECTORS}")
    return VECTORS


def vector_path(*parts: str) -> Path:
    """A path inside the shared vectors; fails in CI, skips elsewhere, when absent."""
    p = VECTORS.joinpath(*parts)
    if not p.exists():
        missing(f"shared vector data {p}")
    return p


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


class RedisServer:
    """Debian's redis-server on a free loopback port in a temp folder, no persistence."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            missing("Debian's redis-server (apt-get install redis-server)")
            raise AssertionError("unreachable")
        self.workdir = Path(tempfile.mkdtemp(prefix="hb-redis-"))
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = subprocess.Popen(
            [
                binary, "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.workdir), "--save", "", "--appendonly", "no",
                "--protected-mode", "yes", "--logfile", str(self.workdir / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as c:
                    c.sendall(b"PING\r\n")
                    if c.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.workdir, ignore_errors=True)


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


def chromium_path() -> str:
    """Debian's chromium for Playwright (`executable_path`); never a downloaded build."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        missing("Debian's chromium (apt-get install chromium)")
        raise AssertionError("unreachable")
    return path


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
