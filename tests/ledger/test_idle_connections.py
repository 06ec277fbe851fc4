"""An attacker without a key opens connections to a ledger node and says nothing.

The real `healthbridge ledger serve` (threaded werkzeug, as docker-compose runs it with
its port open to the other region and to stations) is started with a descriptor limit
of 128, so that exhausting it takes seconds, not thousands of sockets. 200 silent
connections used to hold a thread and a descriptor each for good: the node stopped
accepting and no station could sync until the attacker let go. With `--idle-timeout`
(default 15 s) the node closes each silent connection and answers again.
"""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import time
from pathlib import Path

import requests

from tests.ledger.joint.test_serve_joint import ROOT, _healthbridge, _stop
from tests.support.ledger_cli import init_node_folder, origin_of

DESCRIPTORS = 128  # the node's RLIMIT_NOFILE in this test
SILENT = 200  # connections the attacker opens and leaves silent
IDLE_S = 1.0  # the node's --idle-timeout here


def _limit_descriptors() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (DESCRIPTORS, DESCRIPTORS))


def test_silent_connections_are_closed_and_the_node_answers_again(tmp_path: Path) -> None:
    init_node_folder(tmp_path / "GD", "GD")
    cmd = [*_healthbridge(), "ledger", "serve", "--config", str(tmp_path / "GD" / "node.toml"),
           "--port", "0", "--idle-timeout", str(IDLE_S)]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        cmd, stderr=subprocess.PIPE, env=env, cwd=ROOT, preexec_fn=_limit_descriptors
    )
    silent: list[socket.socket] = []
    try:
        assert proc.stderr is not None
        line = ""
        for _ in range(100):
            line = proc.stderr.readline().decode()
            if not line or "listening on" in line:
                break
        url = line.rsplit(" ", 1)[1].strip()
        host, port = url.removeprefix("http://").rsplit(":", 1)
        assert requests.get(f"{url}/v1/status", timeout=5).json()["origin"] == origin_of("GD")
        for _ in range(SILENT):
            s = socket.create_connection((host, int(port)), timeout=5)
            silent.append(s)
        time.sleep(IDLE_S + 1.5)  # past the idle timeout (and the backlog drained)
        # The node answers an ordinary request again, within a few seconds.
        deadline = time.monotonic() + 10
        while True:
            try:
                r = requests.get(f"{url}/v1/status", timeout=2)
                break
            except requests.RequestException:
                assert time.monotonic() < deadline, "the node no longer answers"
                time.sleep(0.2)
        assert r.status_code == 200
        # And it closed the silent connections it accepted (EOF, not held open).
        closed = 0
        for s in silent[:50]:
            s.settimeout(0.2)
            try:
                closed += s.recv(1) == b""
            except (TimeoutError, ConnectionResetError):
                closed += 0
        assert closed >= 40, closed
        assert proc.poll() is None
    finally:
        for s in silent:
            s.close()
        _stop([proc])
        if proc.stderr is not None:
            proc.stderr.close()
