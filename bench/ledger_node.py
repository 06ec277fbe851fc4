"""Ledger node benchmark: sequencing throughput, latency, proof serving, bytes per anchor.

Prints progress lines, then ONE JSON object as the last line. Measures, in the same run,
the ceiling it is compared with (plain batched inserts of rows of the same size).
Run: .venv/bin/python bench/ledger_node.py [--entries N] [--skip-postgres]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as `python bench/ledger_node.py` from a checkout

import sqlalchemy as sa  # noqa: E402

from bench.pgcluster import throwaway_postgres  # noqa: E402
from ledger.log import tiles  # noqa: E402
from ledger.log.merkle import root_hash, verify_inclusion  # noqa: E402
from ledger.node.app import initial_state_for  # noqa: E402
from ledger.node.sequencer import Sequencer  # noqa: E402
from ledger.node.storage import TreeState, open_store  # noqa: E402
from ledger.testing import anchor, key_added, make_config, make_keys  # noqa: E402

SUBMITTERS = 8  # threads
SUBMIT_CHUNK = 500  # entries per submission in the throughput run
LATENCY_SECONDS = 6.0  # seconds of single-entry submissions
PROOF_SAMPLES = 300
TEN_M = 10_000_000


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _pg_database_bytes(store: object) -> int:
    with store.engine.connect() as c:  # type: ignore[attr-defined]
        return int(c.exec_driver_sql("SELECT pg_database_size(current_database())").scalar_one())


def sequencing_run(url: str, folder: Path, n: int) -> dict[str, float]:
    keys = make_keys(folder)
    store = open_store(url)
    postgres = url.startswith("postgresql")
    empty_bytes = _pg_database_bytes(store) if postgres else 0
    cfg = make_config(keys, url, delay_s=0.5, max_entries=4096)
    seq = Sequencer(store, cfg, keys.signer, initial_state_for(cfg.region, cfg.root_public_key))
    seq.start()
    seq.submit([key_added(keys)])
    entries = [anchor(keys, i) for i in range(n)]
    chunks = [entries[i : i + SUBMIT_CHUNK] for i in range(0, n, SUBMIT_CHUNK)]
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                if not chunks:
                    return
                c = chunks.pop()
            seq.submit(c, timeout=120)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(SUBMITTERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rate = n / (time.perf_counter() - t0)
    # Latency: single-entry submissions from several threads at once, default 500 ms pool.
    lat: list[float] = []
    stop = time.monotonic() + LATENCY_SECONDS
    counter = [n + 10]

    def lat_worker() -> None:
        while time.monotonic() < stop:
            with lock:
                i = counter[0]
                counter[0] += 1
            t = time.perf_counter()
            seq.submit([anchor(keys, i)])
            with lock:
                lat.append(time.perf_counter() - t)

    threads = [threading.Thread(target=lat_worker) for _ in range(SUBMITTERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seq.stop()
    size = store.tree_state().size
    out = {"rate": rate, "size": size}
    lat.sort()
    out["p50"] = lat[len(lat) // 2]
    out["p99"] = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    if url.startswith("sqlite"):
        with store.engine.connect() as c:
            c.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        db = Path(url[len("sqlite:///") :])
        on_disk = sum(p.stat().st_size for p in db.parent.glob(db.name + "*"))
        out["bytes_per_anchor"] = on_disk / size
    if postgres:
        # Heap, indexes and TOAST of the whole database, less what the empty schema took.
        out["bytes_per_anchor"] = (_pg_database_bytes(store) - empty_bytes) / size
    store.dispose()
    return out


def raw_insert_ceiling(folder: Path, n: int, leaf_bytes: int) -> float:
    """Plain batched inserts of rows shaped like entries (same sizes, same unique index)."""
    store = open_store(f"sqlite:///{folder / 'raw.db'}")
    rows = [
        {"idx": i, "entry_hash": hashlib.sha256(b"%d" % i).digest(), "leaf": os.urandom(leaf_bytes)}
        for i in range(n)
    ]
    t0 = time.perf_counter()
    with store.engine.begin() as c:
        pass
    for k in range(0, n, 4096):
        with store.engine.begin() as c:
            c.execute(
                sa.text(
                    "INSERT INTO entries (idx, entry_hash, leaf) VALUES (:idx, :entry_hash, :leaf)"
                ),
                rows[k : k + 4096],
            )
    rate = n / (time.perf_counter() - t0)
    store.dispose()
    return rate


def proof_at_10m(folder: Path) -> dict[str, float]:
    """Write the tiles of a 10M-leaf tree directly, then time proofs served from storage."""
    url = f"sqlite:///{folder / 'ten_m.db'}"
    store = open_store(url)
    rng = random.Random(1)
    tile0 = bytes(rng.getrandbits(8) for _ in range(tiles.FULL_TILE_BYTES))
    full_root: dict[bytes, bytes] = {}

    def subtree(t: bytes) -> bytes:
        if t not in full_root:
            full_root[t] = root_hash(tiles.split_hashes(t))
        return full_root[t]

    layer = [tile0] * (TEN_M // tiles.TILE_WIDTH)
    rest = TEN_M % tiles.TILE_WIDTH
    if rest:
        layer.append(tile0[: rest * 32])
    out: dict[tuple[int, int], bytes] = {}
    level = 0
    while True:
        for i, t in enumerate(layer):
            out[(level, i)] = t
        hashes = [subtree(t) for t in layer if len(t) == tiles.FULL_TILE_BYTES]
        if not hashes:
            break
        layer = [
            b"".join(hashes[i : i + tiles.TILE_WIDTH])
            for i in range(0, len(hashes), tiles.TILE_WIDTH)
        ]
        level += 1
    say(f"  writing {len(out)} tiles for {TEN_M} leaves")
    t0 = time.perf_counter()

    class Mem:
        def read_tile(self, lv: int, ix: int) -> bytes:
            return out[(lv, ix)]

    root = tiles.tree_root(TEN_M, Mem())
    store.put_tiles_raw(out, TreeState(TEN_M, root, 0))
    build_s = time.perf_counter() - t0
    timings = []
    for _ in range(PROOF_SAMPLES):
        idx = rng.randrange(TEN_M)
        t = time.perf_counter()
        proof = tiles.inclusion_proof(idx, TEN_M, store)
        timings.append(time.perf_counter() - t)
        lh = tile0[(idx % 256) * 32 : (idx % 256) * 32 + 32]
        verify_inclusion(lh, idx, TEN_M, proof, root)
    store.dispose()
    return {
        "median_ms": statistics.median(timings) * 1000,
        "p99_ms": sorted(timings)[int(len(timings) * 0.99)] * 1000,
        "build_s": build_s,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=40_000)
    ap.add_argument("--skip-postgres", action="store_true")
    args = ap.parse_args()
    result: dict[str, object] = {"bench": "ledger", "entries": args.entries}
    work = Path(tempfile.mkdtemp(prefix="hb-bench-ledger-"))
    try:
        say("sequencing on SQLite ...")
        (work / "s").mkdir()
        s = sequencing_run(f"sqlite:///{work / 's' / 'ledger.db'}", work / "s", args.entries)
        result["sqlite_entries_per_s"] = round(s["rate"])
        result["submit_to_checkpoint_p50_s"] = round(s["p50"], 3)
        result["submit_to_checkpoint_p99_s"] = round(s["p99"], 3)
        result["bytes_per_anchor"] = round(s["bytes_per_anchor"], 1)
        say("raw insert ceiling ...")
        leaf_len = len(anchor(make_keys(work / "k"), 1)) + 10
        result["sqlite_raw_insert_per_s"] = round(raw_insert_ceiling(work, args.entries, leaf_len))
        say("proofs at 10M leaves ...")
        p = proof_at_10m(work)
        result["inclusion_proof_ms_at_10m"] = round(p["median_ms"], 3)
        result["inclusion_proof_p99_ms_at_10m"] = round(p["p99_ms"], 3)
        result["ten_m_tile_build_s"] = round(p["build_s"], 1)
        for f in work.glob("ten_m.db*"):
            f.unlink()
        result["postgres_entries_per_s"] = None
        if args.skip_postgres:
            result["postgres_skipped"] = "--skip-postgres"
        else:
            with throwaway_postgres() as url:
                if url is None:
                    result["postgres_skipped"] = "PostgreSQL server binaries not installed"
                else:
                    say("sequencing on PostgreSQL ...")
                    (work / "p").mkdir()
                    r = sequencing_run(url, work / "p", args.entries)
                    result["postgres_entries_per_s"] = round(r["rate"])
                    result["postgres_submit_to_checkpoint_p99_s"] = round(r["p99"], 3)
                    result["postgres_bytes_per_anchor"] = round(r["bytes_per_anchor"], 1)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
