"""Two `healthbridge ledger serve` processes (GD, MO) in joint operation, set up only
with the command line: `ledger init` per region, `ledger consortium init` from the two
member.toml files, `ledger serve --consortium`. GD takes entries, MO validates and
cosigns, `ledger audit` passes against GD and a station's SyncClient syncs both.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from credential.keys import SigningAlg, generate_private_key, key_id, public_key_der
from ledger.cli import cli
from ledger.client import LedgerClient
from ledger.consortium import load_consortium
from ledger.entries import CredentialAnchored, KeyAdded, encode_entry, sign_key_entry
from ledger.sync import RegionStatus, SyncClient, SyncedTrustState
from tests.conftest import free_port

WAIT_S = 30.0  # seconds; generous for a loaded machine
ROOT = Path(__file__).resolve().parents[2]


def _healthbridge() -> list[str]:
    exe = shutil.which("healthbridge", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "healthbridge.cli"]


def _init(folder: Path, region: str, port: int) -> None:
    args = [
        "init", "--region", region, "--origin", f"{region.lower()}.hb.test/log",
        "--dir", str(folder), "--generate-root-key", "--generate-writer-key",
        "--url", f"http://127.0.0.1:{port}",
    ]  # fmt: skip
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    assert "witness verifier key:" in r.output
    assert (folder / "witness.skey").stat().st_mode & 0o777 == 0o600


def _wait_up(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"node at {url} exited with {proc.returncode}")
        try:
            if requests.get(f"{url}/v1/status", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise AssertionError(f"node at {url} did not come up")


def _wait_cosigned(url: str, size: int) -> bytes:
    """The checkpoint of `size` once it carries the log's and both witnesses' lines."""
    deadline = time.monotonic() + WAIT_S
    note = b""
    while time.monotonic() < deadline:
        note = requests.get(f"{url}/checkpoint", timeout=5).content
        if f"\n{size}\n".encode() in note and note.count("\u2014 ".encode()) >= 3:
            return note
        time.sleep(0.1)
    raise AssertionError(f"{url} not cosigned at size {size}: {note.decode()}")


@pytest.fixture
def two_regions(tmp_path: Path) -> Iterator[dict[str, object]]:
    ports = {"GD": free_port(), "MO": free_port()}
    for region, port in ports.items():
        _init(tmp_path / region, region, port)
    consortium = tmp_path / "consortium.toml"
    r = CliRunner().invoke(
        cli,
        ["consortium", "init", "--member", str(tmp_path / "GD" / "member.toml"),
         "--member", str(tmp_path / "MO" / "member.toml"), "--out", str(consortium)],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    procs: list[subprocess.Popen[bytes]] = []
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    try:
        for region, port in ports.items():
            cmd = [*_healthbridge(), "ledger", "serve", "--config",
                   str(tmp_path / region / "node.toml"), "--port", str(port),
                   "--consortium", str(consortium)]  # fmt: skip
            with (tmp_path / f"{region}.log").open("wb") as log:
                procs.append(subprocess.Popen(cmd, stdout=log, stderr=log, env=env, cwd=ROOT))
        for (_region, port), proc in zip(ports.items(), procs, strict=True):
            _wait_up(f"http://127.0.0.1:{port}", proc)
        yield {"tmp": tmp_path, "ports": ports, "consortium": consortium}
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.mark.slow
def test_served_regions_cosign_each_other_audit_and_station_sync(
    two_regions: dict[str, object],
) -> None:
    tmp = two_regions["tmp"]
    ports = two_regions["ports"]
    assert isinstance(tmp, Path) and isinstance(ports, dict)
    gd_url = f"http://127.0.0.1:{ports['GD']}"
    root = load_pem_private_key((tmp / "GD" / "root.pem").read_bytes(), None)
    issuer = generate_private_key(SigningAlg.ES256)
    der = public_key_der(issuer)
    kid = key_id(der)
    added = sign_key_entry(KeyAdded("GD", kid, SigningAlg.ES256, der, 0, None), root)
    writer = LedgerClient(gd_url, tmp / "GD" / "writer.pem", timeout=10)
    writer.submit([encode_entry(added)])
    writer.submit(
        [encode_entry(CredentialAnchored("GD", bytes([i]) * 32, i, kid, 4_000_000_000))
         for i in range(1, 4)]
    )  # fmt: skip

    # MO's witness (another process) cosigns GD's checkpoint of size 4; GD's witness
    # cosigns MO's empty log (retried once GD is up).
    note = _wait_cosigned(gd_url, 4)
    assert b"mo.hb.test/witness" in note
    _wait_cosigned(f"http://127.0.0.1:{ports['MO']}", 0)

    vkey = (tmp / "GD" / "log.vkey").read_text().strip()
    root_pub = (tmp / "GD" / "root.pub").read_text().strip()
    r = CliRunner().invoke(
        cli, ["audit", gd_url, "--vkey", vkey, "--root-public-key", root_pub, "--region", "GD"]
    )
    assert r.exit_code == 0, r.output
    assert '"result": "consistent"' in r.output

    station = SyncClient(load_consortium(two_regions["consortium"]), tmp / "station.db")  # type: ignore[arg-type]
    try:
        report = station.sync()
    finally:
        station.close()
    assert report.region("GD").status is RegionStatus.UPDATED
    assert report.region("GD").new_size == 4
    assert report.region("MO").status is not RegionStatus.FAILED
    state = SyncedTrustState(tmp / "station.db")
    try:
        assert state.key("GD", kid) is not None
        assert state.anchored_at("GD", bytes([2]) * 32) is not None
    finally:
        state.close()
