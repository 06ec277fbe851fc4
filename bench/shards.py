"""Benchmark: what temporal sharding costs a region's node, and what dropping gives back.

One run, real HTTP on 127.0.0.1, SQLite (the node's embedded default), the same signed
entries everywhere. Prints progress lines, then one JSON object on the last line:

- unsharded_entries_per_s: anchors submitted to an unsharded node (the ceiling);
- direct_entries_per_s: the same number of anchors to a sharded node, each batch sent
  straight to its shard (`/<k>/v1/entries`, as the issuer's anchor worker does);
- routed_entries_per_s: the same to the sharded node's routing endpoint
  (`/v1/entries`: each entry placed by its expiry), half the entries in each of two
  shards (the worst case: every batch split in two commits);
- routed_one_shard_entries_per_s: the same with every expiry in one shard (daily
  shards and 24-hour credentials: a day's issuance all expires in the next shard);
- bytes_per_anchor_unsharded / bytes_per_anchor_sharded: database bytes per anchor
  (SQLite files with their WAL, after a checkpoint of the WAL);
- freeze_ms: freezing a shard (sealing, signing its final checkpoint);
- dropped_bytes: what deleting the frozen shard's file returns.

Usage: python bench/shards.py [--entries N] [--batch B]
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as `python bench/shards.py` from a checkout

import requests  # noqa: E402

from common.serving import serve_in_thread  # noqa: E402
from ledger.clients.client import authorization  # noqa: E402
from ledger.log.shards import ShardPlan, ShardSchedule  # noqa: E402
from ledger.node.app import EXTENSION_KEY, create_app  # noqa: E402
from ledger.node.sharding import (  # noqa: E402
    SHARDED_KEY,
    ShardedNode,
    create_sharded_app,
    shard_database_url,
)
from ledger.testing import ORIGIN, anchor, key_added, make_config, make_keys  # noqa: E402

PERIOD_S = 3_600  # ledger.log.shards.MIN_PERIOD_S


def _post(base: str, path: str, origin: str, keys, entries: list[bytes]) -> None:  # type: ignore[no-untyped-def]
    body = json.dumps({"entries": [base64.b64encode(e).decode() for e in entries]}).encode()
    auth = authorization(keys.writer, origin, body, int(time.time()))
    headers = {"Authorization": auth, "Content-Type": "application/json"}
    r = requests.post(f"{base}{path}/v1/entries", data=body, headers=headers, timeout=60)
    if r.status_code != 200:
        raise SystemExit(f"{path}/v1/entries answered {r.status_code}: {r.text[:300]}")


def _files_bytes(db: Path) -> int:
    """Bytes of a SQLite database and its WAL after folding the WAL in."""
    with sqlite3.connect(db) as c:
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return sum(p.stat().st_size for p in db.parent.glob(db.name + "*"))


def _rate(n: int, seconds: float) -> float:
    return round(n / seconds, 1) if seconds > 0 else 0.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=10_000)
    ap.add_argument("--batch", type=int, default=500)
    args = ap.parse_args()
    n, batch = args.entries, args.batch
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        keys = make_keys(tmp)
        now = int(time.time())
        end0 = now + 600  # shard 0 ends in 10 minutes: two shards tracked
        plan = ShardPlan(ShardSchedule(ORIGIN, PERIOD_S, end0 - PERIOD_S), 300, PERIOD_S)
        # Expiries alternate between shard 0 and shard 1.
        exps = [end0 - 60 if i % 2 == 0 else end0 + 60 for i in range(n)]
        entries = [anchor(keys, i + 1, exps[i]) for i in range(n)]
        result: dict[str, object] = {"entries": n, "batch": batch}

        # 1. Unsharded node: the ceiling.
        db = tmp / "plain" / "ledger.db"
        db.parent.mkdir()
        app = create_app(make_config(keys, f"sqlite:///{db}", delay_s=0.01))
        try:
            with serve_in_thread(app) as served:
                _post(served.url, "", ORIGIN, keys, [key_added(keys)])
                t = time.perf_counter()
                for i in range(0, n, batch):
                    _post(served.url, "", ORIGIN, keys, entries[i : i + batch])
                result["unsharded_entries_per_s"] = _rate(n, time.perf_counter() - t)
        finally:
            app.extensions[EXTENSION_KEY].sequencer.stop()
            app.extensions[EXTENSION_KEY].store.dispose()
        result["bytes_per_anchor_unsharded"] = round(_files_bytes(db) / n, 1)
        print(f"unsharded: {result['unsharded_entries_per_s']} entries/s", file=sys.stderr)

        # 2. and 3. Sharded nodes: straight to each shard, then through the routing.
        one = [anchor(keys, n + i + 1, end0 + 60) for i in range(n)]
        for label in ("direct", "routed", "routed_one_shard"):
            folder = tmp / label
            folder.mkdir()
            url = f"sqlite:///{folder / 'ledger.db'}"
            sapp = create_sharded_app(make_config(keys, url, delay_s=0.01), plan, margin_s=0)
            node: ShardedNode = sapp.extensions[SHARDED_KEY]
            try:
                with serve_in_thread(sapp) as served:
                    _post(served.url, "", ORIGIN, keys, [key_added(keys)])
                    t = time.perf_counter()
                    for i in range(0, n, batch):
                        chunk = list(range(i, min(n, i + batch)))
                        if label == "routed_one_shard":
                            _post(served.url, "", ORIGIN, keys, [one[j] for j in chunk])
                            continue
                        if label == "routed":
                            _post(served.url, "", ORIGIN, keys, [entries[j] for j in chunk])
                            continue
                        for k in (0, 1):
                            part = [entries[j] for j in chunk if (exps[j] >= end0) == bool(k)]
                            _post(served.url, f"/{k}", f"{ORIGIN}/{k}", keys, part)
                    result[f"{label}_entries_per_s"] = _rate(n, time.perf_counter() - t)
                    print(f"{label}: {result[f'{label}_entries_per_s']} entries/s", file=sys.stderr)
                    if label == "routed":
                        sl = node.get(0)
                        assert sl is not None
                        t = time.perf_counter()
                        sl.node.sequencer.freeze()
                        result["freeze_ms"] = round((time.perf_counter() - t) * 1000, 2)
            finally:
                node.stop()
            if label == "routed":
                files = [Path(shard_database_url(url, k)[len("sqlite:///") :]) for k in (0, 1)]
                sizes = [_files_bytes(f) for f in files]
                result["bytes_per_anchor_sharded"] = round(sum(sizes) / n, 1)
                result["dropped_bytes"] = sizes[0]
                for f in files[0].parent.glob(files[0].name + "*"):
                    os.remove(f)
        result["routing_vs_unsharded"] = round(
            float(result["routed_entries_per_s"]) / float(result["unsharded_entries_per_s"]),
            3,  # type: ignore[arg-type]
        )
        print(json.dumps(result))


if __name__ == "__main__":
    main()
