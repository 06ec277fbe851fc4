"""The station's scan log: one SQLite row per verdict, with no personal data.

What it does: records when a code was scanned, the decision, the reason codes, the
issuing region, a *scan reference* and how old the station's sync was. It reads back
the most recent rows for the kiosk and exports the whole log as CSV.

The scan reference is HMAC-SHA256 (RFC 2104) of the credential digest prefix under a
per-station secret (`scans.key`, 32 random bytes, mode 0600, next to the database),
truncated to 64 bits. At this station, whoever holds the key can tell whether a given
credential (shown again, or its digest) was scanned and when. Anywhere else the
reference matches nothing: the credential digest is on the public ledger and in the
issuer's database, so an unkeyed digest or prefix here would join a scan to an anchor
and from there to a named resident in one query. Two stations' logs do not join either:
each has its own key.

`ScanLogWriter` puts the writes on a thread of their own: the scan loop hands a record
over and goes on to the next frame, while the writer commits whatever has queued up
in one transaction (a commit costs milliseconds, and more when the disk is busy or
an export holds the database).

What it does not do: store names, document hints, colours of named people, the QR text,
the credential or its digest — none of those ever reach this module's API.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import logging
import os
import queue
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from common.private_files import PRIVATE_FILE_MODE, load_or_create_secret, private_sqlite
from verifier.errors import ScanLogError

log = logging.getLogger(__name__)
MAX_PENDING_RECORDS = 10_000  # records queued for the writer before append() waits
WRITE_RETRY_S = 1.0  # seconds before the writer retries a batch the database refused
SCAN_REF_CHARS = 16  # hex characters (64 bits) of the keyed scan reference
SCAN_KEY_SUFFIX = ".key"  # the station's scan-log key sits next to its database
SCAN_KEY_BYTES = 32  # bytes; HMAC-SHA256 key as long as the hash (RFC 2104 §3)
SCAN_REF_DOMAIN = b"healthbridge/scan-log/v1\n"  # domain separation for the HMAC input
CSV_COLUMNS = ("scanned_at", "decision", "reasons", "region", "scan_ref", "sync_age_s")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS scans (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    scanned_at REAL NOT NULL,
    decision TEXT NOT NULL,
    reasons TEXT NOT NULL,
    region TEXT,
    scan_ref TEXT,
    sync_age_s INTEGER
)
"""


def scan_ref(key: bytes, digest_prefix: str) -> str:
    """The keyed reference of a credential at one station: HMAC-SHA256(key, domain ||
    digest prefix), first 64 bits in hex. `digest_prefix` is the verdict's hex prefix."""
    mac = hmac.new(key, SCAN_REF_DOMAIN + digest_prefix.encode("ascii"), hashlib.sha256)
    return mac.hexdigest()[:SCAN_REF_CHARS]


def scan_key_path(db_path: str | Path) -> Path:
    return Path(db_path).with_suffix(SCAN_KEY_SUFFIX)


@dataclass(frozen=True)
class ScanRecord:
    """One row of the log. `reasons` are reason codes (credential.verdict.Reason values)."""

    scanned_at: float  # Unix seconds
    decision: str
    reasons: tuple[str, ...]
    region: str | None
    scan_ref: str | None  # keyed reference (`scan_ref`), never the digest itself
    sync_age_s: int | None

    def __post_init__(self) -> None:
        if self.scan_ref is not None and len(self.scan_ref) > SCAN_REF_CHARS:
            # Only a truncated keyed reference ever goes to disk; anything longer is a
            # caller bug (a digest passed by mistake), not data.
            raise ScanLogError(
                f"scan reference must be at most {SCAN_REF_CHARS} characters, "
                f"found {len(self.scan_ref)}"
            )
        for r in self.reasons:
            if "," in r:
                raise ScanLogError(f"reason codes cannot contain commas, found {r!r}")


class ScanLog:
    """The SQLite-backed log; safe to share between the scan loop and the kiosk thread.

    The database and its key file are created with mode 0600. An in-memory log uses a
    random key that lives as long as the object.
    """

    def __init__(self, path: str | Path = ":memory:", key: bytes | None = None) -> None:
        self.path = str(path)
        try:
            if self.path != ":memory:":
                if not Path(self.path).parent.is_dir():
                    raise ScanLogError(f"cannot open the scan log at {self.path}: no folder")
                private_sqlite(self.path)
                key = key or load_or_create_secret(scan_key_path(self.path), SCAN_KEY_BYTES)
            self._key = key or secrets.token_bytes(SCAN_KEY_BYTES)
            self._db = sqlite3.connect(self.path, check_same_thread=False)
            self._db.execute("PRAGMA secure_delete=ON")  # deleted rows are zeroed on disk
            if self.path != ":memory:":
                self._db.execute("PRAGMA journal_mode=WAL")
            self._migrate()
            self._db.execute(_SCHEMA)
            self._db.commit()
        except OSError as e:
            raise ScanLogError(f"cannot open the scan log at {self.path}: {e}") from e
        except sqlite3.Error as e:
            raise ScanLogError(f"cannot open the scan log at {self.path}: {e}") from e
        self._lock = threading.Lock()

    def _migrate(self) -> None:
        """Logs written before the keyed reference held a plain digest prefix, which
        joins to the ledger and the issuer: erase those values, keep the rows."""
        cols = [r[1] for r in self._db.execute("PRAGMA table_info(scans)").fetchall()]
        if "digest_prefix" in cols:
            self._db.execute("UPDATE scans SET digest_prefix = NULL")
            self._db.execute("ALTER TABLE scans RENAME COLUMN digest_prefix TO scan_ref")
            self._db.commit()
            # Rewrite the file so the erased values do not linger in free pages.
            self._db.execute("VACUUM")

    def ref(self, digest_prefix: str | None) -> str | None:
        """This station's keyed reference for a verdict's digest prefix."""
        return None if digest_prefix is None else scan_ref(self._key, digest_prefix)

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
                r.scan_ref,
                r.sync_age_s,
            )
            for r in records
        ]
        with self._lock:
            try:
                with self._db:  # commits, or rolls back on error
                    self._db.executemany(
                        "INSERT INTO scans (scanned_at, decision, reasons, region, scan_ref,"
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
        for at, decision, reasons, region, ref, age in rows:
            yield ScanRecord(
                float(at),
                str(decision),
                tuple(r for r in str(reasons).split(",") if r),
                region,
                ref,
                None if age is None else int(age),
            )

    def recent(self, limit: int = 10) -> list[ScanRecord]:
        """The newest `limit` records, newest first."""
        sql = (
            "SELECT scanned_at, decision, reasons, region, scan_ref, sync_age_s"
            " FROM scans ORDER BY id DESC LIMIT ?"
        )
        return list(self._rows(sql, (limit,)))

    def all(self) -> list[ScanRecord]:
        sql = (
            "SELECT scanned_at, decision, reasons, region, scan_ref, sync_age_s"
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
            # 0600 like the log itself: the operator decides whom to hand it to.
            fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
            with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
                w = csv.writer(f)
                w.writerow(CSV_COLUMNS)
                for r in records:
                    w.writerow(
                        [
                            f"{r.scanned_at:.3f}",
                            r.decision,
                            " ".join(r.reasons),
                            r.region or "",
                            r.scan_ref or "",
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

    def ref(self, digest_prefix: str | None) -> str | None:
        """The log's keyed reference (computed here, no I/O)."""
        return self.log.ref(digest_prefix)

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
        at, decision, reasons, region, ref, age = row
        try:
            out.append(
                ScanRecord(
                    float(at),
                    decision,
                    tuple(reasons.split()),
                    region or None,
                    ref or None,
                    int(age) if age else None,
                )
            )
        except ValueError as e:
            raise ScanLogError(f"line {n}: {e}") from e
    return out
