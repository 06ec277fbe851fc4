"""`healthbridge wallet` on the command line: one-line errors, non-zero exits, no tracebacks."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
import segno  # noqa: F401  (the PNG writer must be importable)
from click.testing import CliRunner

from common.serving import free_port
from mobile_stub.cli import cli
from mobile_stub.device import DEVICE_KEY_FILE
from mobile_stub.wallet import Wallet
from tests.support.wallet import FakeIssuer

NOW = 1_800_000_010.0


def run(folder: Path, *args: str, input: str | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, ["--dir", str(folder), *args], input=input)


def one_line_error(result) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.fixture()
def enrolled_dir(tmp_path: Path) -> Path:
    """A wallet enrolled against the in-memory issuer with credentials valid for a day
    from the real clock (the CLI reads the real clock)."""
    import time

    folder = tmp_path / "wallet"
    issuer = FakeIssuer("GD", time.time())
    wallet = Wallet.open(folder)
    wallet.request_code(issuer, "G12345678")
    wallet.enrol(issuer, "G12345678", "123456", time.time())
    return folder


def test_status_of_an_empty_wallet_says_not_enrolled(tmp_path: Path) -> None:
    result = run(tmp_path / "w", "status")
    assert result.exit_code == 3
    assert "not enrolled" in one_line_error(result)


def test_show_with_a_corrupted_device_key_fails_clearly(enrolled_dir: Path) -> None:
    (enrolled_dir / DEVICE_KEY_FILE).write_bytes(b"not a key at all")
    result = run(enrolled_dir, "show", "--once")
    assert result.exit_code == 4
    assert "corrupted" in one_line_error(result)


def test_show_with_a_deleted_device_key_fails_clearly(enrolled_dir: Path) -> None:
    (enrolled_dir / DEVICE_KEY_FILE).unlink()
    result = run(enrolled_dir, "show", "--once")
    assert result.exit_code == 4
    assert "device key missing" in one_line_error(result)


def test_enrol_with_the_issuer_unreachable_fails_clearly(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = run(tmp_path / "w", "enroll", "--issuer", url, "--document", "G1", "--code", "1")
    assert result.exit_code == 7
    line = one_line_error(result)
    assert "unreachable" in line
    assert "G1" not in line  # the document number is never echoed


def test_refresh_with_the_issuer_unreachable_fails_clearly(enrolled_dir: Path) -> None:
    result = run(enrolled_dir, "refresh")  # the fake issuer's .invalid URL cannot resolve
    assert result.exit_code == 7
    assert "unreachable" in one_line_error(result)


def test_status_lists_the_credential(enrolled_dir: Path) -> None:
    result = run(enrolled_dir, "status")
    assert result.exit_code == 0, result.output
    assert "GD: C** T** M** (**34) GREEN" in result.output
    data = json.loads(run(enrolled_dir, "status", "--json").output)
    assert data["home"] == "GD"
    assert data["credentials"][0]["colour"] == "green"


def test_show_once_prints_a_terminal_qr(enrolled_dir: Path) -> None:
    result = run(enrolled_dir, "show", "--once")
    assert result.exit_code == 0, result.output
    assert "QR version" in result.output
    assert "▀" in result.output  # segno's compact terminal blocks


def test_show_once_text_prints_the_presentation(enrolled_dir: Path) -> None:
    from credential.presentation import QR_PREFIX

    result = run(enrolled_dir, "show", "--once", "--text")
    assert result.exit_code == 0, result.output
    assert result.output.startswith(QR_PREFIX)


def test_qr_writes_a_png_that_decodes_to_the_presentation(
    enrolled_dir: Path, tmp_path: Path
) -> None:
    import cv2
    import zxingcpp

    from credential.presentation import parse_presentation

    out = tmp_path / "code.png"
    result = run(enrolled_dir, "qr", "--out", str(out))
    assert result.exit_code == 0, result.output
    decoded = zxingcpp.read_barcodes(cv2.imread(str(out)))
    assert len(decoded) == 1
    parse_presentation(decoded[0].text)


def test_qr_to_an_unwritable_path_fails_clearly(enrolled_dir: Path, tmp_path: Path) -> None:
    result = run(enrolled_dir, "qr", "--out", str(tmp_path / "no" / "such" / "dir.png"))
    assert "cannot write" in one_line_error(result)


def test_missing_passphrase_file_fails_clearly(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["--dir", str(tmp_path), "--passphrase-file", str(tmp_path / "nope"), "status"]
    )
    assert "passphrase file" in one_line_error(result)


def test_encrypted_key_needs_the_passphrase(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import time

    folder = tmp_path / "wallet"
    issuer = FakeIssuer("GD", time.time())
    wallet = Wallet.open(folder, b"correct horse")
    wallet.request_code(issuer, "G12345678")
    wallet.enrol(issuer, "G12345678", "123456", time.time())
    assert b"ENCRYPTED" in (folder / DEVICE_KEY_FILE).read_bytes()
    assert stat.S_IMODE((folder / DEVICE_KEY_FILE).stat().st_mode) == 0o600

    result = run(folder, "show", "--once", "--text")
    assert result.exit_code == 4
    assert "passphrase" in one_line_error(result)

    secret = tmp_path / "pass"
    secret.write_text("battery staple\n")
    result = CliRunner().invoke(
        cli, ["--dir", str(folder), "--passphrase-file", str(secret), "show", "--once", "--text"]
    )
    assert "wrong passphrase" in one_line_error(result)

    monkeypatch.setenv("HEALTHBRIDGE_WALLET_PASSPHRASE", "correct horse")
    result = run(folder, "show", "--once", "--text")
    assert result.exit_code == 0, result.output
