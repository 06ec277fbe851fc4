"""ledger.metrics on a live sharded node (GD with a shard table, MO its witness, over
real HTTP): the separate metrics listener reports every tracked shard, each series
labelled shard="<k>" under the metric names of an unsharded node, the witness side
once, the top level's requests and refusals; the scrape is valid exposition text
(promtool), and a shard's series end when the node stops tracking it."""

from __future__ import annotations

import contextlib
import subprocess
import time

import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client.parser import text_string_to_metric_families

from ledger.clients.client import LedgerClient
from ledger.serving import start_ops
from tests.deploy.test_alert_rules import _promtool
from tests.ledger.node.test_sharded_openapi import ShardedPair, sharded_pair  # noqa: F401 (fixture)
from tests.support.ledger_cli import origin_of

WAIT_S = 20.0  # seconds; generous for a loaded machine
TRACKED = {"0", "1", "2", "3"}  # the fixture's plan: frozen 0, open 1, future 2 and 3


def _scrape(url: str) -> str:
    r = requests.get(f"{url}/metrics", timeout=5)
    assert r.status_code == 200
    return r.text


def _series(text: str, name: str) -> dict[str, dict[str, str]]:
    """{shard label: labels} of every sample named `name` ("" when unlabelled)."""
    return {
        s.labels.get("shard", ""): s.labels
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
        if s.name == name
    }


def _value(text: str, name: str, **labels: str) -> float | None:
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return None


def test_every_tracked_shard_is_reported_with_its_shard_label(
    sharded_pair: ShardedPair,  # noqa: F811
) -> None:
    gd = sharded_pair.nodes["GD"]
    ops = start_ops(gd, "127.0.0.1", 0)
    try:
        base = origin_of("GD")
        deadline = time.monotonic() + WAIT_S
        while True:  # every shard's checkpoint cosigned by both witnesses
            text = _scrape(ops.url)
            quorum = _series(text, "healthbridge_ledger_quorum_met")
            if set(quorum) == TRACKED and all(
                _value(text, "healthbridge_ledger_quorum_met", shard=k) == 1 for k in TRACKED
            ):
                break
            assert time.monotonic() < deadline, f"quorum never met on every shard: {quorum}"
            time.sleep(0.1)
        for name in (
            "healthbridge_ledger_database_up",
            "healthbridge_ledger_tree_size",
            "healthbridge_ledger_checkpoint_size",
            "healthbridge_ledger_checkpoint_age_seconds",
        ):
            got = _series(text, name)
            assert set(got) == TRACKED, name
            assert {k: v["origin"] for k, v in got.items()} == {k: f"{base}/{k}" for k in TRACKED}
        # Each shard's cosigners: one series per shard and member witness.
        cosigned = [
            s.labels
            for fam in text_string_to_metric_families(text)
            for s in fam.samples
            if s.name == "healthbridge_ledger_witness_cosigned"
        ]
        assert len(cosigned) == 2 * len(TRACKED)
        # The witness side is the node's, reported once and without a shard label.
        sizes = _series(text, "healthbridge_witness_cosigned_size")
        assert set(sizes) == {""}
        assert (
            _value(text, "healthbridge_witness_cosigned_size", log_origin=origin_of("MO"))
            is not None
        )
        # The listener's readiness covers every tracked shard.
        ready = requests.get(f"{ops.url}/readyz", timeout=5).json()
        assert ready["status"] == "ready"
        assert {name.split("_")[1] for name in ready["checks"]} == TRACKED

        # Requests to a shard are measured with its label; those to the top without.
        requests.get(f"{sharded_pair.gd}/1/checkpoint", timeout=5)
        requests.get(f"{sharded_pair.gd}/v1/shards", timeout=5)
        # A forged writer at the routing endpoint is counted by the node.
        forger = LedgerClient(sharded_pair.gd, Ed25519PrivateKey.generate(), timeout=5)
        with contextlib.suppress(Exception):
            forger.submit([b"\x00" * 40])
        text = _scrape(ops.url)
        hist = "healthbridge_http_request_duration_seconds_count"
        assert _value(text, hist, route="/checkpoint", shard="1", status="200")
        top = [
            s.labels
            for fam in text_string_to_metric_families(text)
            for s in fam.samples
            if s.name == hist and s.labels["route"] == "/v1/shards"
        ]
        assert top and all("shard" not in labels for labels in top)
        assert _value(text, "healthbridge_ledger_writer_refusals_total") == 1
        # No label carries anything but origins, members, witnesses, codes, routes
        # and shard numbers: the shard label's values are exactly the tracked shards.
        shard_values = {
            s.labels["shard"]
            for fam in text_string_to_metric_families(text)
            for s in fam.samples
            if "shard" in s.labels
        }
        assert shard_values == TRACKED

        # One HELP/TYPE per metric name, as Prometheus requires (promtool refuses a
        # "second HELP line for metric name"), and no lint finding.
        check = subprocess.run(
            [_promtool(), "check", "metrics"], input=text, capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip
        assert check.returncode == 0, check.stdout + check.stderr
    finally:
        ops.stop()


def test_a_closed_shard_is_no_longer_reported(sharded_pair: ShardedPair) -> None:  # noqa: F811
    gd = sharded_pair.nodes["GD"]
    sharded = gd.sharded
    assert sharded is not None
    ops = start_ops(gd, "127.0.0.1", 0)
    try:
        assert set(_series(_scrape(ops.url), "healthbridge_ledger_tree_size")) == TRACKED
        # Move the node's clock past shard 0's grace and clock margin: it is closed.
        real = sharded.clock
        sharded.clock = lambda: real() + 3600 + 600
        sharded.ensure()
        got = set(_series(_scrape(ops.url), "healthbridge_ledger_tree_size"))
        assert "0" not in got and "1" in got
    finally:
        ops.stop()
