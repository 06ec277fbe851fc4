"""The station's scan log: one SQLite row per verdict, with no personal data.

What it does: records when a code was scanned, the decision, the reason codes, the
issuing region, a short prefix of the credential digest (enough to find the anchor on
the ledger again, not enough to identify anyone without the issuer) and how old the
station's sync was. It reads back the most recent rows for the kiosk and exports the
whole log as CSV, so checks made offline can be re-checked after the next sync.

`ScanLogWriter` puts the writes on a thread of their own: the scan loop hands a record
over and goes on to the next frame, while the writer commits whatever has queued up
in one transaction (a commit costs milliseconds, and more when the disk is busy or
an export holds the database).

What it does not do: store names, document hints, colours of named people, the QR text
or the credential itself — none of those ever reach this module's API.
"""

from __future__ import annotations

import csv
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from verifier.errors import ScanLogError

log = logging.getLogger(__name__)
MAX_PENDING_RECORDS = 10_000  # records queued for the writer before append() waits
WRITE_RETRY_S = 1.0  # seconds before the writer retries a batch the database refused
DIGEST_PREFIX_CHARS = 16  # hex characters (64 bits) of the SHA-256 credential digest
CSV_COLUMNS = ("scanned_at", "decision", "reasons", "region", "digest_prefix", "sync_age_s")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS scans (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    scanned_at REAL NOT NULL,
    decision TEXT NOT NULL,
    reasons TEXT NOT NULL,
    region TEXT,
    digest_prefix TEXT,
    sync_age_s INTEGER
)
"""


@dataclass(frozen=True)
class ScanRecord:
    """One row of the log. `reasons` are reason codes (credential.verdict.Reason values)."""

    scanned_at: float  # Unix seconds
    decision: str
    reasons: tuple[str, ...]
    region: str | None
    digest_prefix: str | None
    sync_age_s: int | None

    def __post_init__(self) -> None:
        if self.digest_prefix is not None and len(self.digest_prefix) > DIGEST_PREFIX_CHARS:
            # Only a prefix ever goes to disk; a longer value is a caller bug, not data.
            raise ScanLogError(
                f"digest prefix must be at most {DIGEST_PREFIX_CHARS} characters, "
                f"found {len(self.digest_prefix)}"
            )
        for r in self.reasons:
            if "," in r:
                raise ScanLogError(f"reason codes cannot contain commas, found {r!r}")


class ScanLog:
    """The SQLite-backed log; safe to share between the scan loop and the kiosk thread."""

    def __init__(self, path: str | Path = ":memory:") -> None:
        self.path = str(path)
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False)
            if self.path != ":memory:":
                self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(_SCHEMA)
            self._db.commit()
        except sqlite3.Error as e:
            raise ScanLogError(f"cannot open the scan log at {self.path}: {e}") from e
        self._lock = threading.Lock()

    def append(self, record: ScanRecord) -> None:
        self.append_many((record,))

    def append_many(self, records: Iterable[ScanRecord]) -> None:
        """Write `records` in one transaction: all of them or, on error, none."""
        rows = [
            (
                r.scanned_at,
                r.decision,
                ",".join(r.reasons),
                r.region,
                r.digest_prefix,
                r.sync_age_s,
            )
            for r in records
        ]
        with self._lock:
            try:
                with self._db:  # commits, or rolls back on error
                    self._db.executemany(
                        "INSERT INTO scans (scanned_at, decision, reasons, region, digest_prefix,"
                        " sync_age_s) VALUES (?, ?, ?, ?, ?, ?)",
                        rows,
                    )
            except sqlite3.Error as e:
                raise ScanLogError(f"cannot write the scan log at {self.path}: {e}") from e

    def _rows(self, sql: str, args: Sequence[object] = ()) -> Iterator[ScanRecord]:
        with self._lock:
            try:
                rows = self._db.execute(sql, tuple(args)).fetchall()
            except sqlite3.Error as e:
                raise ScanLogError(f"cannot read the scan log at {self.path}: {e}") from e
        for at, decision, reasons, region, prefix, age in rows:
            yield ScanRecord(
                float(at),
                str(decision),
                tuple(r for r in str(reasons).split(",") if r),
                region,
                prefix,
                None if age is None else int(age),
            )

    def recent(self, limit: int = 10) -> list[ScanRecord]:
        """The newest `limit` records, newest first."""
        sql = (
            "SELECT scanned_at, decision, reasons, region, digest_prefix, sync_age_s"
            " FROM scans ORDER BY id DESC LIMIT ?"
        )
        return list(self._rows(sql, (limit,)))

    def all(self) -> list[ScanRecord]:
        sql = (
            "SELECT scanned_at, decision, reasons, region, digest_prefix, sync_age_s"
            " FROM scans ORDER BY id"
        )
        return list(self._rows(sql))

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM scans").fetchone()[0])

    def export_csv(self, out: str | Path) -> int:
        """Write every record to `out` as CSV (header row first); returns the row count."""
        records = self.all()
        try:
            with open(out, "w", newline="", encoding="utf-8") as f:
                w = csv.writer(f)
                w.writerow(CSV_COLUMNS)
                for r in records:
                    w.writerow(
                        [
                            f"{r.scanned_at:.3f}",
                            r.decision,
                            " ".join(r.reasons),
                            r.region or "",
                            r.digest_prefix or "",
                            "" if r.sync_age_s is None else r.sync_age_s,
                        ]
                    )
        except OSError as e:
            raise ScanLogError(f"cannot write the export at {out}: {e}") from e
        return len(records)

    def close(self) -> None:
        with self._lock:
            self._db.close()


class ScanLogWriter:
    """Appends to a `ScanLog` from a thread of its own; `append` only queues.

    Records are never dropped: a batch the database refuses (locked, disk full) is
    retried every `WRITE_RETRY_S` and the error kept in `last_error`; once
    `MAX_PENDING_RECORDS` wait, `append` waits too, rather than lose a verdict.
    `flush` waits until everything queued is on disk; `close` flushes and stops.
    """

    def __init__(self, scan_log: ScanLog, max_pending: int = MAX_PENDING_RECORDS) -> None:
        self.log = scan_log
        self.last_error: ScanLogError | None = None
        self._queue: queue.Queue[ScanRecord | None] = queue.Queue(maxsize=max_pending)
        self._thread = threading.Thread(target=self._run, name="scan-log-writer", daemon=True)
        self._thread.start()

    def append(self, record: ScanRecord) -> None:
        self._queue.put(record)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            batch = [] if first is None else [first]
            stop = first is None
            while not stop:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                else:
                    batch.append(more)
            while batch:
                try:
                    self.log.append_many(batch)
                    self.last_error = None
                    break
                except ScanLogError as e:
                    self.last_error = e
                    log.error("scan log write failed, retrying: %s", e)
                    time.sleep(WRITE_RETRY_S)
            for _ in range(len(batch) + (1 if stop else 0)):
                self._queue.task_done()
            if stop:
                return

    def flush(self) -> None:
        self._queue.join()

    def close(self) -> None:
        """Write what is queued, then stop the thread (the ScanLog stays open)."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()


def read_csv(path: str | Path) -> list[ScanRecord]:
    """Parse an export back into records (the other half of `ScanLog.export_csv`)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except OSError as e:
        raise ScanLogError(f"cannot read the export at {path}: {e}") from e
    if not rows or tuple(rows[0]) != CSV_COLUMNS:
        raise ScanLogError(f"expected the header {','.join(CSV_COLUMNS)}, found {rows[:1]}")
    out = []
    for n, row in enumerate(rows[1:], start=2):
        if len(row) != len(CSV_COLUMNS):
            raise ScanLogError(f"line {n}: expected {len(CSV_COLUMNS)} fields, found {len(row)}")
        at, decision, reasons, region, prefix, age = row
        try:
            out.append(
                ScanRecord(
                    float(at),
                    decision,
                    tuple(reasons.split()),
                    region or None,
                    prefix or None,
                    int(age) if age else None,
                )
            )
        except ValueError as e:
            raise ScanLogError(f"line {n}: {e}") from e
    return out
