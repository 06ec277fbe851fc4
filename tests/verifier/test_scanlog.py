"""Scan log: rows carry no personal data, survive export and re-import, refuse junk."""

from __future__ import annotations

from pathlib import Path

import pytest

from verifier.errors import ScanLogError
from verifier.scanlog import CSV_COLUMNS, ScanLog, ScanRecord, read_csv


def sample(i: int) -> ScanRecord:
    return ScanRecord(
        scanned_at=1_800_000_000.0 + i,
        decision="deny" if i % 2 else "admit",
        reasons=("revoked",) if i % 2 else (),
        region="GD" if i % 3 else "MO",
        digest_prefix=f"{i:016x}",
        sync_age_s=None if i == 0 else 60 * i,
    )


def test_export_round_trips_every_record(tmp_path: Path) -> None:
    log = ScanLog(tmp_path / "scans.db")
    records = [sample(i) for i in range(5)]
    for r in records:
        log.append(r)
    assert log.count() == 5
    assert log.export_csv(tmp_path / "out.csv") == 5
    assert read_csv(tmp_path / "out.csv") == records
    assert log.recent(2) == [records[4], records[3]]


def test_log_reopens_with_its_rows(tmp_path: Path) -> None:
    ScanLog(tmp_path / "scans.db").append(sample(1))
    assert ScanLog(tmp_path / "scans.db").all() == [sample(1)]


def test_full_digest_never_reaches_the_log() -> None:
    with pytest.raises(ScanLogError, match="at most 16"):
        ScanRecord(1.0, "admit", (), "GD", "ab" * 32, None)


def test_header_is_fixed() -> None:
    assert CSV_COLUMNS == (
        "scanned_at",
        "decision",
        "reasons",
        "region",
        "digest_prefix",
        "sync_age_s",
    )


@pytest.mark.parametrize(
    "text",
    [
        "",
        "name,decision\n",
        ",".join(CSV_COLUMNS) + "\n1.0,admit\n",
        ",".join(CSV_COLUMNS) + "\nnot-a-time,admit,,GD,00,\n",
    ],
)
def test_malformed_export_is_a_typed_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ScanLogError):
        read_csv(path)


def test_unwritable_location_is_a_typed_error(tmp_path: Path) -> None:
    with pytest.raises(ScanLogError):
        ScanLog(tmp_path / "missing-dir" / "scans.db")


def test_scan_loop_goes_on_while_the_log_database_is_locked(tmp_path: Path) -> None:
    """An export or a backup holding the database: the writer waits for it, the
    station's scan loop does not, and nothing is lost once the lock goes away."""
    import sqlite3
    import time

    from verifier.scanlog import ScanLogWriter

    path = tmp_path / "scans.db"
    log = ScanLog(path)
    writer = ScanLogWriter(log)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # e.g. a copy of the file being taken
    try:
        started = time.perf_counter()
        for i in range(50):
            writer.append(sample(i))
        handed_over_ms = (time.perf_counter() - started) * 1000
        assert handed_over_ms < 50, handed_over_ms
    finally:
        other.execute("COMMIT")
        other.close()
    writer.flush()
    assert log.count() == 50
    writer.close()
    log.close()


def test_writer_close_writes_everything_queued_in_order(tmp_path: Path) -> None:
    from verifier.scanlog import ScanLogWriter

    log = ScanLog(tmp_path / "scans.db")
    writer = ScanLogWriter(log)
    for i in range(300):
        writer.append(sample(i))
    writer.close()
    assert [r.scanned_at for r in log.all()] == [sample(i).scanned_at for i in range(300)]
    writer.close()  # a second close is harmless
    log.close()
