"""The audit log's CSV export: `render` for the console, API and CLI, and `parse` /
`verify_export` so that anyone holding an export can re-verify its hash chain.

The cells must be safe in a spreadsheet and still give back the exact stored text,
because the row hashes cover the stored text:

1. Every field is quoted (csv.QUOTE_ALL), so no delimiter or quote in a cell can
   start a new cell or row.
2. Control characters (C0 and C1, including CR, LF and TAB) and the Unicode line and
   paragraph separators are written as escapes: `\\xHH` below U+0100, else
   `\\uHHHH`; a backslash is written `\\\\`. No cell holds a line break, so a
   reader that splits on CR cannot start a forged row (OWASP "CSV injection").
3. A cell whose text then starts with `=`, `+`, `-`, `@` or `'` gets one `'` in
   front: spreadsheet programs show it as text instead of running it as a formula,
   and since a stored `'` at the start is escaped the same way, the rule reverses.

`parse` undoes 3 then 2, exactly, so `verify_export` recomputes every row hash with
issuer.audit.chain_hash and checks that each row's prev_hash is the row before's
hash, from the genesis hash on. The last hash and the row count are what the
region's log anchors as an AuditDigest, so an export can also be checked against
the log. What this module does not do: read the database (issuer.audit does).
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from issuer.audit import (
    CSV_COLUMNS,
    GENESIS_HASH,
    AuditChainError,
    AuditEvent,
    Channel,
    Outcome,
    chain_hash,
)
from issuer.models import AdminAuditRecord

FORMULA_STARTS = frozenset("=+-@'")  # leading characters that spreadsheets evaluate
_ESCAPE_RE = re.compile(r"\\(\\|x[0-9a-f]{2}|u[0-9a-f]{4})")
TEXT_COLUMNS = CSV_COLUMNS[2:11]  # actor .. outbox_ids: the cells that carry text


def _needs_escape(ch: str) -> bool:
    return ch == "\\" or unicodedata.category(ch) in ("Cc", "Zl", "Zp")


def encode_cell(text: str) -> str:
    """The stored text as a spreadsheet-safe, reversible cell."""
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif _needs_escape(ch):
            n = ord(ch)
            out.append(f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}")
        else:
            out.append(ch)
    cell = "".join(out)
    return "'" + cell if cell[:1] in FORMULA_STARTS else cell


def decode_cell(cell: str) -> str:
    """The stored text of a cell written by `encode_cell`; AuditChainError otherwise."""
    if cell[:1] == "'":
        cell = cell[1:]
        if cell[:1] not in FORMULA_STARTS:
            raise AuditChainError(f"cell {cell[:20]!r}: a leading ' guards only = + - @ '")
    elif cell[:1] in FORMULA_STARTS:
        raise AuditChainError(f"cell {cell[:20]!r}: a formula character without its guard")
    rest = _ESCAPE_RE.sub("", cell)
    if "\\" in rest or any(_needs_escape(c) for c in rest):
        raise AuditChainError(f"cell {cell[:20]!r}: a malformed escape or a raw control")

    def unescape(m: re.Match[str]) -> str:
        code = m.group(1)
        return "\\" if code == "\\" else chr(int(code[1:], 16))

    return _ESCAPE_RE.sub(unescape, cell)


def render(records: Iterable[AdminAuditRecord]) -> str:
    """CSV of the given rows (oldest first), hashes in hex so anyone can re-verify."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_ALL)
    w.writerow(CSV_COLUMNS)
    for r in sorted(records, key=lambda r: r.seq):
        texts = (
            r.actor,
            r.region,
            r.action,
            r.target,
            r.detail,
            r.address,
            r.channel,
            r.outcome,
            r.outbox_ids,
        )
        w.writerow(
            [r.seq, r.at, *(encode_cell(t) for t in texts), r.prev_hash.hex(), r.row_hash.hex()]
        )
    return out.getvalue()


@dataclass(frozen=True)
class ExportedRow:
    seq: int
    at: int
    event: AuditEvent
    prev_hash: bytes
    row_hash: bytes


def _int(cell: str, what: str, line: int) -> int:
    if not cell.isdigit() or len(cell) > 19:
        raise AuditChainError(f"line {line}: expected {what} as digits, found {cell[:20]!r}")
    return int(cell)


def _hash(cell: str, what: str, line: int) -> bytes:
    try:
        raw = bytes.fromhex(cell)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise AuditChainError(f"line {line}: expected {what} as 64 hex digits")
    return raw


def parse(text: str) -> list[ExportedRow]:
    """The rows of an export, cells decoded; AuditChainError on any malformed line."""
    try:
        table = list(csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline="")))
    except csv.Error as e:
        raise AuditChainError(f"not a CSV file: {e}") from e
    if not table or tuple(table[0]) != CSV_COLUMNS:
        raise AuditChainError(f"expected the header {','.join(CSV_COLUMNS)}")
    out = []
    for line, cells in enumerate(table[1:], 2):
        if len(cells) != len(CSV_COLUMNS):
            raise AuditChainError(f"line {line}: expected {len(CSV_COLUMNS)} cells")
        t = dict(zip(TEXT_COLUMNS, (decode_cell(c) for c in cells[2:11]), strict=True))
        try:
            ids = tuple(int(x) for x in t["outbox_ids"].split(",") if x)
            event = AuditEvent(
                t["actor"],
                t["region"],
                t["action"],
                t["target"],
                t["detail"],
                t["address"],
                Channel(t["channel"]),
                Outcome(t["outcome"]),
                ids,
            )
        except ValueError as e:
            raise AuditChainError(f"line {line}: {e}") from e
        out.append(
            ExportedRow(
                _int(cells[0], "seq", line),
                _int(cells[1], "at", line),
                event,
                _hash(cells[11], "prev_hash", line),
                _hash(cells[12], "row_hash", line),
            )
        )
    return out


def verify_export(text: str, start_hash: bytes = GENESIS_HASH) -> tuple[int, bytes]:
    """Re-verify an export end to end: (row count, head hash) or AuditChainError.

    Rows must run 1, 2, 3 ... (or on from the row after `start_hash` for a partial
    export), each prev_hash must be the hash of the row before, and each row hash
    must be the chain hash of the row's own decoded cells."""
    prev, expected_seq, n = start_hash, None, 0
    for row in parse(text):
        if expected_seq is None and start_hash == GENESIS_HASH and row.seq != 1:
            raise AuditChainError(f"expected the export to start at row 1, found {row.seq}")
        if expected_seq is not None and row.seq != expected_seq:
            raise AuditChainError(f"expected audit row {expected_seq}, found {row.seq}")
        if row.prev_hash != prev:
            raise AuditChainError(f"audit row {row.seq}: prev_hash does not match row before")
        want = chain_hash(prev, row.seq, row.at, row.event)
        if want != row.row_hash:
            raise AuditChainError(
                f"audit row {row.seq}: expected hash {want.hex()[:16]}, "
                f"found {row.row_hash.hex()[:16]}"
            )
        prev, expected_seq, n = row.row_hash, row.seq + 1, n + 1
    if n == 0:
        raise AuditChainError("the export holds no audit row")
    return n, prev
