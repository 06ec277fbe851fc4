"""Databases and secrets exist mode 0600 from their first byte, whatever the umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from common.private_files import (
    InsecureFileError,
    load_or_create_secret,
    private_sqlite,
    sqlite_path_of,
)
from ledger.node.storage import make_engine


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


@pytest.fixture()
def open_umask() -> Iterator[None]:
    """The laxest umask a service could inherit: files would be 0666."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def test_sqlite_database_and_its_wal_are_private(tmp_path: Path, open_umask: None) -> None:
    db = tmp_path / "sub" / "ledger.db"
    engine = make_engine(f"sqlite:///{db}")
    with engine.begin() as c:
        c.exec_driver_sql("PRAGMA journal_mode=WAL")
        c.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        c.exec_driver_sql("INSERT INTO t VALUES (1)")
    assert mode(db) == 0o600
    for side in ("-wal", "-shm"):
        p = db.with_name(db.name + side)
        if p.exists():
            assert mode(p) == 0o600, side
    engine.dispose()


def test_existing_world_readable_database_is_tightened(tmp_path: Path) -> None:
    db = tmp_path / "issuer.db"
    sa.create_engine(f"sqlite:///{db}").connect().close()
    db.touch()
    db.chmod(0o644)
    wal = db.with_name(db.name + "-wal")
    wal.write_bytes(b"")
    wal.chmod(0o644)
    private_sqlite(db)
    assert mode(db) == 0o600 and mode(wal) == 0o600


def test_secret_is_created_private_and_reloaded(tmp_path: Path, open_umask: None) -> None:
    path = tmp_path / "keys" / "scans.key"
    first = load_or_create_secret(path)
    assert len(first) == 32 and mode(path) == 0o600
    assert load_or_create_secret(path) == first
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_world_readable_or_empty_secret_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "k"
    load_or_create_secret(path)
    path.chmod(0o644)
    with pytest.raises(InsecureFileError, match="0600"):
        load_or_create_secret(path)
    path.chmod(0o600)
    path.write_bytes(b"")
    with pytest.raises(InsecureFileError):
        load_or_create_secret(path)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:////var/lib/hb/ledger.db", Path("/var/lib/hb/ledger.db")),
        ("sqlite:///rel/x.db?timeout=5", Path("rel/x.db")),
        ("sqlite:///:memory:", None),
        ("sqlite://", None),
        ("postgresql+psycopg://u:p@h/db", None),
    ],
)
def test_sqlite_path_of_url(url: str, expected: Path | None) -> None:
    assert sqlite_path_of(url) == expected
