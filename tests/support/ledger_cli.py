"""Ledger command-line helpers for tests that start real nodes: `ledger init` folders
and the consortium file naming the ports the nodes got.

No tests here; the serve-joint and OpenAPI tests use these.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from click.testing import CliRunner

from ledger.cli import cli
from ledger.log.consortium import load_consortium
from ledger.log.consortium import write_consortium as write_consortium_file
from ledger.log.shards import ShardPlan


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


def shard_member(consortium: Path, region: str, plan: ShardPlan) -> None:
    """Give `region`'s member the shard table `plan` in the consortium file (the node
    of that member is then built sharded, ledger.node.sharding)."""
    c = load_consortium(consortium)
    members = tuple(dataclasses.replace(m, shards=plan) if m.id == region else m for m in c.members)
    write_consortium_file(consortium, dataclasses.replace(c, members=members))
