"""The shipped Grafana dashboard: well-formed, laid out on Grafana's 24-column grid,
every query valid PromQL (checked by promtool) and naming only metrics that the
services really export (read from the registries of running ledger nodes in joint
operation, an issuer and a station)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import yaml

from issuer.app import create_app as issuer_app
from issuer.metrics import METRICS_KEY as ISSUER_METRICS
from issuer.testing import make_context
from ledger.metrics import METRICS_KEY as LEDGER_METRICS
from tests.deploy.test_alert_rules import RULES_DIR, _promtool
from tests.ledger.node.test_node_openapi import JointPair
from verifier.metrics import StationMetrics

DASHBOARD = (
    Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "healthbridge-dashboard.json"
)
GRID_COLUMNS = 24  # Grafana's dashboard grid
METRIC_RE = re.compile(r"\b(healthbridge_[a-z0-9_]+)")
SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created")


def _panels() -> list[dict]:
    doc = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert {"uid", "title", "panels", "schemaVersion", "templating"} <= doc.keys()
    return doc["panels"]


def _exprs() -> list[str]:
    return [t["expr"] for p in _panels() if p["type"] != "row" for t in p["targets"]]


def test_dashboard_panels_are_laid_out_on_the_grid_without_overlap() -> None:
    panels = _panels()
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for p in panels:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= GRID_COLUMNS, p["title"]
        mine = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not cells & mine, f"{p['title']} overlaps another panel"
        cells |= mine
        if p["type"] != "row":
            assert p["targets"] and p["datasource"]["uid"] == "${datasource}", p["title"]


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [{"record": f"dashboard:q{i}", "expr": e} for i, e in enumerate(_exprs())],
            }
        ]
    }
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules))
    r = subprocess.run(
        [_promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stdout + r.stderr


def _base(name: str) -> str:
    for s in SUFFIXES:
        if name.endswith(s):
            return name[: -len(s)]
    return name


def test_dashboard_and_alerts_name_only_exported_metrics(
    joint_pair: JointPair, tmp_path: Path
) -> None:
    registries = [joint_pair.nodes[r].app.extensions[LEDGER_METRICS].registry for r in ("GD", "MO")]
    ctx = make_context(tmp_path)
    registries.append(
        issuer_app(ctx.config, context=ctx, start_workers=False).extensions[ISSUER_METRICS]
    )
    registries.append(StationMetrics.create(lambda: {"GD": 5}, 600).registry)
    exported = {_base(fam.name) for reg in registries for fam in reg.collect()}
    # The node's own request histogram appears once a request was measured.
    exported.add("healthbridge_http_request_duration_seconds")
    alerts = (RULES_DIR / "healthbridge-alerts.yml").read_text()
    named = {_base(m) for text in [*_exprs(), alerts] for m in METRIC_RE.findall(text)}
    assert named - exported == set()
