"""Tile requests per second: a region's ledger node itself against the same node behind
an nginx cache (deploy/tile-cache/tile-cache.conf.template), clients on the same machine.

The node (gunicorn, one worker x 8 threads, as ledger.wsgi prescribes: one writer per
log) serves a log of 16 full entry bundles; clients on keep-alive connections ask for
random full hash tiles and entry bundles (what thousands of stations ask for while
syncing). Through the cache every answer after the warm-up comes from nginx's disk
cache; the node sees none of them. Prints progress, then one JSON object last:
  node_tile_requests_per_s, cache_tile_requests_per_s, cache_to_node_ratio,
  cache_hit_share (X-Cache-Status HIT among the cached run's answers), requests, clients.
Usage: .venv/bin/python bench/tile_cache.py [--requests 4000] [--clients 8]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_BENCH = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _BENCH]
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
import tomli_w  # noqa: E402

from common.nginx import render_template, run_nginx  # noqa: E402
from common.serving import free_port  # noqa: E402
from ledger.clients.client import LedgerClient  # noqa: E402
from ledger.log.entries import root_public_key_bytes  # noqa: E402
from ledger.node.app import EXTENSION_KEY, create_app  # noqa: E402
from ledger.node.config import encode_ed25519_public_key  # noqa: E402
from ledger.testing import (  # noqa: E402
    ORIGIN,
    REGION,
    anchor,
    key_added,
    make_config,
    make_keys,
    serve,
)

BUNDLES = 16  # full entry bundles of 256 entries in the benchmark log
# One worker per log (ledger.wsgi): its sequencer is the log's single writer.
GUNICORN = (sys.executable, "-m", "gunicorn", "--workers", "1", "--worker-class", "gthread")
GUNICORN += ("--threads", "8", "--log-level", "warning")
TEMPLATE = ROOT / "deploy" / "tile-cache" / "tile-cache.conf.template"


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def build_log(folder: Path) -> Path:
    """Fill a SQLite log in-process, then write the node.toml gunicorn will serve."""
    keys = make_keys(folder)
    url = f"sqlite:///{folder / 'ledger.db'}"
    app = create_app(make_config(keys, url, delay_s=0.02))
    try:
        with serve(app) as base:
            client = LedgerClient(base, keys.writer, timeout=30)
            client.submit([key_added(keys)])
            n = BUNDLES * 256
            for start in range(0, n, 512):
                client.submit([anchor(keys, i) for i in range(start, min(n, start + 512))])
    finally:
        app.extensions[EXTENSION_KEY].sequencer.stop()
        app.extensions[EXTENSION_KEY].store.dispose()
    conf = folder / "node.toml"
    root = root_public_key_bytes(keys.root)
    conf.write_text(
        tomli_w.dumps(
            {
                "region": REGION,
                "origin": ORIGIN,
                "log_key_file": str(keys.skey_file),
                "database_url": url,
                "root_public_key": encode_ed25519_public_key(root),
                "writer_public_keys": [encode_ed25519_public_key(root)],
            }
        ),
        encoding="utf-8",
    )
    return conf


def start_node(conf: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [*GUNICORN, "--bind", f"127.0.0.1:{port}", "ledger.wsgi:app"],
        env={**os.environ, "HEALTHBRIDGE_LEDGER_CONFIG": str(conf)},
        cwd=ROOT,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            requests.get(f"http://127.0.0.1:{port}/checkpoint", timeout=2)
            return proc
        except requests.RequestException:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.2)


def paths() -> list[str]:
    out = [f"/tile/entries/{i:03d}" for i in range(BUNDLES)]
    out += [f"/tile/0/{i:03d}" for i in range(BUNDLES)]
    return out


def load(port: int, total: int, clients: int) -> tuple[float, float]:
    """Requests per second and the share of X-Cache-Status HIT answers."""
    per = total // clients
    hits = [0] * clients
    errors: list[int] = []
    choices = paths()

    def run(k: int) -> None:
        rng = random.Random(k)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for _ in range(per):
            conn.request("GET", rng.choice(choices))
            r = conn.getresponse()
            r.read()
            if r.status != 200:
                errors.append(r.status)
            if r.getheader("X-Cache-Status") == "HIT":
                hits[k] += 1
        conn.close()

    threads = [threading.Thread(target=run, args=(k,)) for k in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"{len(errors)} failed requests, e.g. {errors[:3]}")
    return per * clients / elapsed, sum(hits) / (per * clients)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=4000)
    ap.add_argument("--clients", type=int, default=8)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="hb-bench-tiles-"))
    load_before = os.getloadavg()[0]
    say("filling the log")
    conf = build_log(tmp / "node")
    node_port, cache_port = free_port(), free_port()
    node = start_node(conf, node_port)
    try:
        say("node itself")
        load(node_port, len(paths()) * 2, 2)  # warm the node's page cache
        node_rate, _ = load(node_port, args.requests, args.clients)
        say(f"node: {node_rate:.0f} tiles/s")
        block = render_template(
            TEMPLATE,
            {
                "LEDGER_UPSTREAM": f"127.0.0.1:{node_port}",
                "LISTEN_PORT": f"127.0.0.1:{cache_port}",
                "CACHE_DIR": str(tmp / "cache"),
            },
        )
        with run_nginx(tmp / "nginx", block, cache_port):
            load(cache_port, len(paths()) * 4, 1)  # warm the cache
            cache_rate, hit_share = load(cache_port, args.requests, args.clients)
        say(f"through the cache: {cache_rate:.0f} tiles/s")
    finally:
        node.terminate()
        node.wait(10)
    print(
        json.dumps(
            {
                "node_tile_requests_per_s": round(node_rate, 1),
                "cache_tile_requests_per_s": round(cache_rate, 1),
                "cache_to_node_ratio": round(cache_rate / node_rate, 2),
                "cache_hit_share": round(hit_share, 3),
                "requests": args.requests,
                "clients": args.clients,
                "cpu_count": os.cpu_count(),
                "load_avg_1m_at_start": round(load_before, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
