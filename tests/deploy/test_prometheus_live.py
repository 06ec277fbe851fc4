"""A real Prometheus server (Debian's) scraping a running two-region system on loopback:
both ledger nodes in joint operation, each with its separate metrics listener. Every
target is up, then stopping MO's node makes the shipped HealthBridgeTargetDown alert
fire. The shipped rules are used as they are, with each `for:` shortened to 1 s so the
test takes seconds, not minutes."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from ledger.serving import start_ops
from tests.ledger.test_node_openapi import JointPair

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "healthbridge-alerts.yml"
WAIT_S = 45.0  # seconds; Prometheus starts in about one on an idle machine
JOB = "healthbridge-ledger"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def short_rules(text: str) -> str:
    """The shipped rules with every `for:` at 1 s (same expressions, same labels)."""
    doc = yaml.safe_load(text)
    for group in doc["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = "1s"
    return yaml.safe_dump(doc, sort_keys=False)


def _wait(pred, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            got = pred()
        except requests.RequestException:
            got = None
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.25)


@pytest.fixture()
def prometheus(tmp_path: Path) -> Iterator[tuple[Path, str, list[subprocess.Popen]]]:
    binary = shutil.which("prometheus") or "/usr/bin/prometheus"
    if not Path(binary).exists():
        pytest.fail("prometheus is missing: install Debian's prometheus (make browser does)")
    procs: list[subprocess.Popen] = []
    yield tmp_path / "prometheus", binary, procs
    for p in procs:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()


@pytest.mark.slow
def test_prometheus_sees_every_target_up_and_alerts_when_a_node_stops(
    joint_pair: JointPair,
    prometheus: tuple[Path, str, list[subprocess.Popen]],
) -> None:
    folder, binary, procs = prometheus
    folder.mkdir()
    ops = {r: start_ops(joint_pair.nodes[r], "127.0.0.1", 0) for r in ("GD", "MO")}
    try:
        (folder / "rules.yml").write_text(short_rules(RULES.read_text()))
        targets = {r: f"127.0.0.1:{o.port}" for r, o in ops.items()}
        config = {
            "global": {
                "scrape_interval": "1s",
                "evaluation_interval": "1s",
                "scrape_timeout": "900ms",
            },
            "rule_files": [str(folder / "rules.yml")],
            "scrape_configs": [
                {"job_name": JOB, "static_configs": [{"targets": list(targets.values())}]}
            ],
        }
        (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        # The child keeps its own copy of the log file's descriptor.
        with (folder / "prometheus.log").open("wb") as log:
            procs.append(
                subprocess.Popen(
                    [
                        binary,
                        f"--config.file={folder / 'prometheus.yml'}",
                        f"--storage.tsdb.path={folder / 'data'}",
                        f"--web.listen-address=127.0.0.1:{port}",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )

        def all_up() -> bool:
            active = requests.get(f"{base}/api/v1/targets", timeout=2).json()["data"][
                "activeTargets"
            ]
            return len(active) == 2 and all(t["health"] == "up" for t in active)

        _wait(all_up, "both ledger nodes' metrics to be scraped")

        def gd_metric() -> bool:
            q = 'healthbridge_ledger_tree_size{job="healthbridge-ledger"}'
            res = requests.get(f"{base}/api/v1/query", params={"query": q}, timeout=2).json()
            return len(res["data"]["result"]) == 2

        _wait(gd_metric, "both nodes' tree sizes in Prometheus")
        alerts = requests.get(f"{base}/api/v1/alerts", timeout=2).json()["data"]["alerts"]
        assert not [a for a in alerts if a["labels"]["alertname"] == "HealthBridgeTargetDown"]

        # Stop MO's node: its listener and its public server go away.
        ops["MO"].stop()
        joint_pair.servers["MO"].close()

        def mo_down_firing() -> bool:
            alerts = requests.get(f"{base}/api/v1/alerts", timeout=2).json()["data"]["alerts"]
            return any(
                a["labels"]["alertname"] == "HealthBridgeTargetDown"
                and a["labels"]["instance"] == targets["MO"]
                and a["state"] == "firing"
                for a in alerts
            )

        _wait(mo_down_firing, "HealthBridgeTargetDown to fire for MO")
        alerts = requests.get(f"{base}/api/v1/alerts", timeout=2).json()["data"]["alerts"]
        down = {
            a["labels"]["instance"]
            for a in alerts
            if a["labels"]["alertname"] == "HealthBridgeTargetDown"
        }
        assert down == {targets["MO"]}
    finally:
        ops["GD"].stop()
