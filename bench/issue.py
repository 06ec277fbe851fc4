"""Issuance throughput of one region's issuer, measured with its ceiling in the same run.

Prints progress lines, then one JSON object on the last line:
  sign_ceiling_per_s      raw ES256 signatures per second (one core, cryptography)
  issued_anchored_per_s   service layer, one process: credentials signed, committed with
                          their outbox row, and anchored on a real ledger node (HTTP on
                          loopback, in-process) until the log holds every anchor
  http_issued_per_s       GET /v1/credential over HTTP to gunicorn (2 gthread workers x 8
                          threads, 16 client threads, group commit), every
                          fetch forced to re-issue; anchoring off (measures the API path)
  cores_for_1500_avg / cores_for_10000_peak   cores needed for re-issuance at those rates,
                          from issued_anchored_per_s (one process keeps about one core busy)
Usage: .venv/bin/python bench/issue.py [--n 1000]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import requests
import tomli_w
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from common.serving import free_port
from issuer import anchor
from issuer.config import render_config
from issuer.issuance import issue_many
from issuer.models import Holder
from issuer.testing import (
    device_header,
    enrol_directly,
    ledger_node,
    make_context,
    new_device,
)

AVERAGE_RATE = 1_500  # re-issuances per second, regional average
PEAK_RATE = 10_000  # re-issuances per second, regional peak
CEILING_SECONDS = 2.0


def sign_ceiling() -> float:
    key = ec.generate_private_key(ec.SECP256R1())
    msg = b"x" * 300
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < CEILING_SECONDS:
        key.sign(msg, ec.ECDSA(hashes.SHA256()))
        n += 1
    return n / (time.perf_counter() - start)


def service_rate(tmp: Path, n: int, group: int) -> float:
    ctx = make_context(tmp / "svc", "GD")
    enrol_directly(ctx, "G10000001", new_device())
    with ledger_node(ctx, tmp / "svc") as node:
        port = anchor.ClientLedgerPort(node.url, ctx.keys.writer_key(), 30)
        anchor.drain(ctx, port)
        worker = anchor.AnchorWorker(ctx, port).start()
        start = time.perf_counter()
        with ctx.sessions() as s:
            holder_id = s.query(Holder).one().id
        for start_i in range(0, n, group):
            # Group commit: `group` issuances per transaction, each credential handed
            # out only after the commit of its outbox row.
            with ctx.sessions.begin() as s:
                holder = s.get_one(Holder, holder_id)
                k = min(group, n - start_i)
                issue_many(ctx, s, [(holder, None)] * k, int(time.time()))
            worker.wake()
        while anchor.pending_count(ctx) > 0:
            time.sleep(0.01)
        elapsed = time.perf_counter() - start
        worker.stop()
    ctx.dispose()
    return n / elapsed


def http_rate(tmp: Path, n: int, clients: int = 16, threads: int = 8) -> float:
    ctx = make_context(tmp / "http", "MO", refresh_before_s=10 * 86_400)  # every fetch re-issues
    devices = [(new_device(), doc) for doc in ("M1000001", "M1000002", "M1000003", "M1000004")]
    holders = [(dev, enrol_directly(ctx, doc, dev).holder_id) for dev, doc in devices]
    conf = tmp / "http" / "issuer.toml"
    conf.write_text(tomli_w.dumps(render_config(ctx.config)), encoding="utf-8")
    ctx.dispose()
    port = free_port()
    env = {**os.environ, "HB_ISSUER_CONFIG": str(conf)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            "2",
            "--worker-class",
            "gthread",
            "--threads",
            str(threads),
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            "issuer.wsgi:app",
        ],
        env=env,
        cwd=Path(__file__).resolve().parents[1],
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"{url}/v1/status", timeout=5)
                break
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        per_client = n // clients
        errors: list[int] = []

        def run(dev: ec.EllipticCurvePrivateKey, holder_id: str) -> None:
            session = requests.Session()
            hdr = {"Authorization": device_header(dev, holder_id, "GET", "/v1/credential")}
            for _ in range(per_client):
                r = session.get(f"{url}/v1/credential", headers=hdr, timeout=30)
                if r.status_code != 200:
                    errors.append(r.status_code)

        runners = [
            threading.Thread(target=run, args=holders[i % len(holders)]) for i in range(clients)
        ]
        start = time.perf_counter()
        for t in runners:
            t.start()
        for t in runners:
            t.join()
        elapsed = time.perf_counter() - start
        if errors:
            raise RuntimeError(f"{len(errors)} failed requests, e.g. {errors[:3]}")
        return per_client * clients / elapsed
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000, help="issuances per measurement")
    ap.add_argument("--group", type=int, default=64, help="issuances per transaction")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="hb-bench-issue-"))
    ceiling = sign_ceiling()
    print(f"sign ceiling: {ceiling:.0f}/s", file=sys.stderr)
    svc = service_rate(tmp, args.n, args.group)
    print(f"service layer, anchored: {svc:.0f}/s", file=sys.stderr)
    http = http_rate(tmp, args.n)
    print(f"http (gunicorn, 2 workers x 8 threads): {http:.0f}/s", file=sys.stderr)
    print(
        json.dumps(
            {
                "issued_anchored_per_s": round(svc, 1),
                "http_issued_per_s": round(http, 1),
                "sign_ceiling_per_s": round(ceiling, 1),
                "n": args.n,
                "group_commit": args.group,
                "cpu_count": os.cpu_count(),
                "cores_for_1500_avg": math.ceil(AVERAGE_RATE / svc),
                "cores_for_10000_peak": math.ceil(PEAK_RATE / svc),
                "signing_share_of_issuance": round(svc / ceiling, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
