"""Crash safety: SIGKILL the node subprocess at random moments while clients submit.

After every restart: every acknowledged entry is in the log exactly once at its
acknowledged index, the tree recomputed from the stored entries matches the last
signed checkpoint, and no two different checkpoints were ever served for one size.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
import tomli_w

from common.serving import free_port
from ledger.clients.client import LedgerClient, LedgerClientError
from ledger.log.checkpoint import open_checkpoint
from ledger.log.entries import root_public_key_bytes
from ledger.log.merkle import leaf_hash, root_hash
from ledger.node.config import encode_ed25519_public_key
from ledger.node.sequencer import entry_hash
from ledger.node.storage import open_store
from ledger.testing import ORIGIN, REGION, anchor, key_added, make_keys
from tests.support.environment import ROOT

KILLS = 50
STARTUP_TIMEOUT_S = 30.0
START_ATTEMPTS = 5


def _write_config(tmp: Path, url: str) -> tuple[Path, object]:
    keys = make_keys(tmp)
    doc = {
        "region": REGION,
        "origin": ORIGIN,
        "log_key_file": str(keys.skey_file),
        "database_url": url,
        "root_public_key": encode_ed25519_public_key(root_public_key_bytes(keys.root)),
        "writer_public_keys": [encode_ed25519_public_key(root_public_key_bytes(keys.writer))],
        "sequencer": {"max_batch_delay_s": 0.02, "max_batch_entries": 512},
    }
    path = tmp / "node.toml"
    path.write_bytes(tomli_w.dumps(doc).encode())
    return path, keys


def _spawn(config: Path, port: int) -> subprocess.Popen[bytes] | None:
    """Start a node on `port` and wait until *it* answers; None if the port was taken.

    free_port() only proposes a port: another process on the shared machine may bind it
    before the node does. The node then exits (bind error) or, worse, someone else's
    server answers /v1/status, so the answer is checked to be this log's.
    """
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    log = config.parent / "node.log"
    with log.open("ab") as err:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ledger.cli",
                "serve",
                "--config",
                str(config),
                "--port",
                str(port),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            if "Address already in use" in log.read_text(errors="replace")[-2000:]:
                return None
            raise AssertionError(f"node exited: {log.read_text()[-2000:]}")
        try:
            r = requests.get(f"http://127.0.0.1:{port}/v1/status", timeout=0.5)
        except requests.RequestException:
            time.sleep(0.05)
            continue
        if r.status_code != 200:
            time.sleep(0.05)
            continue
        try:
            origin = r.json().get("origin")
        except ValueError:
            origin = None
        if origin == ORIGIN:
            return proc
        proc.kill()  # a foreign server holds the port
        proc.wait()
        return None
    proc.kill()
    raise AssertionError("node did not start")


def _start(config: Path) -> tuple[subprocess.Popen[bytes], int]:
    for _ in range(START_ATTEMPTS):
        port = free_port()
        proc = _spawn(config, port)
        if proc is not None:
            return proc, port
    raise AssertionError(f"no free port after {START_ATTEMPTS} attempts")


def _check_store(url: str, acked: dict[bytes, int], served: dict[int, bytes], keys) -> int:
    store = open_store(url)
    try:
        tree = store.tree_state()
        leaves = store.leaves(0, tree.size)
        assert len(leaves) == tree.size
        assert root_hash([leaf_hash(x) for x in leaves]) == tree.root_hash
        cp = store.latest_checkpoint()
        assert cp is not None and cp.size == tree.size
        opened = open_checkpoint(cp.note, keys.signer.verifier()).checkpoint
        assert opened.root_hash == tree.root_hash
        if cp.size in served:
            assert served[cp.size] == cp.served()
        found = store.find_indices(list(acked))
        assert found == acked, "an acknowledged entry is missing or moved"
        return tree.size
    finally:
        store.dispose()


def _run(tmp: Path, url: str) -> None:
    config, keys = _write_config(tmp, url)
    rng = random.Random(20240601)
    acked: dict[bytes, int] = {}
    inflight: dict[bytes, bytes] = {}
    served: dict[int, bytes] = {}
    lock = threading.Lock()
    next_index = [0]
    first = True
    for cycle in range(KILLS):
        proc, port = _start(config)
        base = f"http://127.0.0.1:{port}"
        client = LedgerClient(base, keys.writer, timeout=5, origin=ORIGIN)
        if first:
            client.submit([key_added(keys)])
            first = False
        # Retried submissions of entries whose answer the crash swallowed: each gets one
        # index, whether or not the crashed node had logged it.
        if inflight:
            pending = list(inflight.values())
            receipts = client.submit(pending)
            with lock:
                for r in receipts:
                    assert r.entry_hash not in acked or acked[r.entry_hash] == r.index
                    acked[r.entry_hash] = r.index
                inflight.clear()
        stop = threading.Event()

        def submitter() -> None:
            c = LedgerClient(base, keys.writer, timeout=5, origin=ORIGIN)
            while not stop.is_set():
                with lock:
                    start = next_index[0]
                    next_index[0] += 40
                batch = [anchor(keys, i) for i in range(start, start + 40)]
                with lock:
                    for e in batch:
                        inflight[entry_hash(e)] = e
                try:
                    receipts = c.submit(batch)
                except LedgerClientError:
                    return
                with lock:
                    for r in receipts:
                        acked[r.entry_hash] = r.index
                        inflight.pop(r.entry_hash, None)

        def watcher() -> None:
            while not stop.is_set():
                try:
                    note = requests.get(f"{base}/checkpoint", timeout=1).content
                except requests.RequestException:
                    return
                cp = open_checkpoint(note, keys.signer.verifier()).checkpoint
                with lock:
                    assert served.setdefault(cp.size, note) == note, "two checkpoints, one size"
                time.sleep(0.01)

        threads = [threading.Thread(target=submitter) for _ in range(2)]
        threads.append(threading.Thread(target=watcher))
        for t in threads:
            t.start()
        time.sleep(rng.uniform(0.05, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        stop.set()
        for t in threads:
            t.join(10)
        _check_store(url, acked, served, keys)
    assert len(acked) > KILLS


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_and_duplicates_nothing_sqlite(tmp_path: Path) -> None:
    _run(tmp_path, f"sqlite:///{tmp_path / 'ledger.db'}")


@pytest.mark.slow
@pytest.mark.postgres
def test_sigkill_at_random_moments_loses_and_duplicates_nothing_postgres(
    tmp_path: Path, fresh_postgres_url: str
) -> None:
    _run(tmp_path, fresh_postgres_url)
