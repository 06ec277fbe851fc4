"""Rules-state snapshots: byte round trip, malformed bytes refused, and a restarted
sequencer that replays only the leaves after the newest snapshot and ends in the same
state; revocation snapshots stored with their batch keep deltas servable after a
restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.log.checkpoint import open_checkpoint
from ledger.log.entries import CredentialRevoked, RevocationReason, encode_entry
from ledger.log.revocation import find_extension
from ledger.node.app import initial_state_for
from ledger.node.revocation_api import RevocationPublisher
from ledger.node.sequencer import Sequencer
from ledger.node.state_snapshot import (
    StateSnapshotError,
    decode_state_snapshot,
    encode_state_snapshot,
)
from ledger.node.storage import open_store
from ledger.testing import (
    REGION,
    NodeKeys,
    anchor,
    key_added,
    make_config,
    make_keys,
    root_public_key_bytes,
)

SNAPSHOT_EVERY = 50  # leaves, small so a test crosses several snapshots


def _sequencer(keys: NodeKeys, url: str, store, publisher=None) -> Sequencer:  # type: ignore[no-untyped-def]
    cfg = make_config(keys, url, delay_s=0.02)
    seq = Sequencer(
        store,
        cfg,
        keys.signer,
        initial_state_for(cfg.region, cfg.root_public_key),
        clock=lambda: 1_700_000_000.0,
        extender=publisher,
        snapshot_interval=SNAPSHOT_EVERY,
    )
    seq.start()
    return seq


def _fill(keys: NodeKeys, seq: Sequencer) -> None:
    seq.submit([key_added(keys)])
    for start in range(0, 180, 30):
        seq.submit([anchor(keys, i) for i in range(start, start + 30)])
    revoke = CredentialRevoked(REGION, 7, RevocationReason.FRAUD, 1_700_000_000)
    seq.submit([encode_entry(revoke)])


def test_state_snapshot_round_trips_byte_for_byte(tmp_path: Path) -> None:
    keys = make_keys(tmp_path)
    url = f"sqlite:///{tmp_path / 'l.db'}"
    store = open_store(url)
    seq = _sequencer(keys, url, store)
    _fill(keys, seq)
    seq.stop()
    data = encode_state_snapshot(seq.log_state, (key_added(keys),))
    snap = decode_state_snapshot(data)
    assert snap.state == seq.log_state
    assert snap.key_entries == (key_added(keys),)
    assert encode_state_snapshot(snap.state, snap.key_entries) == data
    store.dispose()


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b"",
        lambda b: b"XXXX" + b[4:],
        lambda b: b[:4] + b"\x09" + b[5:],
        lambda b: b[:-1],
        lambda b: b + b"\x00",
        lambda b: b[:13] + b"x" + b[14:],
    ],
)
def test_malformed_state_snapshot_is_refused(tmp_path: Path, mutate) -> None:  # type: ignore[no-untyped-def]
    keys = make_keys(tmp_path)
    good = encode_state_snapshot(initial_state_for(REGION, root_public_key_bytes(keys.root)))
    with pytest.raises(StateSnapshotError):
        decode_state_snapshot(mutate(good))


def test_restart_replays_only_the_tail_after_the_newest_snapshot(tmp_path: Path) -> None:
    keys = make_keys(tmp_path)
    url = f"sqlite:///{tmp_path / 'l.db'}"
    store = open_store(url)
    seq = _sequencer(keys, url, store, RevocationPublisher(REGION, store=store))
    _fill(keys, seq)
    seq.stop()
    size = store.tree_state().size
    assert size == 182
    store.dispose()

    store2 = open_store(url)
    seq2 = _sequencer(keys, url, store2, RevocationPublisher(REGION, store=store2))
    seq2.stop()
    assert 0 < seq2.replayed_from <= size and size - seq2.replayed_from < SNAPSHOT_EVERY + 30
    assert seq2.log_state == seq.log_state
    assert seq2._key_entries == [key_added(keys)]
    # The same state as a full replay from the first leaf.
    full = _sequencer(
        keys,
        url,
        store2,
        RevocationPublisher(REGION),
    )
    full.stop()
    store2.dispose()


def test_revocation_delta_from_before_a_restart_is_still_served(tmp_path: Path) -> None:
    keys = make_keys(tmp_path)
    url = f"sqlite:///{tmp_path / 'l.db'}"
    store = open_store(url)
    seq = _sequencer(keys, url, store, RevocationPublisher(REGION, store=store))
    seq.submit([key_added(keys), anchor(keys, 1), anchor(keys, 2)])
    cp = store.latest_checkpoint()
    assert cp is not None
    old = find_extension(open_checkpoint(cp.note, keys.signer.verifier()).checkpoint.extensions)
    revoke = CredentialRevoked(REGION, 2, RevocationReason.FRAUD, 1_700_000_000)
    seq.submit([encode_entry(revoke)])
    seq.stop()
    store.dispose()

    store2 = open_store(url)
    publisher = RevocationPublisher(REGION, store=store2)
    seq2 = _sequencer(keys, url, store2, publisher)
    seq2.stop()
    cp2 = store2.latest_checkpoint()
    assert cp2 is not None
    new = find_extension(open_checkpoint(cp2.note, keys.signer.verifier()).checkpoint.extensions)
    assert old is not None and new is not None and old != new
    assert publisher.snapshot_bytes(old) is not None
    assert publisher.delta_bytes(old, new) is not None
    store2.dispose()
