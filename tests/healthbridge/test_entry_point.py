"""The `healthbridge` console entry point never shows a user a traceback."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest

from healthbridge import cli
from ledger.log.errors import LedgerError


@pytest.fixture()
def failing_command() -> object:
    """A throwaway subcommand that raises whatever the test asks for."""
    raised: dict[str, BaseException] = {}

    @cli.main.command(name="_explode")
    def explode() -> None:
        raise raised["error"]

    yield raised
    cli.main.commands.pop("_explode", None)


def _run(capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        cli.run(["_explode"])
    return int(exc.value.code or 0), capsys.readouterr().err


def test_domain_error_becomes_one_line(failing_command, capsys, monkeypatch) -> None:
    monkeypatch.delenv("HEALTHBRIDGE_DEBUG", raising=False)
    failing_command["error"] = LedgerError("checkpoint signature does not verify")
    code, err = _run(capsys)
    assert code == cli.EXIT_DOMAIN_ERROR
    assert err.strip() == "error: checkpoint signature does not verify"
    assert "Traceback" not in err


def test_unexpected_bug_is_reported_without_traceback(failing_command, capsys, monkeypatch):
    monkeypatch.delenv("HEALTHBRIDGE_DEBUG", raising=False)
    failing_command["error"] = ZeroDivisionError("division by zero")
    code, err = _run(capsys)
    assert code == cli.EXIT_INTERNAL_ERROR
    assert "ZeroDivisionError" in err and "HEALTHBRIDGE_DEBUG=1" in err
    assert "Traceback" not in err


def test_missing_file_is_an_io_error(failing_command, capsys, monkeypatch) -> None:
    monkeypatch.delenv("HEALTHBRIDGE_DEBUG", raising=False)
    failing_command["error"] = FileNotFoundError(2, "No such file or directory", "/nope.toml")
    code, err = _run(capsys)
    assert code == cli.EXIT_IO_ERROR
    assert "/nope.toml" in err


def test_debug_switch_shows_the_traceback(failing_command, monkeypatch) -> None:
    monkeypatch.setenv("HEALTHBRIDGE_DEBUG", "1")
    failing_command["error"] = ZeroDivisionError("boom")
    with pytest.raises(ZeroDivisionError):
        cli.run(["_explode"])


def test_click_usage_errors_keep_their_own_message(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.run(["ledger", "no-such-subcommand"])
    assert exc.value.code == 2
    assert "No such command" in capsys.readouterr().err


def test_module_entry_point_runs() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "healthbridge", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0
    for group in ("ledger", "issuer", "verifier", "wallet", "demo"):
        assert group in out.stdout
    assert isinstance(cli.main, click.Group)
