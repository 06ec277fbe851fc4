"""The compose deployment's Prometheus configuration: valid for Debian's promtool, and
scraping every process that serves metrics, each replica of a replicated service
included."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"


def _promtool() -> str:
    tool = shutil.which("promtool") or "/usr/bin/promtool"
    if not Path(tool).exists():
        pytest.fail("promtool is missing: install Debian's prometheus (make browser does)")
    return tool


def _metrics_ports() -> dict[str, tuple[int, int]]:
    """service name -> (metrics port, replicas) for every compose service with one."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    out: dict[str, tuple[int, int]] = {}
    for name, service in compose["services"].items():
        command = service.get("command") or []
        if "--metrics-port" in command:
            port = int(command[command.index("--metrics-port") + 1])
            out[name] = (port, int(service.get("deploy", {}).get("replicas", 1)))
    return out


def _scraped() -> tuple[set[tuple[str, int]], set[tuple[str, int]]]:
    """(static targets, DNS-discovered names) as (host, port) pairs."""
    config: dict[str, Any] = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    static: set[tuple[str, int]] = set()
    dns: set[tuple[str, int]] = set()
    for job in config["scrape_configs"]:
        for sc in job.get("static_configs", []):
            for target in sc["targets"]:
                host, port = target.rsplit(":", 1)
                static.add((host, int(port)))
        for sd in job.get("dns_sd_configs", []):
            assert sd["type"] == "A", job["job_name"]
            dns.update((n, int(sd["port"])) for n in sd["names"])
    return static, dns


def test_prometheus_configuration_is_valid_for_promtool() -> None:
    r = subprocess.run(
        [_promtool(), "check", "config", "prometheus.yml"],
        cwd=PROMETHEUS_DIR, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr


def test_every_replica_of_every_metrics_serving_service_is_scraped() -> None:
    """A replicated service behind one name, scraped as a static target, would show one
    replica per scrape (a different one each time): its replicas are found by DNS."""
    static, dns = _scraped()
    services = _metrics_ports()
    assert len(services) >= 7
    for name, (port, replicas) in services.items():
        if replicas > 1:
            assert (name, port) in dns, f"{name}: {replicas} replicas need DNS discovery"
            assert (name, port) not in static, f"{name}: a static target reaches one replica"
        else:
            assert (name, port) in static | dns, f"{name}:{port} is not scraped"
