"""Scan log: rows carry no personal data, survive export and re-import, refuse junk."""

from __future__ import annotations

import sqlite3
import stat
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
        scan_ref=f"{i:016x}",
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


def test_scan_reference_is_keyed_per_station(tmp_path: Path) -> None:
    """The same credential gets one reference at one station (re-checkable there) and
    unrelated ones at another station or as a plain digest (unjoinable elsewhere)."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = ScanLog(tmp_path / "a" / "scans.db")
    b = ScanLog(tmp_path / "b" / "scans.db")
    prefix = "5c0e9a8b7f6d4e3c"
    ref = a.ref(prefix)
    assert ref is not None and len(ref) == 16
    assert ref == ScanLog(tmp_path / "a" / "scans.db").ref(prefix)  # same key on reopen
    assert b.ref(prefix) != ref
    assert prefix not in (ref or "")
    assert a.ref(None) is None


def test_database_key_and_export_are_private_files(tmp_path: Path) -> None:
    log = ScanLog(tmp_path / "scans.db")
    log.append(sample(1))
    log.export_csv(tmp_path / "out.csv")
    for name in ("scans.db", "scans.key", "out.csv"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name


def test_log_with_plain_digest_prefixes_is_migrated_to_nothing_joinable(tmp_path: Path) -> None:
    """A log written before keyed references held digest prefixes, which join to the
    ledger and the issuer: opening it erases them and keeps the rest of each row."""
    db = sqlite3.connect(tmp_path / "scans.db")
    db.execute(
        "CREATE TABLE scans (id INTEGER PRIMARY KEY AUTOINCREMENT, scanned_at REAL NOT NULL,"
        " decision TEXT NOT NULL, reasons TEXT NOT NULL, region TEXT, digest_prefix TEXT,"
        " sync_age_s INTEGER)"
    )
    db.execute("INSERT INTO scans VALUES (1, 1.5, 'admit', '', 'GD', '5c0e9a8b7f6d4e3c', 60)")
    db.commit()
    db.close()
    log = ScanLog(tmp_path / "scans.db")
    assert log.all() == [ScanRecord(1.5, "admit", (), "GD", None, 60)]
    log.close()
    assert b"5c0e9a8b7f6d4e3c" not in (tmp_path / "scans.db").read_bytes()


def test_header_is_fixed() -> None:
    assert CSV_COLUMNS == (
        "scanned_at",
        "decision",
        "reasons",
        "region",
        "scan_ref",
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
