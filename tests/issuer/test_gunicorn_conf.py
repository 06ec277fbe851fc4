"""issuer/gunicorn_conf.py: the metrics folder of prometheus_client's multiprocess mode."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CONF = Path(__file__).resolve().parents[2] / "issuer" / "gunicorn_conf.py"


def _load(env: dict[str, str], tmp: Path) -> str:
    """Load the config file as gunicorn does, in a fresh interpreter whose temporary
    folder is `tmp`; returns the multiprocess folder it ends up with."""
    code = (
        "import runpy, os; runpy.run_path(os.environ['CONF']); "
        "print(os.environ['PROMETHEUS_MULTIPROC_DIR'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "CONF": str(CONF), "TMPDIR": str(tmp), "PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def test_a_given_metrics_folder_leaves_no_stray_temporary_folder(tmp_path: Path) -> None:
    chosen = tmp_path / "chosen"
    chosen.mkdir()
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    assert _load({"PROMETHEUS_MULTIPROC_DIR": str(chosen)}, scratch) == str(chosen)
    assert list(scratch.iterdir()) == []  # setdefault(mkdtemp()) made one every start


def test_without_a_metrics_folder_one_is_made(tmp_path: Path) -> None:
    made = Path(_load({}, tmp_path))
    assert made.is_dir() and made.parent == tmp_path
    assert made.name.startswith("hb-issuer-metrics-")
