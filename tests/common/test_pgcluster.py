"""common.pgcluster: the one throwaway PostgreSQL cluster, for the test session and the
benchmarks, started with the durability asked for (as the `postgres` user when run as
root) and gone without a trace afterwards."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import sqlalchemy as sa

from common import pgcluster
from common.pgcluster import DURABLE, Durability, PgClusterError, throwaway_postgres

pytestmark = pytest.mark.postgres


def _settings(url: str) -> dict[str, str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as c:
            return {
                name: str(c.execute(sa.text(f"SHOW {name}")).scalar_one())
                for name in ("fsync", "synchronous_commit", "server_version")
            }
    finally:
        engine.dispose()


def test_benchmark_cluster_keeps_fsync_and_synchronous_commit_on_and_leaves_nothing() -> None:
    if pgcluster.pg_bin() is None:
        pytest.skip("PostgreSQL server binaries are not installed")
    prefix = "hb-pg-test-durable-"
    with throwaway_postgres("benchlike", durability=DURABLE, folder_prefix=prefix) as url:
        assert url.endswith("/benchlike")
        got = _settings(url)
        assert (got["fsync"], got["synchronous_commit"]) == ("on", "on")
        assert list(Path(tempfile.gettempdir()).glob(prefix + "*"))
    assert not list(Path(tempfile.gettempdir()).glob(prefix + "*"))


def test_test_session_cluster_runs_without_fsync(postgres_url: str) -> None:
    if os.environ.get("HEALTHBRIDGE_TEST_POSTGRES_URL"):
        pytest.skip("an external server: its settings are its operator's")
    got = _settings(postgres_url)
    assert (got["fsync"], got["synchronous_commit"]) == ("off", "on")


def test_durability_options_are_explicit() -> None:
    assert Durability(fsync=False, synchronous_commit=False).server_options() == [
        "-c", "fsync=off", "-c", "synchronous_commit=off",
    ]  # fmt: skip
    assert DURABLE.server_options() == ["-c", "fsync=on", "-c", "synchronous_commit=on"]


def test_missing_binaries_raise_a_typed_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pgcluster, "PG_BIN_CANDIDATES", (Path("/nonexistent/bin"),))
    with pytest.raises(PgClusterError, match="no PostgreSQL server binaries"), throwaway_postgres():
        pass
