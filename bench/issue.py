"""Issuance throughput of one region's issuer, measured with its ceilings in the same run.

Prints progress lines, then one JSON object on the last line:
  sign_ceiling_per_s      raw ES256 signatures per second (one core, cryptography)
  issued_anchored_per_s   service layer, one process: credentials signed, committed with
                          their outbox row, and anchored on a real ledger node (HTTP on
                          loopback, in-process) until the log holds every anchor (SQLite)
  http_issued_per_s       GET /v1/credential over HTTP to gunicorn (gthread), SQLite, every
                          fetch forced to re-issue; anchoring off (measures the API path)
  service_issued_per_s_postgres  the same re-issuing fetches handed straight to the
                          service layer (GroupCommitter, `clients` threads of one process)
                          on the same PostgreSQL: the ceiling of the HTTP figure below
  http_issued_per_s_postgres   the HTTP figure on PostgreSQL (fsync and synchronous_commit on)
  http_refresh_per_s_postgres  PostgreSQL, credential unchanged (the read path)
  http_to_service_ratio   http_issued_per_s_postgres / service_issued_per_s_postgres: what
                          HTTP, Flask, the device signature check and the read round trip
                          cost (http_to_anchored_service_ratio: against issued_anchored_per_s)
  *_per_sign_ceiling      each HTTP figure over the signing ceiling of the same run
  reissue_cpu_share_* / refresh_cpu_share_*   share of the machine's cores (all of them =
                          1.0) used during each HTTP run by the clients (this process), the
                          gunicorn processes, PostgreSQL, and the whole machine (every
                          user: the rest is other work on a shared machine)
  reissue_per_server_core_s / refresh_per_server_core_s   requests per CPU-second of the
                          gunicorn processes (the figure to size hosts with)
  *_p99_ms                request latency p99 of each HTTP measurement
  cores_for_1500_avg / cores_for_10000_peak   cores needed for re-issuance at those rates,
                          from issued_anchored_per_s (one process keeps about one core busy)
  http_ceiling_wsgi_per_s / http_ceiling_flask_per_s / http_ceiling_flask_verify_per_s
                          the web tier's own ceiling (bench/http_ceiling.py), same run, same
                          gunicorn shape and clients: a bare WSGI callable answering a real
                          credential body, a Flask route built like the issuer's rendering
                          it, and that route verifying the request's HB-Device signature
                          (what any fetch must do at least); *_per_server_core_s likewise
  http_refresh_to_ceiling_ratio / http_issued_to_ceiling_ratio   the PostgreSQL HTTP
                          figures over the verifying route's ceiling (*_per_core_ratio: the
                          same per gunicorn CPU-second, steadier on a shared machine)
Clients: one asyncio loop in this process, `clients` keep-alive HTTP/1.1 connections; every
request carries its own HB-Device header, signed before the clock starts; clients of one
holder overlap, so headers of one holder arrive out of order (the service accepts that
within its reorder window). Default shape: gunicorn 1 worker x 16 threads, 16 clients
(chosen by measurement on 2 shared cores, docs/performance.md).
gunicorn runs as `healthbridge issuer serve` runs it (issuer/gunicorn_conf.py: request
metrics in prometheus_client's multiprocess files), the ceiling apps likewise.
`--history DAYS` gives every holder of the PostgreSQL runs DAYS of past life before the
clock starts: a credential re-issued and a negative test taken each day (a daily
re-issue adds a row a day; the fetch must cost the same a year in: the `history_days`
field says which was measured).
Usage: .venv/bin/python bench/issue.py [--n 1000] [--workers 1 --threads 16 --clients 16]
       [--holders 16] [--history 365] [--skip-postgres] [--skip-sqlite] [--skip-ceiling]
       [--profile SECONDS with HB_PY_SPY]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import secrets
import shutil
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

from bench import http_ceiling
from common.b64 import b64url
from common.pgcluster import DURABLE, pg_bin, throwaway_postgres
from common.serving import free_port
from credential.keys import public_key_der
from issuer import anchor
from issuer.app import credential_body
from issuer.config import render_config
from issuer.context import IssuerContext
from issuer.group_commit import GroupCommitter
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
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # set by issuer/gunicorn_conf.py otherwise
# The file, not the module: importing it would set MULTIPROC_ENV in this process too.
GUNICORN_CONF = Path(__file__).resolve().parents[1] / "issuer" / "gunicorn_conf.py"


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


def service_fetch_rate(
    tmp: Path, n: int, database_url: str, clients: int, holders_n: int, history: int = 0
) -> float:
    """The HTTP benchmark's re-issuing fetches handed straight to the service layer: the
    same GroupCommitter fed by `clients` threads of one process, on the same PostgreSQL,
    without HTTP, Flask, the device signature check or the read round trip."""
    limits = {"code_requests_per_addr": 10 * holders_n, "attempts_per_addr": 10 * holders_n}
    ctx = make_context(
        tmp / "svc-pg", "MO", database_url=database_url, refresh_before_s=10 * 86_400, **limits
    )
    docs = [f"M{4_000_001 + i}" for i in range(holders_n)]
    add_bench_residents(ctx, docs)
    pks = [enrol_directly(ctx, d, new_device()).issued.credential.holder_pk for d in docs]
    add_history(ctx, docs, pks, history)
    committer = GroupCommitter(ctx)
    per_client = n // clients
    now = ctx.now()

    def run(pk: int) -> None:
        for _ in range(per_client):
            committer.fetch(pk, now, now)

    runners = [threading.Thread(target=run, args=(pks[i % len(pks)],)) for i in range(clients)]
    start = time.perf_counter()
    for t in runners:
        t.start()
    for t in runners:
        t.join()
    elapsed = time.perf_counter() - start
    ctx.dispose()
    return per_client * clients / elapsed


def start_gunicorn(
    app: str, env: dict[str, str], workers: int, threads: int
) -> tuple[subprocess.Popen[bytes], str]:
    """gunicorn serving `app` as `healthbridge issuer serve` does (its config file, the
    gthread worker), on a free loopback port; returns once it answers."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--config",
            str(GUNICORN_CONF),
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
            app,
        ],
        env={**os.environ, **env},
        cwd=Path(__file__).resolve().parents[1],
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            requests.get(f"{url}/v1/status", timeout=5)  # any answer will do
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
    workers: int = 1,
    threads: int = 16,
    holders_n: int = 16,
    profile_s: float = 0.0,
    history: int = 0,
) -> dict[str, float]:
    """Fetches per second of GET /v1/credential from `clients` keep-alive connections
    (asyncio, one thread: the clients' own CPU cost is measured and reported). Every
    request carries its own HB-Device header, signed before the clock starts (as a
    wallet signs each fetch); clients of one holder overlap, so headers of one holder
    arrive out of order."""
    name = "http-pg" if database_url else "http"
    name += "-reissue" if reissue else "-refresh"
    refresh = {"refresh_before_s": 10 * 86_400} if reissue else {}  # every fetch re-issues
    # Every enrolment comes from loopback: lift the per-address limits for the set-up.
    limits = {"code_requests_per_addr": 10 * holders_n, "attempts_per_addr": 10 * holders_n}
    ctx = make_context(tmp / name, "MO", database_url=database_url, **refresh, **limits)
    devices = [(new_device(), f"M{2_000_001 + i}") for i in range(holders_n)]
    add_bench_residents(ctx, [doc for _, doc in devices])
    enrolled = [enrol_directly(ctx, doc, dev) for dev, doc in devices]
    holders = [(dev, e.holder_id) for (dev, _doc), e in zip(devices, enrolled, strict=True)]
    pks = [e.issued.credential.holder_pk for e in enrolled]
    add_history(ctx, [doc for _, doc in devices], pks, history)
    conf = tmp / name / "issuer.toml"
    conf.write_text(tomli_w.dumps(render_config(ctx.config)), encoding="utf-8")
    ctx.dispose()
    env = {"HB_ISSUER_CONFIG": str(conf), MULTIPROC_ENV: str(metrics_dir(tmp / name))}
    proc, url = start_gunicorn("issuer.wsgi:app", env, workers, threads)
    try:
        plans = signed_plans(holders, clients, n // clients)
        spy = start_profiler(proc.pid, profile_s, tmp / f"{name}.txt") if profile_s else None
        return drive(proc.pid, url, plans, postmaster_pid(database_url), spy)
    finally:
        proc.terminate()
        proc.wait(10)


def signed_plans(
    holders: list[tuple[ec.EllipticCurvePrivateKey, str]], clients: int, per_client: int
) -> list[list[bytes]]:
    """One header per request, each signed on its own (ECDSA signatures are randomised,
    so no two are equal), all within the skew window; client i speaks for holder i."""
    now = int(time.time())
    plans = []
    for i in range(clients):
        dev, holder_id = holders[i % len(holders)]
        plans.append(
            [
                device_header(dev, holder_id, "GET", "/v1/credential", now).encode()
                for _ in range(per_client)
            ]
        )
    return plans


def drive(
    server_pid: int,
    url: str,
    plans: list[list[bytes]],
    pg_root: int | None = None,
    spy: subprocess.Popen[bytes] | None = None,
) -> dict[str, float]:
    """Send every plan's requests (run_clients) and measure the rate, the latency p99
    and the CPU shares of the clients, the server, PostgreSQL and the machine."""
    host, port = url.removeprefix("http://").split(":")
    cpu0 = cpu_snapshot(server_pid, pg_root)
    start = time.perf_counter()
    latencies, errors = asyncio.run(run_clients(host, int(port), plans))
    elapsed = time.perf_counter() - start
    cpu1 = cpu_snapshot(server_pid, pg_root)
    if spy is not None:
        spy.wait(60)
    if errors:
        raise RuntimeError(f"{len(errors)} failed requests, e.g. {errors[:3]}")
    latencies.sort()
    cores = os.cpu_count() or 1
    share = {k: (cpu1[k] - cpu0[k]) / (elapsed * cores) for k in cpu0}
    return {
        "rate": len(latencies) / elapsed,
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
        **{f"cpu_share_{k}": round(v, 3) for k, v in share.items()},
    }


def metrics_dir(where: Path) -> Path:
    """prometheus_client's multiprocess files of one gunicorn run (issuer.gunicorn_conf
    would otherwise make a temporary folder of its own that nobody removes)."""
    path = where / "prometheus"
    path.mkdir(parents=True, exist_ok=True)
    return path


# The web tier's own ceiling (bench/http_ceiling.py), in the order measured.
CEILING_APPS = {
    "wsgi": "bench.http_ceiling:wsgi_app",
    "flask": "bench.http_ceiling:flask_app",
    "flask_verify": "bench.http_ceiling:flask_verify_app",
}


def web_ceilings(
    tmp: Path,
    n: int,
    clients: int = 16,
    workers: int = 1,
    threads: int = 16,
    holders_n: int = 16,
    profile_s: float = 0.0,
) -> dict[str, dict[str, float]]:
    """The same gunicorn shape and clients as http_rate, serving the ceiling apps
    instead of the issuer: the body is a real credential response of this run's issuer
    code, and each request carries its own signed HB-Device header (the verifying app
    checks it; the others ignore it, as the client cost must be the same)."""
    where = tmp / "ceiling"
    ctx = make_context(where, "MO")
    add_bench_residents(ctx, ["M3000001"])
    body = credential_body(enrol_directly(ctx, "M3000001", new_device()).issued)
    ctx.dispose()
    # Flask's rendering (compact, keys sorted, a final newline), so the bare WSGI app
    # sends the same bytes as the Flask routes.
    rendered = json.dumps(body, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    (where / "body.json").write_text(rendered + "\n", encoding="utf-8")
    holders = [(new_device(), secrets.token_urlsafe(12)) for _ in range(holders_n)]
    keys = {holder_id: b64url(public_key_der(dev)) for dev, holder_id in holders}
    (where / "keys.json").write_text(json.dumps(keys), encoding="utf-8")
    env = {
        http_ceiling.BODY_ENV: str(where / "body.json"),
        http_ceiling.KEYS_ENV: str(where / "keys.json"),
    }
    out = {}
    for name, app in CEILING_APPS.items():
        run_env = {**env, MULTIPROC_ENV: str(metrics_dir(where / name))}
        proc, url = start_gunicorn(app, run_env, workers, threads)
        try:
            plans = signed_plans(holders, clients, n // clients)
            out_file = tmp / f"ceiling-{name}.txt"
            spy = start_profiler(proc.pid, profile_s, out_file) if profile_s else None
            out[name] = drive(proc.pid, url, plans, None, spy)
        finally:
            proc.terminate()
            proc.wait(10)
    return out


async def run_clients(
    host: str, port: int, plans: list[list[bytes]]
) -> tuple[list[float], list[int]]:
    """One keep-alive HTTP/1.1 connection per plan, each sending its requests one after
    the other (a response read whole before the next request)."""
    latencies: list[float] = []
    errors: list[int] = []

    async def one(headers: list[bytes]) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        for auth in headers:
            t0 = time.perf_counter()
            writer.write(
                b"GET /v1/credential HTTP/1.1\r\nHost: " + host.encode() + b"\r\n"
                b"Authorization: " + auth + b"\r\n\r\n"
            )
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            at = head.lower().find(b"\r\ncontent-length:")
            if at < 0:
                raise RuntimeError("response without Content-Length")
            length = int(head[at + 17 : head.index(b"\r\n", at + 2)])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - t0)
            if status != 200:
                errors.append(status)
        writer.close()
        await writer.wait_closed()

    await asyncio.gather(*(one(p) for p in plans))
    return latencies, errors


def _proc_cpu(pid: int) -> tuple[float, float, int]:
    """(own CPU seconds, reaped children's CPU seconds, parent pid) from /proc."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0, 0.0, -1
    fields = raw[raw.rindex(")") + 2 :].split()
    tick = os.sysconf("SC_CLK_TCK")
    own = (int(fields[11]) + int(fields[12])) / tick
    reaped = (int(fields[13]) + int(fields[14])) / tick
    return own, reaped, int(fields[1])


def tree_cpu(root: int | None) -> float:
    """CPU seconds of a process, its live descendants and its reaped children."""
    if root is None:
        return 0.0
    parents: dict[int, int] = {}
    own: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            mine, _reaped, ppid = _proc_cpu(int(entry))
            parents[int(entry)], own[int(entry)] = ppid, mine
    total = sum(_proc_cpu(root)[:2])
    frontier = {root}
    while frontier:
        kids = {p for p, pp in parents.items() if pp in frontier}
        total += sum(own[k] for k in kids)
        frontier = kids
    return total


def postmaster_pid(database_url: str) -> int | None:
    """The PostgreSQL server serving `database_url` (found by its port), if local."""
    if not database_url:
        return None
    port = database_url.rsplit(":", 1)[1].split("/", 1)[0]
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if (
            argv
            and argv[0].endswith(b"postgres")
            and b"-p" in argv
            and argv[argv.index(b"-p") + 1] == port.encode()
        ):
            return int(entry)
    return None


def machine_busy() -> float:
    """CPU seconds spent busy by the whole machine (all cores, every user)."""
    parts = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(x) for x in parts]
    idle = ticks[3] + ticks[4]  # idle, iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def cpu_snapshot(server_pid: int, pg_pid: int | None) -> dict[str, float]:
    t = os.times()
    return {
        "clients": t.user + t.system,  # this process: only the client loop runs now
        "server": tree_cpu(server_pid),
        "postgres": tree_cpu(pg_pid),
        "machine": machine_busy(),
    }


def start_profiler(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes] | None:
    """Sample the gunicorn workers with py-spy (HB_PY_SPY names its binary), if given;
    HB_PY_SPY_ARGS adds options (`--gil`: only the thread holding the interpreter lock,
    which on 2 cores and 16 threads tells CPU from waiting for the lock)."""
    spy = os.environ.get("HB_PY_SPY")
    if not spy:
        return None
    extra = os.environ.get("HB_PY_SPY_ARGS", "").split()
    return subprocess.Popen(
        [spy, "record", "--pid", str(pid), "--subprocesses", "--duration", str(int(seconds)),
         "--format", "raw", "--output", str(out), "--rate", "200", "--nonblocking", *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


def per_core(run: dict[str, float]) -> float:
    """Requests per CPU-second of the gunicorn processes during `run`."""
    busy = run["cpu_share_server"] * (os.cpu_count() or 1)
    return round(run["rate"] / busy, 1) if busy > 0 else 0.0


def share(part: float, whole: float) -> float:
    return round(part / whole, 3) if whole > 0 else 0.0


def add_bench_residents(ctx: IssuerContext, docs: list[str]) -> None:
    """Residents with a recent negative test beyond the demo seed, one per holder."""
    add_residents(ctx, [{"document_number": d, "name": f"Resident {d}"} for d in docs])
    now = ctx.now()
    add_records(
        ctx,
        [(d, HealthRecord(RecordKind.TEST, now - 3_600, LabResult.NEGATIVE)) for d in docs],
        "bench",
    )


def add_history(ctx: IssuerContext, docs: list[str], pks: list[int], days: int) -> None:
    """`days` of past life for each holder: a negative test a day (older than the
    current one, so no status changes and nothing is revoked) and a credential re-issued
    a day, the newest last."""
    if days <= 0:
        return
    now = ctx.now()
    add_records(
        ctx,
        [
            (d, HealthRecord(RecordKind.TEST, now - 2 * 3_600 - k * 86_400, LabResult.NEGATIVE))
            for d in docs
            for k in range(1, days + 1)
        ],
        "bench",
    )
    for pk in pks:
        with ctx.sessions.begin() as s:
            holder = s.get_one(Holder, pk)
            issue_many(ctx, s, [(holder, None)] * days, now)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000, help="issuances per measurement")
    ap.add_argument("--group", type=int, default=64, help="issuances per transaction")
    ap.add_argument("--workers", type=int, default=1, help="gunicorn worker processes")
    ap.add_argument("--threads", type=int, default=16, help="threads per gunicorn worker")
    ap.add_argument("--clients", type=int, default=16, help="client connections")
    ap.add_argument("--holders", type=int, default=16, help="enrolled holders")
    ap.add_argument(
        "--history", type=int, default=0, help="days of past credentials and tests per holder"
    )
    ap.add_argument("--skip-postgres", action="store_true")
    ap.add_argument("--skip-sqlite", action="store_true", help="no SQLite HTTP figure")
    ap.add_argument("--skip-ceiling", action="store_true", help="no web-tier ceiling")
    ap.add_argument(
        "--profile", type=float, default=0.0, help="seconds of py-spy sampling (HB_PY_SPY)"
    )
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="hb-bench-issue-"))
    shape = {
        "workers": args.workers,
        "threads": args.threads,
        "clients": args.clients,
        "holders_n": args.holders,
        "profile_s": args.profile,
    }
    load_before = os.getloadavg()[0]
    ceiling = sign_ceiling()
    print(f"sign ceiling: {ceiling:.0f}/s", file=sys.stderr)
    svc = service_rate(tmp, args.n, args.group)
    print(f"service layer, anchored: {svc:.0f}/s", file=sys.stderr)
    result: dict[str, object] = {"issued_anchored_per_s": round(svc, 1)}
    on_pg: dict[str, dict[str, float]] = {}  # the PostgreSQL HTTP runs, by kind
    if not args.skip_sqlite:
        http = http_rate(tmp, args.n, **shape)
        print(f"http sqlite re-issuing: {http['rate']:.0f}/s", file=sys.stderr)
        result |= {
            "http_issued_per_s": round(http["rate"], 1),
            "http_issued_p99_ms": round(http["p99_ms"], 1),
        }
    if not args.skip_postgres and pg_bin() is None:
        result["postgres_skipped"] = "PostgreSQL server binaries not installed"
    elif not args.skip_postgres:
        # fsync and synchronous_commit on: the figures include the durable commit.
        with throwaway_postgres("bench", durability=DURABLE, folder_prefix="hb-bench-pg-") as url:
            base = service_fetch_rate(tmp, args.n, url, args.clients, args.holders, args.history)
            print(f"service layer postgres re-issuing: {base:.0f}/s", file=sys.stderr)
            pg = http_rate(tmp, args.n, database_url=url, history=args.history, **shape)
            print(f"http postgres re-issuing: {pg['rate']:.0f}/s", file=sys.stderr)
            ref = http_rate(
                tmp, 2 * args.n, database_url=url, reissue=False, history=args.history, **shape
            )
            print(f"http postgres unchanged: {ref['rate']:.0f}/s", file=sys.stderr)
            on_pg = {"reissue": pg, "refresh": ref}
            result |= {
                "service_issued_per_s_postgres": round(base, 1),
                "http_issued_per_s_postgres": round(pg["rate"], 1),
                "http_issued_p99_ms_postgres": round(pg["p99_ms"], 1),
                "http_refresh_per_s_postgres": round(ref["rate"], 1),
                "http_refresh_p99_ms_postgres": round(ref["p99_ms"], 1),
                # The HTTP path against the same fetches handed straight to the
                # service layer (group commit, same PostgreSQL, same run): what HTTP,
                # Flask, the device signature check and the read round trip cost.
                "http_to_service_ratio": round(pg["rate"] / base, 3),
                # The earlier definition: against the anchored SQLite service layer.
                "http_to_anchored_service_ratio": round(pg["rate"] / svc, 3),
                "http_issued_postgres_per_sign_ceiling": round(pg["rate"] / ceiling, 4),
                "http_refresh_postgres_per_sign_ceiling": round(ref["rate"] / ceiling, 4),
                **{f"reissue_{k}": v for k, v in pg.items() if k.startswith("cpu_")},
                "reissue_per_server_core_s": per_core(pg),
                "refresh_per_server_core_s": per_core(ref),
                **{f"refresh_{k}": v for k, v in ref.items() if k.startswith("cpu_")},
            }
    if not args.skip_ceiling:
        web = web_ceilings(tmp, 2 * args.n, **shape)
        for name, run in web.items():
            print(f"http ceiling {name}: {run['rate']:.0f}/s", file=sys.stderr)
            result |= {
                f"http_ceiling_{name}_per_s": round(run["rate"], 1),
                f"http_ceiling_{name}_p99_ms": round(run["p99_ms"], 1),
                f"http_ceiling_{name}_per_server_core_s": per_core(run),
                f"http_ceiling_{name}_cpu_share_server": run["cpu_share_server"],
            }
        verify = web["flask_verify"]
        if on_pg:
            # What the issuer's fetches reach of the least any fetch must do (HTTP,
            # Flask, one ES256 verification) in the same gunicorn shape and run; the
            # per-CPU-second ratios do not depend on how much of the machine each
            # measurement got.
            pg, ref = on_pg["reissue"], on_pg["refresh"]
            result |= {
                "http_refresh_to_ceiling_ratio": round(ref["rate"] / verify["rate"], 3),
                "http_issued_to_ceiling_ratio": round(pg["rate"] / verify["rate"], 3),
                "refresh_to_ceiling_per_core_ratio": share(per_core(ref), per_core(verify)),
                "reissue_to_ceiling_per_core_ratio": share(per_core(pg), per_core(verify)),
            }
    result |= {
        "sign_ceiling_per_s": round(ceiling, 1),
        "n": args.n,
        "group_commit": args.group,
        "history_days": args.history,
        **{f"gunicorn_{k}" if k in ("workers", "threads") else k: v for k, v in shape.items()},
        "cpu_count": os.cpu_count(),
        "load_avg_1m_at_start": round(load_before, 2),
        "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
        "cores_for_1500_avg": math.ceil(AVERAGE_RATE / svc),
        "cores_for_10000_peak": math.ceil(PEAK_RATE / svc),
        "signing_share_of_issuance": round(svc / ceiling, 3),
    }
    print(json.dumps(result))
    shutil.rmtree(tmp, ignore_errors=True)  # databases and keys of this run (kept on failure)


if __name__ == "__main__":
    main()
