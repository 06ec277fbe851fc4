"""Ledger node benchmark: sequencing throughput, latency, proof serving, bytes per anchor,
and the same on PostgreSQL on top of a large shard (20 million entries by default).

Prints progress lines, then ONE JSON object as the last line. Measures, in the same run,
the ceiling it is compared with (plain batched inserts of rows of the same size).
Run: .venv/bin/python bench/ledger.py [--entries N] [--skip-postgres]
         [--pg-scale-entries N] [--pg-scale-append N]

The at-scale part pre-fills one log to N entries with bench/ledger_prefill.py (the rows
the sequencer would have written, by COPY), checks the real node accepts them (it opens
the store, re-hashes every entry against the tree state, signs a checkpoint whose
inclusion proofs for random pre-filled leaves verify over HTTP, refuses a status index
the pre-fill anchored), then appends realistic anchors through the real sequencer and
times proofs from storage at that size. `--pg-scale-entries 0` skips it.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import logging
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
_BENCH = Path(__file__).resolve().parent
# Run as `python bench/ledger.py`, sys.path[0] is bench/, where this file would shadow
# the `ledger` package: put the project root first and drop bench/.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _BENCH]
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from bench.ledger_prefill import anchor_entries, prefill  # noqa: E402
from common.pgcluster import DURABLE, pg_bin, throwaway_postgres  # noqa: E402
from ledger.clients.client import LedgerClient  # noqa: E402
from ledger.log import tiles  # noqa: E402
from ledger.log.checkpoint import open_checkpoint  # noqa: E402
from ledger.log.entries import TimestampedEntry, encode_leaf, root_public_key_bytes  # noqa: E402
from ledger.log.merkle import leaf_hash, root_hash, verify_consistency, verify_inclusion  # noqa: E402
from ledger.node.app import EXTENSION_KEY, LedgerNode, create_app, initial_state_for  # noqa: E402
from ledger.node.sequencer import Sequencer, SubmissionRefusedError  # noqa: E402
from ledger.node.storage import TreeState, open_store  # noqa: E402
from ledger.testing import REGION, anchor, key_added, make_config, make_keys, serve  # noqa: E402

PG_PREFIX = "hb-bench-pg-"  # the throwaway PostgreSQL cluster's temporary folder
SUBMITTERS = 8  # threads
SUBMIT_CHUNK = 500  # entries per submission in the throughput run
LATENCY_SECONDS = 6.0  # seconds of single-entry submissions
PROOF_SAMPLES = 300
TEN_M = 10_000_000
SCALE_ENTRIES = 20_000_000  # entries pre-filled for the at-scale PostgreSQL figures
SCALE_APPEND = 200_000  # anchors sequenced on top of them
SCALE_PROOF_SAMPLES = 2000
SCALE_CHECKED_LEAVES = 64  # random pre-filled leaves proven over HTTP against the checkpoint
PREFILL_BATCH = 4096  # leaves per pre-filled "batch": one timestamp each, like a sequencer's
PREFILL_BATCH_MS = 500  # milliseconds between two pre-filled batches


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _pg_database_bytes(store: object) -> int:
    with store.engine.connect() as c:  # type: ignore[attr-defined]
        return int(c.exec_driver_sql("SELECT pg_database_size(current_database())").scalar_one())


def submit_all(seq: Sequencer, entries: list[bytes]) -> float:
    """Submit `entries` in chunks from SUBMITTERS threads; entries per second."""
    chunks = [entries[i : i + SUBMIT_CHUNK] for i in range(0, len(entries), SUBMIT_CHUNK)]
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
    return len(entries) / (time.perf_counter() - t0)


def sequencing_run(url: str, folder: Path, n: int) -> dict[str, float]:
    keys = make_keys(folder)
    store = open_store(url)
    postgres = url.startswith("postgresql")
    empty_bytes = _pg_database_bytes(store) if postgres else 0
    cfg = make_config(keys, url, delay_s=0.5, max_entries=4096)
    seq = Sequencer(store, cfg, keys.signer, initial_state_for(cfg.region, cfg.root_public_key))
    seq.start()
    seq.submit([key_added(keys)])
    rate = submit_all(seq, [anchor(keys, i) for i in range(n)])
    lock = threading.Lock()
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


def _proof_timings(url: str, size: int, samples: int, rng: random.Random) -> list[float]:
    """Inclusion proofs from storage (a fresh store: its tile cache starts cold, as a
    serving replica's does), each verified against the tree's root, in seconds."""
    store = open_store(url, migrate=False)
    root = tiles.tree_root(size, store)
    timings = []
    for _ in range(samples):
        idx = rng.randrange(size)
        t = time.perf_counter()
        proof = tiles.inclusion_proof(idx, size, store)
        timings.append(time.perf_counter() - t)
        tile = store.read_tile(0, idx // tiles.TILE_WIDTH)
        lh = tile[(idx % tiles.TILE_WIDTH) * 32 : (idx % tiles.TILE_WIDTH) * 32 + 32]
        verify_inclusion(lh, idx, size, proof, root)
    store.dispose()
    timings.sort()
    return timings


def _vacuum_analyze(url: str) -> None:
    """What autovacuum does to an insert-only table in steady state (PostgreSQL >= 13
    vacuums on inserts too): statistics and the visibility map, done before measuring
    so it does not run in the middle of the measurement."""
    eng = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with eng.connect() as c:
        c.exec_driver_sql("VACUUM (ANALYZE) entries")
        c.exec_driver_sql("VACUUM (ANALYZE) tiles")
    eng.dispose()


def _relation_bytes(store: object) -> dict[str, int]:
    sql = (
        "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND c.relkind = 'r'"
    )
    with store.engine.connect() as c:  # type: ignore[attr-defined]
        return {str(r[0]): int(r[1]) for r in c.exec_driver_sql(sql) if int(r[1]) > 16384}


def _server_pid(store: object) -> int:
    """The postmaster's pid: the parent of this connection's backend."""
    with store.engine.connect() as c:  # type: ignore[attr-defined]
        backend = int(c.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())
    stat = Path(f"/proc/{backend}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def _server_cpu_s(postmaster: int) -> float:
    """CPU seconds of the whole PostgreSQL server: the postmaster, its reaped children
    (cutime, cstime) and its live children (proc(5): fields 14-17, in clock ticks)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(stat.parent.name), int(fields[1])
        if pid == postmaster:
            total += sum(int(x) for x in fields[11:15])
        elif ppid == postmaster:
            total += int(fields[11]) + int(fields[12])
    return total / tick


def _wal_lsn(store: object) -> int:
    """The current WAL write position in bytes (differences are WAL volume)."""
    with store.engine.connect() as c:  # type: ignore[attr-defined]
        return int(
            c.exec_driver_sql("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')").scalar_one()
        )


def postgres_at_scale(url: str, folder: Path, n: int, append: int) -> dict[str, object]:
    """Pre-fill one log to `n` entries, prove the node accepts it, then measure on top."""
    keys = make_keys(folder)
    store = open_store(url)
    empty_bytes = _pg_database_bytes(store)
    now_ms = int(time.time() * 1000)
    base_ms = now_ms - (n // PREFILL_BATCH + 1) * PREFILL_BATCH_MS

    def ts(i: int) -> int:
        return base_ms + (i // PREFILL_BATCH) * PREFILL_BATCH_MS

    entries = itertools.chain([key_added(keys)], anchor_entries(REGION, keys.kid, 0, n - 1))
    last_say = [time.monotonic()]
    t0 = time.perf_counter()

    def progress(done: int) -> None:
        if time.monotonic() - last_say[0] > 30 or done == n:
            last_say[0] = time.monotonic()
            el = time.perf_counter() - t0
            say(f"  pre-filled {done:,} entries in {el:.0f} s ({done / max(el, 1e-9):,.0f}/s)")

    filled = prefill(
        store,
        entries,
        ts,
        initial_state_for(REGION, root_public_key_bytes(keys.root)),
        progress=progress,
    )
    prefill_s = time.perf_counter() - t0
    store.dispose()
    say("  VACUUM (ANALYZE) ...")
    _vacuum_analyze(url)
    out: dict[str, object] = {"postgres_scale_prefill_s": round(prefill_s, 1)}
    # The real node on the pre-filled store: opens it (re-hashes every entry against the
    # tree state and the tiles, loads the rules' snapshot), signs its checkpoint.
    say("  opening the node on the pre-filled store ...")
    t0 = time.perf_counter()
    app = create_app(make_config(keys, url, delay_s=0.5, max_entries=4096))
    out["postgres_scale_node_open_s"] = round(time.perf_counter() - t0, 1)
    node: LedgerNode = app.extensions[EXTENSION_KEY]
    rng = random.Random(20)
    try:
        with serve(app) as base:
            client = LedgerClient(base)
            opened = open_checkpoint(client.checkpoint(), keys.signer.verifier()).checkpoint
            assert opened.size == n and opened.root_hash == filled.root_hash, "checkpoint"
            for idx in [0, n - 1, *(rng.randrange(n) for _ in range(SCALE_CHECKED_LEAVES))]:
                bundle, pos = divmod(idx, tiles.TILE_WIDTH)
                width = min(tiles.TILE_WIDTH, n - bundle * tiles.TILE_WIDTH)
                leaf = tiles.decode_entry_bundle(client.entry_bundle(bundle, width))[pos]
                entry = key_added(keys) if idx == 0 else anchor(keys, idx - 1)
                assert leaf == encode_leaf(TimestampedEntry(ts(idx), entry)), f"leaf {idx}"
                proof = client.inclusion_proof(idx, n)
                verify_inclusion(leaf_hash(leaf), idx, n, proof, opened.root_hash)
            try:  # the rules' state knows the pre-filled anchors
                node.sequencer.submit([anchor(keys, n // 2, expires_at=4_000_000_001)])
                raise AssertionError("a pre-filled status index was anchored again")
            except SubmissionRefusedError as e:
                assert e.rule == "duplicate_status_index", e.rule
            out["postgres_scale_prefill_verified"] = True
            say(f"  so far: {json.dumps(out)}")
            before = _pg_database_bytes(node.store)
            say(f"  sequencing {append:,} anchors on top ...")
            fresh = [anchor(keys, i) for i in range(n, n + append)]
            server = _server_pid(node.store)
            cpu0, pg0, wal0 = time.process_time(), _server_cpu_s(server), _wal_lsn(node.store)
            out["postgres_entries_per_s_at_20m"] = round(submit_all(node.sequencer, fresh))
            cpu1, pg1, wal1 = time.process_time(), _server_cpu_s(server), _wal_lsn(node.store)
            # CPU time, not wall time: what a core-count estimate needs, and far less
            # sensitive than the rate to other jobs sharing the machine.
            out["postgres_sequencer_cpu_us_per_entry_at_20m"] = round(
                (cpu1 - cpu0) / append * 1e6, 1
            )
            out["postgres_server_cpu_us_per_entry_at_20m"] = round((pg1 - pg0) / append * 1e6, 1)
            out["postgres_wal_bytes_per_anchor_at_20m"] = round((wal1 - wal0) / append, 1)
            out["load_avg_1m"] = round(os.getloadavg()[0], 2)
            after = _pg_database_bytes(node.store)
            grown = open_checkpoint(client.checkpoint(), keys.signer.verifier()).checkpoint
            assert grown.size == n + append, grown.size
            verify_consistency(
                n,
                grown.size,
                opened.root_hash,
                grown.root_hash,
                client.consistency_proof(n, grown.size),
            )
            out["postgres_scale_size"] = grown.size
            out["postgres_bytes_per_anchor_growth_at_20m"] = round((after - before) / append, 1)
            out["postgres_bytes_per_anchor"] = round((after - empty_bytes) / grown.size, 1)
            out["postgres_scale_database_bytes"] = after
            out["postgres_scale_relation_bytes"] = _relation_bytes(node.store)
            client.close()
            say(f"  so far: {json.dumps(out)}")
    finally:
        node.sequencer.stop()
        node.store.dispose()
    say("  inclusion proofs from storage ...")
    t = _proof_timings(url, n + append, SCALE_PROOF_SAMPLES, rng)
    out["postgres_inclusion_proof_ms_p50_at_20m"] = round(statistics.median(t) * 1000, 3)
    out["postgres_inclusion_proof_ms_p99_at_20m"] = round(t[int(len(t) * 0.99)] * 1000, 3)
    return out


def sqlite_figures(work: Path, entries: int, result: dict[str, object]) -> None:
    say("sequencing on SQLite ...")
    (work / "s").mkdir()
    s = sequencing_run(f"sqlite:///{work / 's' / 'ledger.db'}", work / "s", entries)
    result["sqlite_entries_per_s"] = round(s["rate"])
    result["submit_to_checkpoint_p50_s"] = round(s["p50"], 3)
    result["submit_to_checkpoint_p99_s"] = round(s["p99"], 3)
    result["bytes_per_anchor"] = round(s["bytes_per_anchor"], 1)
    say("raw insert ceiling ...")
    leaf_len = len(anchor(make_keys(work / "k"), 1)) + 10
    result["sqlite_raw_insert_per_s"] = round(raw_insert_ceiling(work, entries, leaf_len))
    say("proofs at 10M leaves ...")
    p = proof_at_10m(work)
    result["inclusion_proof_ms_at_10m"] = round(p["median_ms"], 3)
    result["inclusion_proof_p99_ms_at_10m"] = round(p["p99_ms"], 3)
    result["ten_m_tile_build_s"] = round(p["build_s"], 1)
    for f in work.glob("ten_m.db*"):
        f.unlink()


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access line per proof
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=40_000)
    ap.add_argument("--skip-postgres", action="store_true")
    ap.add_argument("--skip-sqlite", action="store_true", help="PostgreSQL figures only")
    ap.add_argument(
        "--pg-scale-entries",
        type=int,
        default=SCALE_ENTRIES,
        help="entries pre-filled for the at-scale PostgreSQL figures (0: skip them)",
    )
    ap.add_argument("--pg-scale-append", type=int, default=SCALE_APPEND)
    args = ap.parse_args()
    result: dict[str, object] = {
        "bench": "ledger",
        "entries": args.entries,
        "pg_scale_entries": args.pg_scale_entries,
    }
    work = Path(tempfile.mkdtemp(prefix="hb-bench-ledger-"))
    try:
        if not args.skip_sqlite:
            sqlite_figures(work, args.entries, result)
        result["postgres_entries_per_s"] = None
        if args.skip_postgres:
            result["postgres_skipped"] = "--skip-postgres"
        elif pg_bin() is None:
            result["postgres_skipped"] = "PostgreSQL server binaries not installed"
        else:
            # fsync and synchronous_commit on: the figures include the durable commit.
            with throwaway_postgres("bench", durability=DURABLE, folder_prefix=PG_PREFIX) as url:
                say("sequencing on PostgreSQL ...")
                (work / "p").mkdir()
                r = sequencing_run(url, work / "p", args.entries)
                result["postgres_entries_per_s"] = round(r["rate"])
                result["postgres_submit_to_checkpoint_p99_s"] = round(r["p99"], 3)
                result["postgres_bytes_per_anchor"] = round(r["bytes_per_anchor"], 1)
                result["postgres_bytes_per_anchor_small"] = round(r["bytes_per_anchor"], 1)
            if args.pg_scale_entries > 0:
                # A cluster of its own: the small run's rows must not count.
                with throwaway_postgres(
                    "bench", durability=DURABLE, folder_prefix=PG_PREFIX
                ) as url:
                    say(f"PostgreSQL at {args.pg_scale_entries:,} entries ...")
                    (work / "scale").mkdir()
                    result.update(
                        postgres_at_scale(
                            url, work / "scale", args.pg_scale_entries, args.pg_scale_append
                        )
                    )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
