"""`healthbridge ledger init` and `ledger audit` end to end (served node, real HTTP)."""

from __future__ import annotations

import socket
import stat
from pathlib import Path

from click.testing import CliRunner

from ledger.cli import cli
from ledger.clients.client import LedgerClient
from ledger.node.app import EXTENSION_KEY, create_app
from ledger.node.config import load_config
from ledger.testing import serve


def test_init_writes_secret_files_0600_and_audit_passes(tmp_path: Path) -> None:
    d = tmp_path / "gd"
    r = CliRunner().invoke(
        cli,
        [
            "init",
            "--region",
            "GD",
            "--origin",
            "gd.test/log",
            "--dir",
            str(d),
            "--generate-root-key",
            "--generate-writer-key",
        ],
    )
    assert r.exit_code == 0, r.output
    for name in ("log.skey", "root.pem", "writer.pem"):
        assert stat.S_IMODE((d / name).stat().st_mode) == 0o600
    cfg = load_config(d / "node.toml")
    app = create_app(cfg)
    try:
        with serve(app) as base:
            LedgerClient(base, d / "writer.pem")  # loads the PEM writer key
            vkey = (d / "log.vkey").read_text().strip()
            root = (d / "root.pub").read_text().strip()
            r = CliRunner().invoke(
                cli, ["audit", base, "--vkey", vkey, "--root-public-key", root, "--region", "GD"]
            )
            assert r.exit_code == 0, r.output
            assert '"result": "consistent"' in r.output
            bad = CliRunner().invoke(
                cli,
                ["audit", base, "--vkey", "x+1+AAAA", "--root-public-key", root, "--region", "GD"],
            )
            assert bad.exit_code != 0
    finally:
        app.extensions[EXTENSION_KEY].sequencer.stop()


def test_init_refuses_to_overwrite_a_node(tmp_path: Path) -> None:
    args = [
        "init",
        "--region",
        "GD",
        "--origin",
        "gd.test/log",
        "--dir",
        str(tmp_path),
        "--generate-root-key",
    ]
    assert CliRunner().invoke(cli, args).exit_code == 0
    again = CliRunner().invoke(cli, args)
    assert again.exit_code != 0 and "refusing" in again.output


def test_serve_on_a_taken_port_says_so_without_a_traceback(tmp_path: Path) -> None:
    d = tmp_path / "gd"
    init = ["init", "--region", "GD", "--origin", "gd.test/log", "--dir", str(d),
            "--generate-root-key"]  # fmt: skip
    assert CliRunner().invoke(cli, init).exit_code == 0
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        r = CliRunner().invoke(cli, ["serve", "--config", str(d / "node.toml"),
                                     "--port", str(port)])  # fmt: skip
    assert r.exit_code == 1
    assert "Address already in use" in r.output and str(port) in r.output
    assert "Traceback" not in r.output
    assert r.exc_info is None or r.exc_info[0] is SystemExit
