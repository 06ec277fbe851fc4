"""`verifier sync` when a region's own node answers every request correctly but slowly,
over real HTTP on 127.0.0.1: the consortium file names a proxy holding each answer as
GD's node, MO's mirror of GD answers at once. With the station's `[sync_pace]` the
command abandons the slow node, takes GD from the mirror, syncs MO, says which source
was abandoned and why in one line, and exits 0 without a traceback.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from ledger.clients.sync import mirror_prefix
from ledger.log.consortium import build_consortium, write_consortium
from ledger.log.entries import CredentialRevoked, RevocationReason
from tests.support.joint_world import World, build_world, cosigned_by, shutdown, wait_for
from tests.support.slow_proxy import SlowProxy, slow_proxy
from verifier.cli import cli

DELAY_S = 1.0  # seconds the slow node holds each answer


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[World, SlowProxy]]:
    w = build_world(tmp_path, [("GD", False), ("MO", False)], "all")
    proxy = slow_proxy(w.regions["GD"].url, DELAY_S)
    try:
        gd, mo = w.regions["GD"], w.regions["MO"]
        gd.register_key()
        gd.anchor(1)
        mo.register_key()
        mo.anchor(7)
        mo.submit(CredentialRevoked("MO", 7, RevocationReason.FRAUD, 1_700_000_000))
        wait_for(lambda: cosigned_by(gd, 2, 2), "GD size 2 cosigned")
        wait_for(lambda: cosigned_by(mo, 3, 2), "MO size 3 cosigned")
        yield w, proxy
    finally:
        proxy.close()
        shutdown(w)


def test_cli_sync_abandons_a_slow_region_node_for_the_mirror_and_says_so(
    world: tuple[World, SlowProxy], tmp_path: Path
) -> None:
    w, proxy = world
    tables = []
    for m in (w.regions["GD"].keys, w.regions["MO"].keys):
        table = m.table()
        if m.id == "GD":
            table["node_url"] = proxy.url  # what the station believes is GD's node
        tables.append(table)
    consortium_file = tmp_path / "consortium.toml"
    write_consortium(consortium_file, build_consortium(tables, threshold="all"))
    d = tmp_path / "station"
    runner = CliRunner()
    r = runner.invoke(cli, ["init", "--consortium", str(consortium_file), "--dir", str(d)])
    assert r.exit_code == 0, r.output
    with (d / "station.toml").open("a", encoding="utf-8") as f:
        f.write("\n[sync_pace]\nmin_s = 0.5\nmax_avg_s = 0.1\ncap_s = 3.0\n")

    started = time.monotonic()
    r = runner.invoke(cli, ["sync", "--dir", str(d)])
    took = time.monotonic() - started
    out = r.output + (r.stderr or "")
    assert r.exit_code == 0, out
    mirror = mirror_prefix(w.regions["MO"].url, w.regions["GD"].keys.origin)
    assert "GD: updated, size 0 -> 2" in out and f"(from {mirror})" in out
    assert "MO: updated, size 0 -> 3" in out
    assert f"{proxy.url}: slow source abandoned: 1 requests took" in out
    assert "Traceback" not in out
    # GD's checkpoint, then (MO's candidates) the checkpoint of GD's mirror of MO: one
    # slow answer each, nothing more.
    assert proxy.requests() == 2 and took < 2 * DELAY_S + 3.0
