"""The compose shape on loopback: two issuer instances (gunicorn, separate processes, as
on two hosts) on one PostgreSQL database behind Debian's nginx rendered from
deploy/nginx/issuer.conf.template. Both replicas answer wallets through the
proxy; when one is killed with SIGKILL, nginx sends the requests to the other and its
anchoring worker drains the outbox: every credential handed out is anchored. Each
replica names itself in `X-Issuer-Replica` (its `replica_name`); no answer carries an
upstream address or port: the retries show in nginx's error log, for operators only."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import tomli_w

from common.nginx import render_template, run_nginx
from common.serving import free_port
from issuer import anchor
from issuer.config import render_config
from issuer.testing import (
    device_header,
    enrol_directly,
    ledger_node,
    make_context,
    new_device,
)

pytestmark = pytest.mark.postgres
ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "deploy" / "nginx" / "issuer.conf.template"
PATH = "/v1/credential"
FETCHES = 24
DRAIN_S = 30.0
SERVE = (sys.executable, "-m", "healthbridge", "issuer", "serve")


def _start_issuer(conf: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [*SERVE, "--config", str(conf), "--port", str(port), "--workers", "1", "--threads", "4"],
        cwd=ROOT,
        env={**os.environ},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the gunicorn master and workers
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            requests.get(f"http://127.0.0.1:{port}/v1/status", timeout=2)
            return proc
        except requests.RequestException:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"issuer on {port} did not start") from None
            time.sleep(0.2)


@pytest.mark.slow
def test_issuer_replicas_behind_nginx_survive_the_loss_of_one(
    tmp_path: Path, fresh_postgres_url: str
) -> None:
    ctx = make_context(
        tmp_path, "MO", database_url=fresh_postgres_url, refresh_before_s=10 * 86_400
    )  # every fetch re-issues, so every fetch leaves an anchor to drain
    procs: list[subprocess.Popen[bytes]] = []
    try:
        dev = new_device()
        holder_id = enrol_directly(ctx, "M1000001", dev).holder_id
        with ledger_node(ctx, tmp_path) as node:
            cfg = ctx.config.replace(
                ledger_url=node.url, anchor_worker=True, anchor_interval_s=0.05
            )
            names = ["replica-a", "replica-b"]
            confs = [tmp_path / f"{name}.toml" for name in names]
            for name, conf in zip(names, confs, strict=True):
                text = tomli_w.dumps(render_config(cfg.replace(replica_name=name)))
                conf.write_text(text, encoding="utf-8")
            ports = [free_port(), free_port()]
            procs = [_start_issuer(conf, p) for conf, p in zip(confs, ports, strict=True)]
            lb_port = free_port()
            block = render_template(
                TEMPLATE,
                {
                    "HB_ISSUER_SERVERS": " ".join(f"server 127.0.0.1:{p};" for p in ports),
                    "HB_PROXY_LISTEN": f"127.0.0.1:{lb_port}",
                },
            )
            with run_nginx(tmp_path / "nginx", block, lb_port) as lb:
                session = requests.Session()

                def fetch() -> requests.Response:
                    hdr = {"Authorization": device_header(dev, holder_id, "GET", PATH)}
                    r = session.get(f"{lb}{PATH}", headers=hdr, timeout=30)
                    assert r.status_code == 200, r.text
                    head = "\n".join(f"{k}: {v}" for k, v in r.headers.items())
                    assert "127.0.0.1" not in head + r.text  # no upstream address
                    for p in ports:  # nor port (a base64 credential may hold the digits)
                        assert str(p) not in head, dict(r.headers)
                        assert not re.search(rf"(?<![0-9A-Za-z_-]){p}(?![0-9A-Za-z_-])", r.text)
                    return r

                served_by = {fetch().headers["X-Issuer-Replica"] for _ in range(FETCHES)}
                assert served_by == set(names)  # both replicas answer, each by its name

                # One host dies under the wallets: gunicorn's master and worker alike.
                os.killpg(procs[0].pid, signal.SIGKILL)
                procs[0].wait(10)
                for _ in range(FETCHES):
                    assert fetch().headers["X-Issuer-Replica"] == "replica-b"
                # nginx tried the dead replica first for some of them and retried on the
                # survivor: its error log (operators only) names the upstream it lost.
                errors = (tmp_path / "nginx" / "logs" / "error.log").read_text()
                assert f'upstream: "http://127.0.0.1:{ports[0]}{PATH}' in errors, errors[-2000:]
            # The survivor's anchoring worker drains everything, the dead one's share too.
            deadline = time.monotonic() + DRAIN_S
            while anchor.pending_count(ctx) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert anchor.pending_count(ctx) == 0
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(10)
        ctx.dispose()
