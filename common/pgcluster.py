"""A throwaway PostgreSQL cluster on loopback: `initdb` in a temporary folder, a free
port, one database created, stopped (immediate) and removed at the end. The test
session's fixture (tests/conftest.py) and the benchmarks (bench/ledger.py,
bench/issue.py) start theirs here.

Durability is a parameter, since the two differ on purpose: the benchmarks keep
`fsync` and `synchronous_commit` on (their figures include the durable commit a
region's database pays); the tests turn `fsync` off (nothing they check survives a
power cut, and a loaded CI machine should not flush every commit). The server refuses
to run as root, so when this process is root (CI containers) every server command runs
as the `postgres` user (`runuser`), which owns the folder.

What it does not: tune the server for production (deploy/postgres/ does), or create
users or passwords (the cluster trusts loopback connections as `postgres`).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from common.serving import free_port

PG_BIN_CANDIDATES = (Path("/usr/lib/postgresql/15/bin"), Path("/usr/lib/postgresql/16/bin"))
MAX_CONNECTIONS = 200  # gunicorn workers x threads x pool, plus the anchoring workers
CREATEDB_WAIT_S = 30.0  # seconds; `pg_ctl -w` returns before a slow machine accepts
CREATEDB_RETRY_S = 0.3  # seconds between attempts
SERVER_USER = "postgres"


class PgClusterError(Exception):
    """The throwaway cluster could not be started (missing binaries, initdb or start
    failed); the message says which and quotes the server's own words."""


@dataclass(frozen=True)
class Durability:
    """What a commit waits for. `fsync=False` lets the server skip flushing to disk;
    `synchronous_commit=False` lets a commit return before its WAL is written."""

    fsync: bool = True
    synchronous_commit: bool = True

    def server_options(self) -> list[str]:
        # Both set explicitly, even when they equal the server's defaults.
        return [
            "-c", f"fsync={'on' if self.fsync else 'off'}",
            "-c", f"synchronous_commit={'on' if self.synchronous_commit else 'off'}",
        ]  # fmt: skip


DURABLE = Durability()  # what a region's database does (the benchmarks)
NO_FSYNC = Durability(fsync=False)  # the test session's cluster


def pg_bin() -> Path | None:
    """The folder of the PostgreSQL server binaries, or None when not installed."""
    return next((p for p in PG_BIN_CANDIDATES if (p / "initdb").exists()), None)


def _run(cmd: list[str], what: str) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise PgClusterError(f"{what} failed ({r.returncode}): {(r.stderr or r.stdout)[-500:]}")


@contextmanager
def throwaway_postgres(
    database: str = "healthbridge",
    *,
    durability: Durability = DURABLE,
    max_connections: int = MAX_CONNECTIONS,
    folder_prefix: str = "hb-pg-",
) -> Iterator[str]:
    """Start a cluster, create `database`, yield its SQLAlchemy URL; stop and remove
    everything on exit. Raises PgClusterError when it cannot (no binaries: check
    `pg_bin()` first to skip instead)."""
    binaries = pg_bin()
    if binaries is None:
        raise PgClusterError(
            f"no PostgreSQL server binaries in {', '.join(map(str, PG_BIN_CANDIDATES))}"
        )
    folder = Path(tempfile.mkdtemp(prefix=folder_prefix))
    data = folder / "data"
    prefix: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root
        pw = pwd.getpwnam(SERVER_USER)
        os.chown(folder, pw.pw_uid, pw.pw_gid)
        prefix = ["runuser", "-u", SERVER_USER, "--"]
    port = free_port()
    started = False
    try:
        _run(
            [*prefix, str(binaries / "initdb"), "-D", str(data), "-U", SERVER_USER,
             "-A", "trust", "--no-sync", "-E", "UTF8"],
            "initdb",
        )  # fmt: skip
        options = [
            f"-p {port}", f"-k {folder}", "-c listen_addresses=127.0.0.1",
            f"-c max_connections={max_connections}",
            " ".join(durability.server_options()),
        ]  # fmt: skip
        _run(
            [*prefix, str(binaries / "pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"),
             "-w", "start", "-o", " ".join(options)],
            "pg_ctl start",
        )  # fmt: skip
        started = True
        createdb = [*prefix, str(binaries / "createdb"), "-h", "127.0.0.1", "-p", str(port),
                    "-U", SERVER_USER, database]  # fmt: skip
        deadline = time.monotonic() + CREATEDB_WAIT_S
        while True:
            r = subprocess.run(createdb, capture_output=True, text=True)
            if r.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise PgClusterError(f"createdb {database} failed: {r.stderr[-500:]}")
            time.sleep(CREATEDB_RETRY_S)
        yield f"postgresql+psycopg://{SERVER_USER}@127.0.0.1:{port}/{database}"
    finally:
        if started:
            subprocess.run(
                [*prefix, str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                capture_output=True,
            )
        shutil.rmtree(folder, ignore_errors=True)
