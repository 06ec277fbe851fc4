"""ledger.metrics on real nodes: two regions in joint operation served over HTTP, each
with its separate metrics listener; what Prometheus would scrape, and the probes."""

from __future__ import annotations

import contextlib
import logging
import time

import requests
from prometheus_client.parser import text_string_to_metric_families

from ledger.clients.client import LedgerClient
from ledger.metrics import cosignature_times
from ledger.node.app import EXTENSION_KEY
from ledger.serving import start_ops
from tests.ledger.node.test_node_openapi import JointPair, joint_pair  # noqa: F401 (fixture)

WAIT_S = 20.0


def _samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = requests.get(f"{url}/metrics", timeout=5).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def _value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def test_both_witnesses_cosigning_shows_quorum_met_and_fresh_cosignatures(
    joint_pair: JointPair,  # noqa: F811
) -> None:
    ops = start_ops(joint_pair.nodes["GD"], "127.0.0.1", 0)
    try:
        origin = joint_pair.nodes["GD"].config.origin
        deadline = time.monotonic() + WAIT_S
        while True:
            s = _samples(ops.url)
            if _value(s, "healthbridge_ledger_quorum_met", origin=origin) == 1:
                break
            assert time.monotonic() < deadline, "GD's checkpoint never met the quorum"
            time.sleep(0.1)
        assert _value(s, "healthbridge_ledger_database_up", origin=origin) == 1
        assert _value(s, "healthbridge_ledger_checkpoint_size", origin=origin) is not None
        cosigned = {k[1]: v for k, v in s.items() if k[0] == "healthbridge_ledger_witness_cosigned"}
        assert len(cosigned) == 2 and set(cosigned.values()) == {1.0}
        ages = [v for k, v in s.items() if k[0] == "healthbridge_ledger_cosignature_age_seconds"]
        assert len(ages) == 2 and all(0 <= a < 60 for a in ages)
        mo_origin = joint_pair.nodes["MO"].config.origin
        assert _value(s, "healthbridge_witness_cosigned_size", log_origin=mo_origin) is not None
        # Metrics live only on the separate listener, never on the public API.
        assert requests.get(f"{joint_pair.url('GD')}/metrics", timeout=5).status_code == 404
        assert requests.get(f"{ops.url}/readyz", timeout=5).json()["status"] == "ready"
    finally:
        ops.stop()


def test_stopped_sequencer_makes_the_node_not_ready(joint_pair: JointPair) -> None:  # noqa: F811
    url = joint_pair.url("GD")
    assert requests.get(f"{url}/readyz", timeout=5).status_code == 200
    joint_pair.nodes["GD"].app.extensions[EXTENSION_KEY].sequencer.stop()
    r = requests.get(f"{url}/readyz", timeout=5)
    assert r.status_code == 503
    assert r.json()["checks"]["sequencer"] == "the sequencer is not running"
    assert requests.get(f"{url}/healthz", timeout=5).status_code == 200


def test_forged_writer_is_counted_and_logged_once(joint_pair: JointPair, caplog) -> None:  # noqa: F811
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    ops = start_ops(joint_pair.nodes["GD"], "127.0.0.1", 0)
    try:
        forger = LedgerClient(joint_pair.url("GD"), Ed25519PrivateKey.generate(), timeout=5)
        # The client raises its own refusal error: suppressed, the log is what counts.
        with caplog.at_level(logging.WARNING), contextlib.suppress(Exception):
            forger.submit([b"\x00" * 40])
        events = [r for r in caplog.records if getattr(r, "event", None) == "writer_refused"]
        assert len(events) == 1
        s = _samples(ops.url)
        assert _value(s, "healthbridge_ledger_writer_refusals_total") == 1
    finally:
        ops.stop()


def test_cosignature_times_reads_the_timestamp_of_each_witness() -> None:
    from ledger.log.checkpoint import Checkpoint, cosign
    from ledger.log.note import NoteSigner

    skey, _ = NoteSigner.generate("w.example/witness")
    signer = NoteSigner.from_skey(skey)
    cp = Checkpoint("o.example/log", 3, b"\x01" * 32)
    line = cosign(cp, signer, 1_700_000_000)
    assert cosignature_times((line, "not a line")) == {"w.example/witness": 1_700_000_000}
