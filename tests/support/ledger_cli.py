"""Ledger command-line helpers for tests that start real nodes: `ledger init` folders
and the consortium file naming the ports the nodes got.

No tests here; the serve-joint and OpenAPI tests use these.
"""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from ledger.cli import cli


def init_node_folder(folder: Path, region: str) -> None:
    # The URL in member.toml is a placeholder: the consortium file is written with the
    # ports the nodes actually got (`consortium init --node-url`).
    args = [
        "init", "--region", region, "--origin", origin_of(region),
        "--dir", str(folder), "--generate-root-key", "--generate-writer-key",
        "--url", "http://127.0.0.1:1",
    ]  # fmt: skip
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    assert "witness verifier key:" in r.output
    assert (folder / "witness.skey").stat().st_mode & 0o777 == 0o600


def origin_of(region: str) -> str:
    return f"{region.lower()}.hb.test/log"


def write_consortium(tmp: Path, ports: dict[str, int]) -> Path:
    """The trust root naming the nodes at `ports` (rewritten on every start attempt)."""
    out = tmp / "consortium.toml"
    args = ["consortium", "init", "--out", str(out), "--force"]
    for region, port in ports.items():
        args += ["--member", str(tmp / region / "member.toml"),
                 "--node-url", f"{region}=http://127.0.0.1:{port}"]  # fmt: skip
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    return out
