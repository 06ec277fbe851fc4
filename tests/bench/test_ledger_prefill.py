"""bench/ledger_prefill.py writes exactly the rows the sequencer commits: the same
entries, tiles, tree state and rules' state snapshot, byte for byte, for 5,000 entries
on SQLite and on PostgreSQL (binary COPY); the real node then opens the pre-filled
store, serves a checkpoint whose inclusion proofs verify, and keeps appending exactly
as on the sequenced store."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from bench.ledger_prefill import PrefillError, anchor_entries, prefill
from ledger.log import tiles
from ledger.log.checkpoint import open_checkpoint
from ledger.log.entries import (
    CredentialRevoked,
    RevocationReason,
    encode_entry,
    root_public_key_bytes,
)
from ledger.log.merkle import leaf_hash, verify_inclusion
from ledger.node.app import initial_state_for
from ledger.node.sequencer import Sequencer, rebuild_log_state
from ledger.node.state_snapshot import encode_state_snapshot
from ledger.node.storage import Store, open_store
from ledger.testing import REGION, NodeKeys, anchor, key_added, make_config, make_keys

N = 5_000  # entries: 19 full level-0 tiles and a partial one
FIXED_S = 1_790_000_000.0  # the sequencer's clock, frozen so that leaf timestamps match
BATCHES = (1, 255, 256, 300, 700, 1, 511, 700, 700, 700, 876)  # sums to N
APPENDED = 600


def _second_database(postgres_url: str) -> Iterator[str]:
    name = f"p{os.getpid()}_{time.monotonic_ns()}"
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{postgres_url.rsplit('/', 1)[0]}/{name}"
    finally:
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def two_urls(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two empty log databases of one kind: one sequenced, one pre-filled."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'seq.db'}", f"sqlite:///{tmp_path / 'pre.db'}"
        return
    base = request.getfixturevalue("postgres_url")
    first = request.getfixturevalue("fresh_postgres_url")
    yield from ((first, second) for second in _second_database(base))


def _rows(store: Store) -> dict[str, list[tuple[object, ...]]]:
    queries = {
        "entries": "SELECT idx, entry_hash, leaf FROM entries ORDER BY idx",
        "tiles": "SELECT level, idx, data FROM tiles ORDER BY level, idx",
        "tree_state": "SELECT id, size, root_hash, last_timestamp_ms FROM tree_state",
    }
    with store.engine.connect() as c:
        return {
            k: [
                tuple(bytes(v) if isinstance(v, memoryview) else v for v in r)
                for r in c.execute(sa.text(q))
            ]
            for k, q in queries.items()
        }


def _sequencer(store: Store, keys: NodeKeys, url: str) -> Sequencer:
    cfg = make_config(keys, url, delay_s=0.01, max_entries=1000)
    state = initial_state_for(REGION, root_public_key_bytes(keys.root))
    return Sequencer(store, cfg, keys.signer, state, clock=lambda: FIXED_S)


def test_prefill_rows_are_byte_identical_to_the_sequencers_and_the_node_builds_on_them(
    two_urls: tuple[str, str], tmp_path: Path
) -> None:
    seq_url, pre_url = two_urls
    keys = make_keys(tmp_path / "keys")
    entries = [key_added(keys), *(anchor(keys, i) for i in range(N - 1))]
    assert list(anchor_entries(REGION, keys.kid, 0, N - 1)) == entries[1:]

    sequenced = open_store(seq_url)
    seq = _sequencer(sequenced, keys, seq_url)
    seq.start()
    pos = 0
    for size in BATCHES:
        seq.submit(entries[pos : pos + size])
        pos += size
    assert pos == N

    pre = open_store(pre_url)
    result = prefill(
        pre,
        iter([entries[0], *anchor_entries(REGION, keys.kid, 0, N - 1)]),
        lambda _i: int(FIXED_S * 1000),
        initial_state_for(REGION, root_public_key_bytes(keys.root)),
    )
    assert _rows(pre) == _rows(sequenced)
    assert result.root_hash == sequenced.tree_state().root_hash
    assert result.state == seq.log_state
    assert pre.latest_state_snapshot(N) == (
        N,
        encode_state_snapshot(seq.log_state, (entries[0],)),
    )

    # The real store and sequencer open it: tiles and every entry re-hashed against the
    # tree state, the rules' state loaded from the snapshot equal to a full replay.
    on_pre = _sequencer(pre, keys, pre_url)
    assert on_pre.replayed_from == N
    initial = initial_state_for(REGION, root_public_key_bytes(keys.root))
    assert on_pre.log_state == rebuild_log_state(pre, initial, N) == seq.log_state
    latest = pre.latest_checkpoint()
    assert latest is not None
    opened = open_checkpoint(latest.note, keys.signer.verifier()).checkpoint
    assert (opened.size, opened.root_hash) == (N, result.root_hash)
    rng = random.Random(5)
    for idx in [0, N - 1, *(rng.randrange(N) for _ in range(40))]:
        proof = tiles.inclusion_proof(idx, N, pre)
        verify_inclusion(leaf_hash(entries_leaf(pre, idx)), idx, N, proof, opened.root_hash)

    # Appending through the real sequencer gives the same rows on both stores.
    on_pre.start()
    more = [anchor(keys, i) for i in range(N, N + APPENDED)]
    for part in (more[:1], more[1:300], more[300:]):
        seq.submit(part)
        on_pre.submit(part)
    seq.stop()
    on_pre.stop()
    assert _rows(pre) == _rows(sequenced)
    assert pre.tree_state().size == N + APPENDED
    sequenced.dispose()
    pre.dispose()


def entries_leaf(store: Store, idx: int) -> bytes:
    (leaf,) = store.leaves(idx, idx + 1)
    return leaf


def test_prefill_refuses_a_status_index_twice_and_other_entry_types(tmp_path: Path) -> None:
    keys = make_keys(tmp_path / "keys")
    initial = initial_state_for(REGION, root_public_key_bytes(keys.root))
    store = open_store(f"sqlite:///{tmp_path / 'a.db'}")
    with pytest.raises(PrefillError, match="anchored twice"):
        prefill(store, [key_added(keys), anchor(keys, 3), anchor(keys, 3, 4_000_000_001)],
                lambda _i: 1, initial)  # fmt: skip
    store.dispose()
    store = open_store(f"sqlite:///{tmp_path / 'r.db'}")
    revoked = encode_entry(CredentialRevoked(REGION, 0, RevocationReason.UNSPECIFIED, 1))
    with pytest.raises(PrefillError, match="only key entries and anchors"):
        prefill(store, [key_added(keys), anchor(keys, 0), revoked], lambda _i: 1, initial)
    store.dispose()
    store = open_store(f"sqlite:///{tmp_path / 'b.db'}")
    with pytest.raises(PrefillError, match="non-decreasing"):
        prefill(store, [key_added(keys), anchor(keys, 1)], lambda i: 10 - i, initial)
    store.dispose()
