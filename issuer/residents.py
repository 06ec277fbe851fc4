"""The population registry and health records: CSV import, API posting, demo seed.

Residents: CSV columns `document_number,name,region`. Records: CSV columns
`document_number,kind,at,result` (kind in vaccination/test/recovery/contact/
contact_cleared; `at` Unix seconds or ISO 8601; result positive/negative for tests).
Imports are idempotent (a record seen twice is stored once) and report progress.
Each resident whose status changes gets their outstanding credentials revoked in the
same transaction (issuer.issuance.revoke_on_status_change).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from issuer.context import IssuerContext
from issuer.errors import RecordError, UnknownResidentError
from issuer.issuance import lock_resident, resident_status, revoke_on_status_change
from issuer.models import HealthRecordRow, Resident
from issuer.status_rules import HealthRecord, LabResult, RecordKind

MAX_NAME_CHARS = 128
MAX_DOCUMENT_CHARS = 32
MAX_IMPORT_ROWS = 1_000_000  # rows per file
MAX_IMPORT_BYTES = 256 * 1024 * 1024  # bytes per file; a million rows fit well inside
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ImportReport:
    added: int
    unchanged: int
    revoked: int = 0


def _doc(value: object) -> str:
    doc = str(value or "").strip()
    if not 4 <= len(doc) <= MAX_DOCUMENT_CHARS or not doc.isalnum():
        raise RecordError("document_number must be 4-32 letters or digits")
    return doc


MAX_TIME_DIGITS = 12  # digits of Unix seconds in a record


def parse_time(value: object) -> int:
    text = str(value or "").strip()
    if text.isdigit():
        # At most 12 digits (beyond year 33000): a longer number would overflow the
        # 64-bit time columns and is no time anyone means.
        if len(text) > MAX_TIME_DIGITS:
            raise RecordError(f"expected Unix seconds of at most {MAX_TIME_DIGITS} digits")
        return int(text)
    try:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())
    except ValueError as e:
        raise RecordError(f"expected Unix seconds or ISO 8601 time, found {text[:32]!r}") from e


def parse_record(row: Mapping[str, object]) -> tuple[str, HealthRecord]:
    doc = _doc(row.get("document_number"))
    try:
        kind = RecordKind(str(row.get("kind", "")).strip())
        raw = str(row.get("result") or "").strip()
        result = LabResult(raw) if raw else None
        return doc, HealthRecord(kind, parse_time(row.get("at")), result)
    except ValueError as e:
        raise RecordError(f"bad health record: {e}") from e


def add_residents(
    ctx: IssuerContext, rows: Iterable[Mapping[str, str]], progress: Progress | None = None
) -> ImportReport:
    added = unchanged = 0
    with ctx.sessions.begin() as s:
        for n, row in enumerate(rows, 1):
            doc, name = _doc(row.get("document_number")), " ".join(str(row.get("name", "")).split())
            region = str(row.get("region") or ctx.region).strip()
            if not 0 < len(name) <= MAX_NAME_CHARS:
                raise RecordError(f"row {n}: name must be 1-{MAX_NAME_CHARS} characters")
            if region != ctx.region:
                unchanged += 1  # another region's resident: not ours to register
                continue
            existing = s.scalars(select(Resident).where(Resident.document_number == doc)).first()
            if existing is None:
                s.add(Resident(document_number=doc, name=name, region=region, created_at=ctx.now()))
                added += 1
            else:
                existing.name = name
                unchanged += 1
            if progress and n % 1000 == 0:
                progress(n, 0)
    return ImportReport(added, unchanged)


def _store_records(
    ctx: IssuerContext, s: Session, items: list[tuple[str, HealthRecord]], source: str
) -> ImportReport:
    now = ctx.now()
    by_doc: dict[str, list[HealthRecord]] = {}
    for doc, rec in items:
        by_doc.setdefault(doc, []).append(rec)
    added = unchanged = revoked = 0
    for doc, recs in by_doc.items():
        resident = s.scalars(select(Resident).where(Resident.document_number == doc)).first()
        if resident is None:
            raise UnknownResidentError(f"no resident of {ctx.region} with that document number")
        lock_resident(s, resident.id)  # no fetch re-issues meanwhile (lock_residents)
        before = resident_status(s, resident.id, now)
        for rec in recs:
            result = rec.result.value if rec.result else ""
            dup = s.scalars(
                select(HealthRecordRow.id).where(
                    HealthRecordRow.resident_id == resident.id,
                    HealthRecordRow.kind == rec.kind.value,
                    HealthRecordRow.at == rec.at,
                    HealthRecordRow.result == result,
                )
            ).first()
            if dup is not None:
                unchanged += 1
                continue
            s.add(
                HealthRecordRow(
                    resident_id=resident.id,
                    kind=rec.kind.value,
                    at=rec.at,
                    result=result,
                    source=source,
                    created_at=now,
                )
            )
            s.flush()
            added += 1
        revoked += len(revoke_on_status_change(ctx, s, resident.id, before, now))
    return ImportReport(added, unchanged, revoked)


def add_records(
    ctx: IssuerContext, items: list[tuple[str, HealthRecord]], source: str
) -> ImportReport:
    with ctx.sessions.begin() as s:
        return _store_records(ctx, s, items, source)


def read_csv_file(path: Path) -> str:
    """The text of a CSV file to import: bounded in size, UTF-8 (a BOM is allowed, as
    spreadsheet programs write one), or a typed error that names the problem."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_IMPORT_BYTES + 1)
    except OSError as e:
        raise RecordError(f"cannot read {path}: {e.strerror or e}") from e
    if len(data) > MAX_IMPORT_BYTES:
        raise RecordError(f"{path} is larger than {MAX_IMPORT_BYTES} bytes; split it")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise RecordError(
            f"{path} is not UTF-8 text (byte {e.start}); export the CSV as UTF-8"
        ) from e


def read_csv(text: str, required: set[str]) -> list[dict[str, str]]:
    try:
        reader = csv.DictReader(io.StringIO(text))
        missing = required - set(reader.fieldnames or ())
        if missing:
            raise RecordError(f"CSV header lacks columns {sorted(missing)}")
        rows = []
        for n, row in enumerate(reader, 1):
            if n > MAX_IMPORT_ROWS:
                raise RecordError(f"more than {MAX_IMPORT_ROWS} rows")
            rows.append(row)
    except csv.Error as e:
        raise RecordError(f"not a readable CSV file: {e}") from e
    return rows


def import_records_csv(
    ctx: IssuerContext, text: str, progress: Progress | None = None, batch: int = 500
) -> ImportReport:
    rows = read_csv(text, {"document_number", "kind", "at"})
    items = []
    for n, row in enumerate(rows, 1):
        try:
            items.append(parse_record(row))
        except RecordError as e:
            raise RecordError(f"row {n}: {e.message}") from e
    total = ImportReport(0, 0, 0)
    for start in range(0, len(items), batch):
        r = add_records(ctx, items[start : start + batch], "csv")
        total = ImportReport(
            total.added + r.added, total.unchanged + r.unchanged, total.revoked + r.revoked
        )
        if progress:
            progress(min(start + batch, len(items)), len(items))
    return total


SEED = {
    "GD": [
        ("张小明", "G10000001"),
        ("李华", "G10000002"),
        ("王芳", "G10000003"),
        ("陈志强", "G10000004"),
        ("欧阳娜娜", "G10000005"),
        ("黄伟", "G10000006"),
    ],
    "MO": [
        ("Maria da Silva", "M1000001"),
        ("João Pedro dos Santos", "M1000002"),
        ("何家明", "M1000003"),
        ("Ana Sofia Pereira", "M1000004"),
        ("梁美玲", "M1000005"),
        ("Carlos Manuel de Sousa", "M1000006"),
    ],
}
DAY = 86_400


def seed_demo(ctx: IssuerContext) -> ImportReport:
    """Synthetic residents (Chinese and Portuguese names) with varied records."""
    people = SEED.get(ctx.region) or [
        (f"Resident {i}", f"{ctx.region}9{i:07d}") for i in range(1, 7)
    ]
    report = add_residents(
        ctx, [{"document_number": d, "name": n, "region": ctx.region} for n, d in people]
    )
    now = ctx.now()
    recs: list[tuple[str, HealthRecord]] = []
    for i, (_, doc) in enumerate(people):
        if i % 3 == 0:  # fully vaccinated
            recs += [
                (doc, HealthRecord(RecordKind.VACCINATION, now - 120 * DAY)),
                (doc, HealthRecord(RecordKind.VACCINATION, now - 90 * DAY)),
            ]
        elif i % 3 == 1:  # recent negative test
            recs.append((doc, HealthRecord(RecordKind.TEST, now - DAY, LabResult.NEGATIVE)))
        else:  # recovered
            recs.append((doc, HealthRecord(RecordKind.RECOVERY, now - 30 * DAY)))
    add_records(ctx, recs, "seed")
    return report
