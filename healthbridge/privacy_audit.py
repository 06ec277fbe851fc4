"""A personal-data audit of everything a HealthBridge run left behind.

What it does: given a work folder (the demo's, or a region's data directory) and the
names and document numbers that were seeded into it, it reads every byte of every
file — databases table by table, logs, exports, tiles, keys, the program's output —
and reports

- `pii_hits`: occurrences of a seeded name or document number, in clear or as an
  unkeyed SHA-256 / MD5 / SHA-1 hash (hex or raw, whole or truncated to 16 bytes),
  anywhere except the issuer's `residents` table (where they belong);
- `joinable_scans`: station scan-log rows (database and CSV exports) whose value
  matches a credential digest or credential id in an issuer's database — the one-query
  join that turns a scan into a named resident;
- `world_readable_files`: databases, secrets, credential stores, code deliveries,
  exports and camera footage that others than the owner may read;
- `public_revocation_reasons`: revocation reasons readable on a public log (ledger,
  witness and mirror databases, synced station state);
- `qr_fields_disclosed`: the claim members anyone who photographs a wallet's QR reads
  without any key, and whether two regions' codes of one person share a device key.

What it does not do: decide what is personal (the caller hands in the seeds), fix
anything, or look inside compressed payloads (a credential's claims are deflated; the
QR fields are reported separately, from the wallets).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import sqlite3
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SQLITE_MAGIC = b"SQLite format 3\x00"
RESIDENT_TABLES = frozenset({"residents"})  # where an issuer keeps names and numbers
HASHES = ("sha256", "md5", "sha1")
TRUNCATED_HEX = 32  # characters of a hex digest searched for (catches truncations)
TRUNCATED_RAW = 16  # bytes of a raw digest searched for
SENSITIVE_SUFFIXES = (".db", ".pem", ".key", ".skey", ".token", ".csv", ".log", ".avi")
SENSITIVE_NAMES = ("credentials.json", "enrolment-codes.txt", "admin-password.txt")
SQLITE_SIDE_SUFFIXES = ("-wal", "-shm", "-journal")
# The per-credential column of a scan log, new and old layouts; fixed statements.
SCAN_COLUMNS = (
    ("scan_ref", "SELECT scan_ref FROM scans"),
    ("digest_prefix", "SELECT digest_prefix FROM scans"),
)
MIN_JOIN_HEX = 8  # hex characters; a shorter scan value cannot identify a credential
PUBLIC_REASON_WORDS = (
    b"status_change",
    b"superseded",
    b"holder_request",
    b"issued_in_error",
    b"key_compromise",
    b"fraud",
    b"administrative",
)


@dataclass(frozen=True)
class Hit:
    """One place where a seeded value was found."""

    path: str  # relative to the audited folder; `<output>` for the program's output
    where: str  # "bytes", or "table <name>" for a database
    what: str  # e.g. "document number G10000001 as sha256 hex"


@dataclass
class Report:
    pii_hits: list[Hit] = field(default_factory=list)
    joinable_scans: int = 0
    scans_checked: int = 0
    reidentified: list[str] = field(default_factory=list)  # "scan ref -> masked person"
    world_readable_files: list[str] = field(default_factory=list)
    files_scanned: int = 0
    bytes_scanned: int = 0
    public_revocation_reasons: int = 0
    qr_fields_disclosed: list[str] = field(default_factory=list)
    device_key_shared_across_regions: bool | None = None
    wallets_unreadable: list[str] = field(default_factory=list)
    output_tail: list[str] = field(default_factory=list)  # last lines the commands printed

    def to_json(self) -> dict[str, Any]:
        return {
            "pii_hits": len(self.pii_hits),
            "pii_hit_examples": [f"{h.path} [{h.where}]: {h.what}" for h in self.pii_hits[:10]],
            "joinable_scans": self.joinable_scans,
            "scans_checked": self.scans_checked,
            "world_readable_files": len(self.world_readable_files),
            "world_readable_examples": self.world_readable_files[:10],
            "public_revocation_reasons": self.public_revocation_reasons,
            "qr_fields_disclosed": self.qr_fields_disclosed,
            "device_key_shared_across_regions": self.device_key_shared_across_regions,
            "files_scanned": self.files_scanned,
            "bytes_scanned": self.bytes_scanned,
        }


# -- what to look for -----------------------------------------------------------------------


def needles(names: Iterable[str], documents: Iterable[tuple[str, str]]) -> dict[bytes, str]:
    """Byte strings that betray a seeded person, each with a description.

    `documents` are (region, document number) pairs: the region-joined form is what an
    issuer would naturally hash (`region \\x1f number`).
    """
    out: dict[bytes, str] = {}
    values: list[tuple[str, str]] = [(n, f"name {n}") for n in names]
    for region, doc in documents:
        values.append((doc, f"document number {doc}"))
        values.append((f"{region}\x1f{doc}", f"document number {doc} (region-joined)"))
    for value, label in values:
        raw = value.encode("utf-8")
        if "\x1f" not in value:
            out[raw] = f"{label} in clear"
        for algo in HASHES:
            digest = hashlib.new(algo, raw).digest()
            out[digest.hex()[:TRUNCATED_HEX].encode()] = f"{label} as {algo} hex"
            out[digest.hex()[:TRUNCATED_HEX].upper().encode()] = f"{label} as {algo} HEX"
            out[digest[:TRUNCATED_RAW]] = f"{label} as raw {algo}"
    return out


def find_in(data: bytes, wanted: dict[bytes, str]) -> list[str]:
    return [label for needle, label in wanted.items() if needle in data]


# -- reading files ----------------------------------------------------------------------------


def is_sqlite(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    except OSError:
        return False


def _cell_bytes(value: object) -> bytes:
    if value is None:
        return b""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return str(value).encode("utf-8", "surrogatepass")


def _tables(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return [str(r[0]) for r in rows]


def _open_ro(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def table_cells(path: Path, skip: frozenset[str]) -> Iterator[tuple[str, bytes]]:
    """(table, cell bytes) for every cell of every table not in `skip`."""
    conn = _open_ro(path)
    try:
        for table in _tables(conn):
            if table in skip:
                continue
            quoted = '"' + table.replace('"', '""') + '"'  # an SQL identifier, quoted
            for row in conn.execute("SELECT * FROM " + quoted):  # noqa: S608
                for cell in row:
                    yield table, _cell_bytes(cell)
    finally:
        conn.close()


def has_resident_table(path: Path) -> bool:
    conn = _open_ro(path)
    try:
        return bool(RESIDENT_TABLES.intersection(_tables(conn)))
    finally:
        conn.close()


def sensitive(path: Path) -> bool:
    name = path.name
    return (
        name in SENSITIVE_NAMES
        or name.startswith("device_key")
        or name.endswith(SENSITIVE_SUFFIXES)
        or name.endswith(SQLITE_SIDE_SUFFIXES)
        or is_sqlite(path)
    )


# -- the audit --------------------------------------------------------------------------------


def scan_pii(root: Path, wanted: dict[bytes, str], report: Report) -> None:
    """Every file under `root`: issuer databases table by table without the resident
    table (and without their WAL, whose pages are the same tables), the rest byte by
    byte."""
    issuer_dbs = {
        p for p in root.rglob("*") if p.is_file() and is_sqlite(p) and has_resident_table(p)
    }
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = str(path.relative_to(root))
        report.files_scanned += 1
        if path in issuer_dbs:
            for table, cell in table_cells(path, RESIDENT_TABLES):
                report.bytes_scanned += len(cell)
                for label in find_in(cell, wanted):
                    report.pii_hits.append(Hit(rel, f"table {table}", label))
            continue
        if any(path.name == db.name + s for db in issuer_dbs for s in SQLITE_SIDE_SUFFIXES):
            continue  # pages of the issuer database: covered table by table above
        data = path.read_bytes()
        report.bytes_scanned += len(data)
        for label in find_in(data, wanted):
            report.pii_hits.append(Hit(rel, "bytes", label))


def scan_output(output: bytes, wanted: dict[bytes, str], report: Report) -> None:
    report.bytes_scanned += len(output)
    for label in find_in(output, wanted):
        report.pii_hits.append(Hit("<output>", "bytes", label))


def scan_values(root: Path) -> list[str]:
    """The per-credential values of every station scan log and export under `root`."""
    out: list[str] = []
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        if is_sqlite(path):
            conn = _open_ro(path)
            try:
                if "scans" not in _tables(conn):
                    continue
                cols = [r[1] for r in conn.execute("PRAGMA table_info(scans)")]
                for col, sql in SCAN_COLUMNS:
                    if col in cols:
                        out += [str(r[0]) for r in conn.execute(sql) if r[0]]
                        break
            finally:
                conn.close()
        elif path.suffix == ".csv":
            with path.open(newline="", encoding="utf-8", errors="replace") as f:
                for row in csv.DictReader(f):
                    value = row.get("scan_ref") or row.get("digest_prefix")
                    if value:
                        out.append(value)
    return out


def issuer_credentials(root: Path) -> list[tuple[str, str, str]]:
    """(digest hex, credential id, who) of every credential in every issuer database."""
    out: list[tuple[str, str, str]] = []
    for path in root.rglob("*"):
        if not (path.is_file() and is_sqlite(path) and has_resident_table(path)):
            continue
        conn = _open_ro(path)
        try:
            rows = conn.execute(
                "SELECT c.digest, c.credential_id, r.name, r.document_number"
                " FROM credentials c JOIN holders h ON h.id = c.holder_pk"
                " LEFT JOIN residents r ON r.id = h.resident_id"
            ).fetchall()
        finally:
            conn.close()
        for digest, cid, name, doc in rows:
            who = f"{name} / {doc}" if name else "a converted holder"
            out.append((bytes(digest).hex(), str(cid), who))
    return out


def scan_joins(root: Path, report: Report) -> None:
    """Try the scan-log-to-issuer join an auditor would try first: the scan value as a
    prefix of a credential digest or credential id."""
    creds = issuer_credentials(root)
    values = scan_values(root)
    report.scans_checked = len(values)
    for value in values:
        v = value.strip().lower()
        if len(v) < MIN_JOIN_HEX:
            continue
        match = next((who for d, cid, who in creds if d.startswith(v) or cid.startswith(v)), None)
        if match is not None:
            report.joinable_scans += 1
            report.reidentified.append(f"{v} -> {match}")


def scan_modes(root: Path, report: Report) -> None:
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & stat.S_IROTH and sensitive(path):
            report.world_readable_files.append(f"{path.relative_to(root)} ({mode:04o})")


def scan_public_logs(root: Path, report: Report) -> None:
    """Revocation reasons in the databases anyone may copy: ledger nodes, witnesses,
    mirrors and synced station or issuer state (never an issuer's own database)."""
    for path in root.rglob("*"):
        if not (path.is_file() and is_sqlite(path)) or has_resident_table(path):
            continue
        if path.name.startswith("scans"):
            continue
        data = path.read_bytes()
        report.public_revocation_reasons += sum(data.count(w) for w in PUBLIC_REASON_WORDS)


def qr_fields(qr_text: str) -> list[str]:
    """Claim members anyone reads from a QR with no key at all: parse, inflate, list."""
    from credential.payload import inflate
    from credential.presentation import parse_presentation

    claims = json.loads(inflate(parse_presentation(qr_text).payload))

    def walk(prefix: str, obj: Any) -> Iterator[str]:
        for key, value in obj.items():
            path = f"{prefix}{key}"
            if isinstance(value, dict) and key != "jwk":
                yield from walk(path + ".", value)
            else:
                yield path

    return sorted(walk("", claims))


def scan_wallets(root: Path, now: float, report: Report) -> None:
    """Show each wallet's codes as a phone would and read them as any camera would."""
    from credential.issue import read_claims_unverified
    from mobile_stub.wallet import Wallet

    fields: set[str] = set()
    skipped: list[str] = []
    shared = False
    seen_any = False
    for store in sorted(root.rglob("credentials.json")):
        wallet = Wallet.open(store.parent)
        doc = wallet.document()
        keys = {}
        for region in doc.entries:
            try:
                shown = wallet.show(now, region)
            except Exception as e:  # an expired or unreadable credential shows nothing
                skipped.append(f"{store.parent.name}/{region}: {type(e).__name__}")
                continue
            fields.update(qr_fields(shown.qr_text))
            keys[region] = read_claims_unverified(doc.entries[region].credential).holder_key
        if len(keys) > 1:
            seen_any = True
            shared = shared or len(set(keys.values())) < len(keys)
    report.qr_fields_disclosed = sorted(fields)
    report.wallets_unreadable = skipped
    report.device_key_shared_across_regions = shared if seen_any else None


def audit(
    root: Path,
    names: Iterable[str],
    documents: Iterable[tuple[str, str]],
    output: bytes = b"",
    now: float | None = None,
) -> Report:
    """Run every check over `root` (and the program's `output`)."""
    import time

    wanted = needles(list(names), list(documents))
    report = Report()
    scan_pii(root, wanted, report)
    scan_output(output, wanted, report)
    scan_joins(root, report)
    scan_modes(root, report)
    scan_public_logs(root, report)
    scan_wallets(root, time.time() if now is None else now, report)
    return report


def seeded_people() -> tuple[list[str], list[tuple[str, str]]]:
    """The names and (region, document number) pairs `issuer.residents` seeds."""
    from issuer.residents import SEED

    names = [name for people in SEED.values() for name, _ in people]
    docs = [(region, doc) for region, people in SEED.items() for _, doc in people]
    return names, docs


def run_demo_and_audit(workdir: Path, timeout_s: float = 300.0) -> tuple[int, Report]:
    """`healthbridge demo --once` in a subprocess, the station's scan log exported with
    `healthbridge verifier export-log`, then the audit of the whole folder and of
    everything both commands printed. Returns (demo exit code, report)."""
    import subprocess
    import sys

    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8"}
    cmd = [sys.executable, "-m", "healthbridge"]
    demo = subprocess.run(
        [*cmd, "demo", "--once", "--workdir", str(workdir)],
        capture_output=True,
        env=env,
        timeout=timeout_s,
        check=False,
    )
    output = demo.stdout + demo.stderr
    export = workdir / "station" / "scan-export.csv"
    exported = subprocess.run(
        [*cmd, "verifier", "export-log", "--dir", str(workdir / "station"), "--out", str(export)],
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )
    output += exported.stdout + exported.stderr
    names, docs = seeded_people()
    report = audit(workdir, names, docs, output)
    report.output_tail = output.decode("utf-8", "replace").splitlines()[-5:]
    return demo.returncode, report
