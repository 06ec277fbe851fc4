"""The sequencer: pooled batches, dedupe, rule refusals, restart, one checkpoint per size."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from ledger.log.checkpoint import Checkpoint, open_checkpoint
from ledger.log.entries import decode_leaf
from ledger.log.merkle import leaf_hash, root_hash
from ledger.log.rules import Rule
from ledger.node.app import initial_state_for
from ledger.node.sequencer import Sequencer, SubmissionRefusedError, entry_hash
from ledger.node.storage import Store, open_store
from ledger.testing import NodeKeys, anchor, key_added, make_config, make_keys


def _sequencer(keys: NodeKeys, store: Store, url: str, now: float = 1_700_000_000.0) -> Sequencer:
    cfg = make_config(keys, url, delay_s=0.02)
    seq = Sequencer(
        store,
        cfg,
        keys.signer,
        initial_state_for(cfg.region, cfg.root_public_key),
        clock=lambda: now,
    )
    seq.start()
    return seq


@pytest.fixture()
def setup(tmp_path: Path) -> tuple[NodeKeys, Store, str]:
    keys = make_keys(tmp_path)
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    return keys, open_store(url), url


def test_concurrent_submissions_are_pooled_into_one_tree(setup) -> None:
    keys, store, url = setup
    seq = _sequencer(keys, store, url)
    seq.submit([key_added(keys)])
    results: dict[int, int] = {}

    def worker(k: int) -> None:
        for r in seq.submit([anchor(keys, k * 100 + j) for j in range(20)]):
            results[r.index] = k

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seq.stop()
    assert sorted(results) == list(range(1, 161))
    size = store.tree_state().size
    leaves = store.leaves(0, size)
    assert size == 161
    assert store.tree_state().root_hash == root_hash([leaf_hash(x) for x in leaves])
    cp = store.latest_checkpoint()
    assert cp is not None
    opened = open_checkpoint(cp.note, keys.signer.verifier())
    assert opened.checkpoint == Checkpoint(
        opened.checkpoint.origin, 161, store.tree_state().root_hash
    )


def test_retried_submission_gets_its_existing_index(setup) -> None:
    keys, store, url = setup
    seq = _sequencer(keys, store, url)
    first = seq.submit([key_added(keys), anchor(keys, 7)])
    again = seq.submit([anchor(keys, 7), anchor(keys, 7), anchor(keys, 8)])
    seq.stop()
    assert [r.index for r in first] == [0, 1]
    assert [r.index for r in again] == [1, 1, 2]
    assert again[0].entry_hash == entry_hash(anchor(keys, 7))
    assert store.tree_state().size == 3


def test_anchor_with_unregistered_key_is_refused_naming_the_rule(setup) -> None:
    keys, store, url = setup
    seq = _sequencer(keys, store, url)
    with pytest.raises(SubmissionRefusedError) as err:
        seq.submit([anchor(keys, 1)])
    assert err.value.rule == Rule.UNKNOWN_KEY
    assert store.tree_state().size == 0
    seq.stop()


def test_refused_submission_is_refused_whole_and_others_in_the_batch_proceed(setup) -> None:
    keys, store, url = setup
    seq = _sequencer(keys, store, url)
    seq.submit([key_added(keys)])
    with pytest.raises(SubmissionRefusedError) as err:
        seq.submit([anchor(keys, 5), anchor(keys, 6), b"\x00garbage"])
    assert err.value.position == 2
    ok = seq.submit([anchor(keys, 5)])
    seq.stop()
    assert ok[0].index == 1
    assert store.tree_state().size == 2


def test_duplicate_status_index_is_refused(setup) -> None:
    keys, store, url = setup
    seq = _sequencer(keys, store, url)
    seq.submit([key_added(keys), anchor(keys, 9)])
    dup = anchor(keys, 9, expires_at=4_000_000_001)  # other bytes, same status index
    with pytest.raises(SubmissionRefusedError) as err:
        seq.submit([dup])
    seq.stop()
    assert err.value.rule == Rule.DUPLICATE_STATUS_INDEX


def test_restart_rebuilds_rules_state_and_reserves_the_same_checkpoint(setup) -> None:
    keys, store, url = setup
    seq = _sequencer(keys, store, url)
    seq.submit([key_added(keys)] + [anchor(keys, i) for i in range(300)])
    seq.stop()
    before = store.latest_checkpoint()
    store.dispose()
    store2 = open_store(url)
    seq2 = _sequencer(keys, store2, url, now=1_700_000_100.0)
    assert store2.latest_checkpoint() == before
    # The rebuilt rules state still knows index 3 is anchored.
    with pytest.raises(SubmissionRefusedError):
        seq2.submit([anchor(keys, 3, expires_at=4_000_000_002)])
    r = seq2.submit([anchor(keys, 301)])
    seq2.stop()
    assert r[0].index == 301
    assert decode_leaf(store2.leaves(301, 302)[0]).timestamp_ms == 1_700_000_100_000


def test_leaf_timestamps_never_go_backwards_when_the_clock_does(setup) -> None:
    keys, store, url = setup
    seq = _sequencer(keys, store, url, now=2_000_000_000.0)
    seq.submit([key_added(keys)])
    seq.stop()
    seq2 = _sequencer(keys, store, url, now=1_000_000_000.0)
    seq2.submit([anchor(keys, 1)])
    seq2.stop()
    stamps = [decode_leaf(x).timestamp_ms for x in store.leaves(0, 2)]
    assert stamps == [2_000_000_000_000, 2_000_000_000_000]


def test_cosign_hook_lines_are_stored_with_the_checkpoint(tmp_path: Path) -> None:
    keys = make_keys(tmp_path)
    url = f"sqlite:///{tmp_path / 'c.db'}"
    store = open_store(url)
    seen = threading.Event()

    def hook(note: bytes) -> list[str]:
        seen.set()
        return ["\u2014 witness.test AAAAAAAA"]

    from dataclasses import replace

    cfg = replace(make_config(keys, url, delay_s=0.02), cosign_hook=hook)
    seq = Sequencer(store, cfg, keys.signer, initial_state_for(cfg.region, cfg.root_public_key))
    seq.start()
    seq.submit([key_added(keys)])
    assert seen.wait(5)
    for _ in range(100):
        cp = store.latest_checkpoint()
        if cp is not None and cp.size == 1 and cp.cosignatures:
            break
        threading.Event().wait(0.02)
    seq.stop()
    assert cp is not None and cp.cosignatures == ("\u2014 witness.test AAAAAAAA",)
