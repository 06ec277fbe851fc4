"""Two `healthbridge ledger serve` processes (GD, MO) in joint operation, set up only
with the command line: `ledger init` per region, `ledger consortium init` from the two
member.toml files, `ledger serve --consortium`. GD takes entries, MO validates and
cosigns, `ledger audit` passes against GD and a station's SyncClient syncs both.
Ports come from free_port(), which only proposes one: a lost race (bind error, or a
foreign server answering) is detected and both nodes start over on new ports.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from common.serving import free_port
from credential.keys import SigningAlg, generate_private_key, key_id, public_key_der
from ledger.cli import cli
from ledger.clients.client import LedgerClient
from ledger.clients.sync import RegionStatus, SyncClient, SyncedTrustState
from ledger.log.consortium import load_consortium
from ledger.log.entries import CredentialAnchored, KeyAdded, encode_entry, sign_key_entry
from tests.support.ledger_cli import init_node_folder, origin_of, write_consortium

WAIT_S = 30.0  # seconds; generous for a loaded machine
START_ATTEMPTS = 5  # fresh port pairs tried before giving up
ROOT = Path(__file__).resolve().parents[3]


def _healthbridge() -> list[str]:
    exe = shutil.which("healthbridge", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "healthbridge.cli"]


def _wait_ours(region: str, port: int, proc: subprocess.Popen[bytes], log: Path) -> bool:
    """Wait until the node of `region` answers on `port`; False if the port was taken.

    free_port() only proposes a port: another process on the shared machine may bind
    it first. The node then exits with "Address already in use", or someone else's
    server answers, so the answer's origin is checked to be this region's log.
    """
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            if "Address already in use" in log.read_text(errors="replace")[-4000:]:
                return False
            raise AssertionError(f"node {region} exited: {log.read_text()[-4000:]}")
        try:
            r = requests.get(f"http://127.0.0.1:{port}/v1/status", timeout=1)
            origin = r.json().get("origin") if r.status_code == 200 else None
        except (requests.RequestException, ValueError):
            time.sleep(0.1)
            continue
        if origin == origin_of(region):
            return True
        if origin is not None:
            return False  # a foreign server holds the port
        time.sleep(0.1)
    raise AssertionError(f"node {region} on port {port} did not come up")


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _serve_both(tmp: Path) -> tuple[list[subprocess.Popen[bytes]], dict[str, int]]:
    """Start GD and MO on fresh ports; on a lost port race, stop both and start over
    with new ports (both nodes must name each other in the consortium file)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for attempt in range(START_ATTEMPTS):
        ports = {"GD": free_port(), "MO": free_port()}
        if ports["GD"] == ports["MO"]:
            continue
        consortium = write_consortium(tmp, ports)
        procs: list[subprocess.Popen[bytes]] = []
        logs: list[Path] = []
        for region, port in ports.items():
            cmd = [*_healthbridge(), "ledger", "serve", "--config",
                   str(tmp / region / "node.toml"), "--port", str(port),
                   "--consortium", str(consortium)]  # fmt: skip
            log_path = tmp / f"{region}.{attempt}.log"
            with log_path.open("wb") as log:
                procs.append(subprocess.Popen(cmd, stdout=log, stderr=log, env=env, cwd=ROOT))
            logs.append(log_path)
        try:
            up = all(
                _wait_ours(region, port, proc, log)
                for (region, port), proc, log in zip(ports.items(), procs, logs, strict=True)
            )
        except BaseException:
            _stop(procs)
            raise
        if up:
            return procs, ports
        _stop(procs)
    raise AssertionError(f"no free pair of ports after {START_ATTEMPTS} attempts")


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
    for region in ("GD", "MO"):
        init_node_folder(tmp_path / region, region)
    procs, ports = _serve_both(tmp_path)
    try:
        yield {"tmp": tmp_path, "ports": ports, "consortium": tmp_path / "consortium.toml"}
    finally:
        _stop(procs)


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


@pytest.mark.slow
def test_a_port_taken_before_the_node_binds_it_is_retried_on_new_ports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for region in ("GD", "MO"):
        init_node_folder(tmp_path / region, region)
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        proposals = iter([taken])
        real = free_port
        # The first port proposed is one another process already holds.
        monkeypatch.setattr(
            sys.modules[__name__], "free_port", lambda: next(proposals, None) or real()
        )
        procs, ports = _serve_both(tmp_path)
        try:
            assert taken not in ports.values()
            assert "Address already in use" in (tmp_path / "GD.0.log").read_text()
            for region, port in ports.items():
                status = requests.get(f"http://127.0.0.1:{port}/v1/status", timeout=5).json()
                assert status["origin"] == origin_of(region)
        finally:
            _stop(procs)


def test_serve_on_port_zero_prints_the_bound_address(tmp_path: Path) -> None:
    init_node_folder(tmp_path / "GD", "GD")
    cmd = [*_healthbridge(), "ledger", "serve", "--config", str(tmp_path / "GD" / "node.toml"),
           "--port", "0"]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    try:
        assert proc.stderr is not None
        line = ""
        for _ in range(100):  # startup may log a few lines first
            line = proc.stderr.readline().decode()
            if not line or "listening on" in line:
                break
        assert "listening on http://127.0.0.1:" in line, line
        url = line.rsplit(" ", 1)[1].strip()
        assert not url.endswith(":0")
        status = requests.get(f"{url}/v1/status", timeout=5).json()
        assert status["origin"] == origin_of("GD")
    finally:
        _stop([proc])
        if proc.stderr is not None:
            proc.stderr.close()
