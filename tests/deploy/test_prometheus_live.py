"""A real Prometheus server (Debian's) scraping a running two-region system on loopback:
the demo's world (GD and MO ledger nodes witnessing each other, GD and MO issuers with
their anchor workers), each service with its separate metrics listener. Every target
is up and every log's quorum met; then MO's node is stopped: the shipped
HealthBridgeTargetDown alert fires for it, and once GD anchors a new credential that
MO's witness cannot cosign, HealthBridgeCheckpointNotCosigned fires for GD's log. The
shipped rules are used as they are, with each `for:` shortened to 1 s so the test
takes seconds, not minutes."""

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

from common.observability import OpsServer, start_ops_server
from healthbridge.demo_world import running, wait_settled
from issuer.metrics import CHECKS_KEY, METRICS_KEY
from ledger.metrics import METRICS_KEY as NODE_METRICS

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "healthbridge-alerts.yml"
WAIT_S = 45.0  # seconds; Prometheus starts in about one on an idle machine


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


def _alerts(base: str, name: str) -> list[dict]:
    alerts = requests.get(f"{base}/api/v1/alerts", timeout=2).json()["data"]["alerts"]
    return [a for a in alerts if a["labels"]["alertname"] == name and a["state"] == "firing"]


def _query(base: str, q: str) -> list[dict]:
    return requests.get(f"{base}/api/v1/query", params={"query": q}, timeout=2).json()["data"][
        "result"
    ]


@pytest.mark.slow
def test_prometheus_sees_every_target_up_and_alerts_when_a_node_stops(
    tmp_path: Path, prometheus: tuple[Path, str, list[subprocess.Popen]]
) -> None:
    from healthbridge.demo import enrol

    folder, binary, procs = prometheus
    folder.mkdir()
    with running(tmp_path / "world", lambda _line: None) as world:
        wait_settled(world)
        ops: dict[str, OpsServer] = {}
        for r in world.regions.values():
            nm = r.node_app.extensions[NODE_METRICS]
            ops[f"ledger-{r.id}"] = start_ops_server(
                nm.registry, lambda nm=nm: nm.checks, "127.0.0.1", 0
            )
            app = r.issuer_app
            checks = app.extensions[CHECKS_KEY]
            ops[f"issuer-{r.id}"] = start_ops_server(
                app.extensions[METRICS_KEY], lambda checks=checks: checks, "127.0.0.1", 0
            )
        try:
            (folder / "rules.yml").write_text(short_rules(RULES.read_text()))
            target = {name: f"127.0.0.1:{o.port}" for name, o in ops.items()}
            config = {
                "global": {
                    "scrape_interval": "1s",
                    "evaluation_interval": "1s",
                    "scrape_timeout": "900ms",
                },
                "rule_files": [str(folder / "rules.yml")],
                "scrape_configs": [
                    {
                        "job_name": f"healthbridge-{kind}",
                        "static_configs": [
                            {"targets": [target[f"{kind}-GD"], target[f"{kind}-MO"]]}
                        ],
                    }
                    for kind in ("ledger", "issuer")
                ],
            }
            (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
            port = _free_port()
            base = f"http://127.0.0.1:{port}"
            # The child keeps its own copy of the log file's descriptor.
            with (folder / "prometheus.log").open("wb") as log:
                procs.append(
                    subprocess.Popen(
                        [binary, f"--config.file={folder / 'prometheus.yml'}",
                         f"--storage.tsdb.path={folder / 'data'}",
                         f"--web.listen-address=127.0.0.1:{port}"],
                        stdout=log, stderr=subprocess.STDOUT,
                    )
                )  # fmt: skip

            def all_up() -> bool:
                active = requests.get(f"{base}/api/v1/targets", timeout=2).json()["data"][
                    "activeTargets"
                ]
                return len(active) == 4 and all(t["health"] == "up" for t in active)

            _wait(all_up, "every node and issuer to be scraped")
            _wait(
                lambda: len(_query(base, "healthbridge_ledger_quorum_met == 1")) == 2,
                "both logs' checkpoints with their quorum",
            )
            assert len(_query(base, "healthbridge_outbox_depth")) == 2
            assert not _alerts(base, "HealthBridgeTargetDown")

            # Stop MO's node: its public server and its metrics listener go away.
            next(s for s in world.served if s.name == "demo-ledger-MO").stop()
            ops["ledger-MO"].stop()
            _wait(lambda: _alerts(base, "HealthBridgeTargetDown"), "HealthBridgeTargetDown")
            down = {a["labels"]["instance"] for a in _alerts(base, "HealthBridgeTargetDown")}
            assert down == {target["ledger-MO"]}

            # GD issues; its log grows; MO's witness cannot cosign: the quorum is lost.
            enrol(world, "GD", "G10000002", "after-mo-stopped")
            _wait(
                lambda: _alerts(base, "HealthBridgeCheckpointNotCosigned"),
                "HealthBridgeCheckpointNotCosigned for GD's log",
            )
            (fired,) = _alerts(base, "HealthBridgeCheckpointNotCosigned")
            assert (
                fired["labels"]["origin"]
                == world.regions["GD"].node_app.extensions[NODE_METRICS].state.node.config.origin
            )
        finally:
            for o in ops.values():
                o.stop()
