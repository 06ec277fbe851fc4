"""A throwaway PostgreSQL cluster for the benchmarks: initdb in a temporary folder, a
free loopback port, stopped (immediate) and removed at the end.

Unlike the test fixture it keeps `fsync` and `synchronous_commit` on: the figures are
meant to include the durable commit a region's database pays. Returns None with the
reason when the server binaries are missing, so a benchmark can skip its PostgreSQL
part and say why.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PG_BIN_CANDIDATES = (Path("/usr/lib/postgresql/15/bin"), Path("/usr/lib/postgresql/16/bin"))
MAX_CONNECTIONS = 200  # gunicorn workers x threads x pool, plus the anchoring workers


def pg_bin() -> Path | None:
    return next((p for p in PG_BIN_CANDIDATES if (p / "initdb").exists()), None)


@contextmanager
def throwaway_postgres(database: str = "bench", fsync: bool = True) -> Iterator[str | None]:
    """Yield a SQLAlchemy URL to a new database in a new cluster (None: no binaries)."""
    binaries = pg_bin()
    if binaries is None:
        yield None
        return
    folder = Path(tempfile.mkdtemp(prefix="hb-bench-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root
        pw = pwd.getpwnam("postgres")
        os.chown(folder, pw.pw_uid, pw.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = folder / "data"
    subprocess.run(
        [
            *prefix,
            str(binaries / "initdb"),
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
    opts = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1"
    opts += f" -c max_connections={MAX_CONNECTIONS}"
    if not fsync:
        opts += " -c fsync=off"
    subprocess.run(
        [
            *prefix,
            str(binaries / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(folder / "log"),
            "-w",
            "start",
            "-o",
            opts,
        ],
        check=True,
        capture_output=True,
    )
    try:
        subprocess.run(
            [
                *prefix,
                str(binaries / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                "postgres",
                database,
            ],
            check=True,
            capture_output=True,
        )
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/{database}"
    finally:
        subprocess.run(
            [*prefix, str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(folder, ignore_errors=True)
