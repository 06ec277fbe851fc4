"""The shipped alert rules and their unit tests, through Debian's promtool."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

RULES_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


def _promtool() -> str:
    tool = shutil.which("promtool") or "/usr/bin/promtool"
    if not Path(tool).exists():
        pytest.fail("promtool is missing: install Debian's prometheus (make browser does)")
    return tool


def test_alert_rules_are_valid() -> None:
    r = subprocess.run(
        [_promtool(), "check", "rules", "healthbridge-alerts.yml"],
        cwd=RULES_DIR, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr


def test_alert_rules_fire_as_their_unit_tests_expect() -> None:
    r = subprocess.run(
        [_promtool(), "test", "rules", "healthbridge-alerts.test.yml"],
        cwd=RULES_DIR, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout
