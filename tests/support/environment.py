"""Where the tests find what they need outside the project, and what to do when it is
missing: the shared public vectors (../shared/vectors, never copied in) and Debian's
chromium for the browser tests. In CI (`CI=true`) anything missing fails the run;
elsewhere it skips with a message that says what is missing.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT.parent / "shared" / "vectors"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def missing(what: str) -> None:
    """Fail in CI, skip elsewhere, always saying what is missing."""
    if IN_CI:
        pytest.fail(f"required for CI but missing: {what}")
    pytest.skip(f"missing: {what}")


def vector_path(*parts: str) -> Path:
    """A path inside the shared vectors; fails in CI, skips elsewhere, when absent."""
    p = VECTORS.joinpath(*parts)
    if not p.exists():
        missing(f"shared vector data {p}")
    return p


def chromium_path() -> str:
    """Debian's chromium for Playwright (`executable_path`); never a downloaded build."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        missing("Debian's chromium (apt-get install chromium)")
        raise AssertionError("unreachable")
    return path


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
