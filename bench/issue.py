"""Issuance throughput of one region's issuer, measured with its ceiling in the same run.

Prints progress lines, then one JSON object on the last line:
  sign_ceiling_per_s      raw ES256 signatures per second (one core, cryptography)
  issued_anchored_per_s   service layer, one process: credentials signed, committed with
                          their outbox row, and anchored on a real ledger node (HTTP on
                          loopback, in-process) until the log holds every anchor
  http_issued_per_s       GET /v1/credential over HTTP to gunicorn (2 gthread workers x 8
                          threads, 16 client connections, group commit), SQLite, every
                          fetch forced to re-issue; anchoring off (measures the API path)
  http_issued_per_s_postgres   the same on PostgreSQL (fsync and synchronous_commit on)
  http_refresh_per_s_postgres  PostgreSQL, credential unchanged (the read path)
  http_to_service_ratio   http_issued_per_s_postgres / issued_anchored_per_s (same run)
  *_p99_ms                request latency p99 of each HTTP measurement
  cores_for_1500_avg / cores_for_10000_peak   cores needed for re-issuance at those rates,
                          from issued_anchored_per_s (one process keeps about one core busy)
Clients sign their HB-Device header once and clients of one holder overlap, so headers
of one holder arrive out of order (the service accepts that within its reorder window).
Usage: .venv/bin/python bench/issue.py [--n 1000] [--workers 2 --threads 8 --clients 16]
       [--skip-postgres]
"""

from __future__ import annotations

import argparse
import http.client
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

from bench.pgcluster import throwaway_postgres
from common.serving import free_port
from issuer import anchor
from issuer.config import render_config
from issuer.context import IssuerContext
from issuer.issuance import issue_many
from issuer.models import Holder
from issuer.residents import add_records, add_residents
from issuer.status_rules import HealthRecord, LabResult, RecordKind
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


def start_gunicorn(conf: Path, workers: int, threads: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "HB_ISSUER_CONFIG": str(conf)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            str(workers),
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
    deadline = time.monotonic() + 60
    while True:
        try:
            requests.get(f"{url}/v1/status", timeout=5)
            return proc, url
        except requests.RequestException:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.terminate()
                raise
            time.sleep(0.2)


def http_rate(
    tmp: Path,
    n: int,
    database_url: str = "",
    reissue: bool = True,
    clients: int = 16,
    workers: int = 2,
    threads: int = 8,
    holders_n: int = 16,
) -> dict[str, float]:
    """Fetches per second of GET /v1/credential from `clients` keep-alive connections.
    Each client signs its HB-Device header once (a wallet retrying within the skew
    window); clients of one holder overlap, so their headers arrive out of order."""
    name = "http-pg" if database_url else "http"
    name += "-reissue" if reissue else "-refresh"
    refresh = {"refresh_before_s": 10 * 86_400} if reissue else {}  # every fetch re-issues
    # Every enrolment comes from loopback: lift the per-address limits for the set-up.
    limits = {"code_requests_per_addr": 10 * holders_n, "attempts_per_addr": 10 * holders_n}
    ctx = make_context(tmp / name, "MO", database_url=database_url, **refresh, **limits)
    devices = [(new_device(), f"M{2_000_001 + i}") for i in range(holders_n)]
    add_bench_residents(ctx, [doc for _, doc in devices])
    holders = [(dev, enrol_directly(ctx, doc, dev).holder_id) for dev, doc in devices]
    conf = tmp / name / "issuer.toml"
    conf.write_text(tomli_w.dumps(render_config(ctx.config)), encoding="utf-8")
    ctx.dispose()
    proc, url = start_gunicorn(conf, workers, threads)
    host, port = url.removeprefix("http://").split(":")
    try:
        per_client = n // clients
        errors: list[int] = []
        latencies: list[float] = []
        lock = threading.Lock()

        def run(dev: ec.EllipticCurvePrivateKey, holder_id: str) -> None:
            conn = http.client.HTTPConnection(host, int(port), timeout=30)
            hdr = {"Authorization": device_header(dev, holder_id, "GET", "/v1/credential")}
            mine: list[float] = []
            for _ in range(per_client):
                t0 = time.perf_counter()
                conn.request("GET", "/v1/credential", headers=hdr)
                r = conn.getresponse()
                r.read()
                mine.append(time.perf_counter() - t0)
                if r.status != 200:
                    with lock:
                        errors.append(r.status)
            conn.close()
            with lock:
                latencies.extend(mine)

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
        latencies.sort()
        return {
            "rate": per_client * clients / elapsed,
            "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
        }
    finally:
        proc.terminate()
        proc.wait(10)


def add_bench_residents(ctx: IssuerContext, docs: list[str]) -> None:
    """Residents with a recent negative test beyond the demo seed, one per holder."""
    add_residents(ctx, [{"document_number": d, "name": f"Resident {d}"} for d in docs])
    now = ctx.now()
    add_records(
        ctx,
        [(d, HealthRecord(RecordKind.TEST, now - 3_600, LabResult.NEGATIVE)) for d in docs],
        "bench",
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000, help="issuances per measurement")
    ap.add_argument("--group", type=int, default=64, help="issuances per transaction")
    ap.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    ap.add_argument("--threads", type=int, default=8, help="threads per gunicorn worker")
    ap.add_argument("--clients", type=int, default=16, help="client connections")
    ap.add_argument("--skip-postgres", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="hb-bench-issue-"))
    shape = {"workers": args.workers, "threads": args.threads, "clients": args.clients}
    load_before = os.getloadavg()[0]
    ceiling = sign_ceiling()
    print(f"sign ceiling: {ceiling:.0f}/s", file=sys.stderr)
    svc = service_rate(tmp, args.n, args.group)
    print(f"service layer, anchored: {svc:.0f}/s", file=sys.stderr)
    http = http_rate(tmp, args.n, **shape)
    print(f"http sqlite re-issuing: {http['rate']:.0f}/s", file=sys.stderr)
    result: dict[str, object] = {
        "issued_anchored_per_s": round(svc, 1),
        "http_issued_per_s": round(http["rate"], 1),
        "http_issued_p99_ms": round(http["p99_ms"], 1),
    }
    if not args.skip_postgres:
        with throwaway_postgres() as url:
            if url is None:
                result["postgres_skipped"] = "PostgreSQL server binaries not installed"
            else:
                pg = http_rate(tmp, args.n, database_url=url, **shape)
                print(f"http postgres re-issuing: {pg['rate']:.0f}/s", file=sys.stderr)
                ref = http_rate(tmp, 2 * args.n, database_url=url, reissue=False, **shape)
                print(f"http postgres unchanged: {ref['rate']:.0f}/s", file=sys.stderr)
                result |= {
                    "http_issued_per_s_postgres": round(pg["rate"], 1),
                    "http_issued_p99_ms_postgres": round(pg["p99_ms"], 1),
                    "http_refresh_per_s_postgres": round(ref["rate"], 1),
                    "http_refresh_p99_ms_postgres": round(ref["p99_ms"], 1),
                    # The HTTP path on the production engine against the service layer
                    # measured in this run (same signing, plus HTTP, auth and workers).
                    "http_to_service_ratio": round(pg["rate"] / svc, 3),
                }
    result |= {
        "sign_ceiling_per_s": round(ceiling, 1),
        "n": args.n,
        "group_commit": args.group,
        **{f"gunicorn_{k}" if k != "clients" else k: v for k, v in shape.items()},
        "cpu_count": os.cpu_count(),
        "load_avg_1m_at_start": round(load_before, 2),
        "cores_for_1500_avg": math.ceil(AVERAGE_RATE / svc),
        "cores_for_10000_peak": math.ceil(PEAK_RATE / svc),
        "signing_share_of_issuance": round(svc / ceiling, 3),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
