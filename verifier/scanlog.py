"""The station's scan log: one SQLite row per verdict, with no personal data.

What it does: records when a code was scanned, the decision, the reason codes, the
issuing region, a short prefix of the credential digest (enough to find the anchor on
the ledger again, not enough to identify anyone without the issuer) and how old the
station's sync was. It reads back the most recent rows for the kiosk and exports the
whole log as CSV, so checks made offline can be re-checked after the next sync.

What it does not do: store names, document hints, colours of named people, the QR text
or the credential itself — none of those ever reach this module's API.
"""

from __future__ import annotations

import csv
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from verifier.errors import ScanLogError

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
        with self._lock:
            try:
                self._db.execute(
                    "INSERT INTO scans (scanned_at, decision, reasons, region, digest_prefix,"
                    " sync_age_s) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        record.scanned_at,
                        record.decision,
                        ",".join(record.reasons),
                        record.region,
                        record.digest_prefix,
                        record.sync_age_s,
                    ),
                )
                self._db.commit()
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
