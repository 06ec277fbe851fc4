"""`healthbridge ledger init` and `ledger audit` end to end (served node, real HTTP)."""

from __future__ import annotations

import stat
from pathlib import Path

from click.testing import CliRunner

from ledger.cli import cli
from ledger.client import LedgerClient
from ledger.config import load_config
from ledger.node import EXTENSION_KEY, create_app
from tests.ledger.test_node_support import serve


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
