"""The audit CSV export (issuer.audit_csv): every cell quoted, no raw CR/LF, no cell a
spreadsheet would run as a formula, and still re-verifiable row by row with the
shipped command, whatever text the rows hold."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from issuer import audit, audit_csv
from issuer.admin.cli import admin
from issuer.audit import AuditChainError, AuditEvent, Channel, Outcome
from issuer.config import IssuerConfig
from issuer.context import IssuerContext, ManualClock

HOSTILE = [
    "=1+1",
    "=cmd|' /C calc'!A0",
    "+SUM(A1)",
    "-2+3",
    "@HYPERLINK(x)",
    "'=already guarded",
    "refused read\r=1+1",
    "line one\nline two",
    "tab\tinside",
    "\t=lead tab",
    "\r\n=after crlf",
    'quote " and , comma',
    "back\\slash \\x41 not an escape",
    "line\u2028separator",
    "nul\x00and del\x7f and c1\x85",
    "中文 备注 ok",
    "",
]


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[IssuerContext]:
    c = IssuerContext.open(IssuerConfig(region="GD", data_dir=tmp_path), clock=ManualClock())
    yield c
    c.dispose()


def ev(detail: str, target: str = "GD:17", address: str = "127.0.0.1") -> AuditEvent:
    return AuditEvent(
        "alice", "GD", "revoke", target, detail, address, Channel.CONSOLE, Outcome.OK, (3, 4)
    )


def export(ctx: IssuerContext) -> str:
    with ctx.sessions() as s:
        return audit_csv.render(audit.rows(s))


def fill_hostile(ctx: IssuerContext) -> None:
    for i, text in enumerate(HOSTILE):
        audit.record(
            ctx.sessions, ev(text, target=text[:100], address=text[:60]), 1_800_000_000 + i
        )


def test_hostile_rows_export_without_formulas_or_line_breaks(ctx: IssuerContext) -> None:
    fill_hostile(ctx)
    out = export(ctx)
    # One physical line per row: no CR or LF inside any cell.
    assert len(out.split("\r\n")) == len(HOSTILE) + 2
    assert "\n" not in out.replace("\r\n", "") and "\r" not in out.replace("\r\n", "")
    for line in out.split("\r\n")[1:-1]:
        assert line.startswith('"') and line.endswith('"')  # every cell quoted
    for row in csv.reader(io.StringIO(out, newline="")):
        for cell in row:
            assert cell[:1] not in set("=+-@\t\r"), row


def test_viewer_cannot_start_a_row_through_a_carriage_return(ctx: IssuerContext) -> None:
    audit.record(ctx.sessions, ev("read refused\r=1+1,=2+2"), 1_800_000_000)
    out = export(ctx)
    # Split as a naive viewer would, on CR alone: no piece starts with a formula.
    for piece in out.replace("\r\n", "\n").split("\r"):
        for line in piece.split("\n"):
            assert not line.lstrip('"').startswith("="), line


def test_export_of_hostile_rows_re_verifies_end_to_end(ctx: IssuerContext) -> None:
    fill_hostile(ctx)
    out = export(ctx)
    n, head = audit_csv.verify_export(out)
    with ctx.sessions() as s:
        assert (n, head) == audit.head(s)
    parsed = audit_csv.parse(out)
    assert [r.event.detail for r in parsed] == HOSTILE


def test_edited_export_fails_verification(ctx: IssuerContext) -> None:
    fill_hostile(ctx)
    out = export(ctx)
    with pytest.raises(AuditChainError, match="audit row 3"):
        audit_csv.verify_export(
            out.replace('"+SUM(A1)"', '"+SUM(A2)"').replace("'+SUM(A1)", "'+SUM(A9)")
        )
    lines = out.split("\r\n")
    with pytest.raises(AuditChainError, match="expected audit row 2, found 3"):
        audit_csv.verify_export("\r\n".join([lines[0], lines[1], *lines[3:]]))
    with pytest.raises(AuditChainError, match="guard"):
        audit_csv.verify_export(out.replace("'=1+1", "=1+1"))


@pytest.mark.parametrize(
    "text",
    ["", "seq,at\n", "\x00\x01garbage", '"unterminated', "\ufeff" + ",".join(audit.CSV_COLUMNS)],
)
def test_malformed_exports_raise_typed_errors(text: str) -> None:
    with pytest.raises(AuditChainError):
        audit_csv.verify_export(text)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_cell_encoding_round_trips_and_is_never_a_formula(text: str) -> None:
    cell = audit_csv.encode_cell(text)
    assert audit_csv.decode_cell(cell) == text
    assert cell[:1] not in set("=+-@\t\r\n")
    assert "\r" not in cell and "\n" not in cell


def test_audit_verify_command_checks_an_export(ctx: IssuerContext, tmp_path: Path) -> None:
    fill_hostile(ctx)
    path = tmp_path / "audit.csv"
    path.write_text(export(ctx), encoding="utf-8", newline="")
    with ctx.sessions() as s:
        n, head = audit.head(s)
    r = CliRunner().invoke(admin, ["audit-verify", str(path), "--expect-head", head.hex()])
    assert r.exit_code == 0, r.output
    assert f"{n} audit rows verified; head {head.hex()}" in r.output
    r = CliRunner().invoke(admin, ["audit-verify", str(path), "--expect-head", "00" * 32])
    assert r.exit_code == 1 and "audit_chain_broken" in r.output
    path.write_text(export(ctx).replace("alice", "alicf", 1), encoding="utf-8", newline="")
    r = CliRunner().invoke(admin, ["audit-verify", str(path)])
    assert r.exit_code == 1 and "audit row 1" in r.output and "Traceback" not in r.output
