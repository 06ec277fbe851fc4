"""A short run of bench/chaos.py: both regions as real processes on loopback, mixed
load, one kill -9 of each ledger node and each issuer, one poisoned entry, and MO idle
for 3 x a 3 s max sync age. Nothing lost, duplicated or forked, no false alarm, nothing
stuck, the idle region never denied, the poisoned row the only one quarantined."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_short_chaos_campaign_loses_nothing_and_raises_no_false_alarm(tmp_path: Path) -> None:
    args = ["--kills", "4", "--min-gap", "0.5", "--max-gap", "1.5", "--max-sync-age", "3",
            "--checkpoint-interval", "1", "--drain-timeout", "45",
            "--workdir", str(tmp_path)]  # fmt: skip
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "chaos.py"), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["kills"] == 4 and len(result["kills_by_process"]) == 4
    assert result["acknowledged_entries"] > 0
    for key in ("lost_entries", "duplicated_entries", "conflicting_checkpoints", "false_alarms",
                "stuck_outbox_rows", "idle_region_denials", "unexpected_exits"):  # fmt: skip
        assert result[key] == 0, (key, result)
    assert result["quarantined_rows"] == 1  # the poisoned entry, and nothing else
