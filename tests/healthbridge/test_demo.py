"""`healthbridge demo` as a user runs it: the real console script in a subprocess.

The story run (`--once`) must exit 0 with every expected verdict printed; the serving
run must answer on every page it advertises (kiosk, wallet pages, console logins) and
stop cleanly on Ctrl-C (SIGINT). Fast checks cover what the orchestration decides on
its own: a non-empty work folder, a busy preferred port, a verdict the story did not
expect.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from healthbridge.demo import StepFailed, expect, run_demo
from healthbridge.demo_world import LOOPBACK, pick_ports

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(sys.executable).with_name("healthbridge")
STORY_TIMEOUT_S = 240  # seconds; the story itself takes under a minute on 2 cores
STOP_TIMEOUT_S = 30  # seconds for a clean shutdown after SIGINT
PAGE_TIMEOUT_S = 20  # seconds to wait for one advertised page to answer 200

EXPECTED_LINES = (
    r"✓ 1\. GD resident enrols → .* shows a green GD code",
    r"MO resident enrols → .* shows a green MO code",
    r"✓ 2\. station scans both .* → ADMIT \(GD, green\), ADMIT \(MO, green\)",
    r"✓ 3\. GD admin .* revokes .* GD's log → checkpoint size \d+ cosigned by GD and MO",
    r"✓ 4\. station scans the GD resident again → DENY \(revoked:",
    r"✓ 5\. a screenshot of the MO resident's code .* → DENY \(proof_stale:",
    r"✓ 6\. another GD resident \(green\) converts GD→MO .* green MO code .* → ADMIT \(MO, green\)",
    r"✓ 7\. GD's health authority records a positive test .* MO code → DENY \(source_revoked:",
    r"✓ 8\. the MO resident's live code passes lane 1 \(ADMIT\); .* lane 2 → DENY "
    r"\(proof_replayed:",
    r"every verdict as expected",
)


def demo_command(*args: str) -> list[str]:
    if SCRIPT.exists():
        return [str(SCRIPT), "demo", *args]
    return [sys.executable, "-c", "from healthbridge.cli import main; main()", "demo", *args]


def demo_env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8"}


@pytest.mark.slow
def test_demo_once_tells_the_story_with_every_expected_verdict(tmp_path: Path) -> None:
    done = subprocess.run(
        demo_command("--once", "--workdir", str(tmp_path / "demo")),
        cwd=tmp_path,
        env=demo_env(),
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=STORY_TIMEOUT_S,
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, f"stdout:\n{out}\nstderr:\n{done.stderr}"
    for pattern in EXPECTED_LINES:
        assert re.search(pattern, out), f"missing {pattern!r} in:\n{out}"
    assert "✗" not in out and "Traceback" not in done.stderr
    assert out.rstrip().endswith("Stopped cleanly.")  # a --workdir folder stays
    # Private keys the demo generated are owner-only (0600), per the house rules.
    secrets_ = [p for p in (tmp_path / "demo").rglob("*") if p.name.endswith((".skey", ".pem"))]
    assert secrets_, "expected generated private key files"
    for p in secrets_:
        assert p.stat().st_mode & 0o077 == 0, f"{p} is readable by others"


@dataclass
class Running:
    proc: subprocess.Popen[str]
    lines: queue.Queue[str]
    seen: list[str]

    def read_until(self, marker: str, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            self.seen.append(line)
            if marker in line:
                return "".join(self.seen)
        raise AssertionError(f"no {marker!r} within {timeout_s} s; output:\n{''.join(self.seen)}")


def start_demo(workdir: Path) -> Running:
    proc = subprocess.Popen(
        demo_command("--workdir", str(workdir)),
        cwd=workdir.parent,
        env=demo_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
    )
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return Running(proc, lines, [])


def get_200(url: str) -> requests.Response:
    deadline = time.monotonic() + PAGE_TIMEOUT_S
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            r = requests.get(url, timeout=5, allow_redirects=False)
            if r.status_code == 200:
                return r
            last = f"HTTP {r.status_code}"
        except requests.RequestException as e:
            last = type(e).__name__
        time.sleep(0.3)
    raise AssertionError(f"{url} did not answer 200 within {PAGE_TIMEOUT_S} s ({last})")


def assert_login_works(login_url: str, user: str, password: str) -> None:
    """The printed demo credentials open the console (login form with its CSRF token)."""
    with requests.Session() as s:
        page = s.get(login_url, timeout=10).text
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert token is not None, "no CSRF token on the login page"
        form = {"csrf_token": token.group(1), "username": user, "password": password}
        r = s.post(login_url, data=form, timeout=10, allow_redirects=False)
        assert r.status_code in (302, 303), f"login as {user} gave HTTP {r.status_code}"
        assert "/console/" in r.headers["Location"]


@pytest.mark.slow
def test_demo_serves_kiosk_wallets_and_consoles_until_ctrl_c(tmp_path: Path) -> None:
    run = start_demo(tmp_path / "demo")
    try:
        out = run.read_until("Serving until Ctrl-C.", STORY_TIMEOUT_S)
        consoles = re.findall(
            r"(http://127\.0\.0\.1:\d+/console/login)\s+user (\S+)\s+password (\S+)", out
        )
        wallets = re.findall(r"^\s+GD .*?: (http://127\.0\.0\.1:\d+/)$", out, re.M)
        wallets += re.findall(r"^\s+MO .*?: (http://127\.0\.0\.1:\d+/)$", out, re.M)
        kiosk = re.findall(r"kiosk: (http://127\.0\.0\.1:\d+/)", out)
        nodes = re.findall(r"(http://127\.0\.0\.1:\d+/checkpoint)", out)
        assert len(consoles) == 2 and {u for _, u, _ in consoles} == {"gd-admin", "mo-admin"}
        assert len(wallets) == 3 and len(kiosk) == 1 and len(nodes) == 2, out
        for url, user, password in consoles:
            assert "<form" in get_200(url).text
            assert_login_works(url, user, password)
        for url in nodes:
            assert get_200(url).text.count("\u2014 ") >= 3  # log signature + 2 witnesses
        for url in wallets:
            assert get_200(url).headers["Content-Type"].startswith("text/html")
        get_200(kiosk[0])
        status = get_200(kiosk[0] + "v1/status").json()
        assert status, "the kiosk status is empty"
        run.proc.send_signal(signal.SIGINT)
        rc = run.proc.wait(STOP_TIMEOUT_S)
        out = run.read_until("Stopped cleanly.", 5)
        assert rc == 0, out
        assert "Traceback" not in out
    finally:
        if run.proc.poll() is None:
            run.proc.kill()
            run.proc.wait(10)
        if run.proc.stdout is not None:
            run.proc.stdout.close()


def test_demo_refuses_a_work_folder_in_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "something.txt").write_text("not the demo's")
    assert run_demo(once=True, workdir=str(tmp_path)) == 1
    captured = capsys.readouterr()
    assert "is not empty" in captured.out
    assert "demo FAILED at setup" in captured.err
    assert (tmp_path / "something.txt").read_text() == "not the demo's"


def test_busy_preferred_port_falls_back_to_a_free_one() -> None:
    with socket.socket() as busy:
        busy.bind((LOOPBACK, 0))
        busy.listen()
        taken = busy.getsockname()[1]
        ports = pick_ports({"a": taken, "b": taken})
    assert ports["a"] != taken and ports["b"] != taken and ports["a"] != ports["b"]


@dataclass(frozen=True)
class FakeVerdict:
    decision: object
    reasons: tuple[object, ...]
    region: str | None = "GD"
    colour: object = None


@dataclass(frozen=True)
class FakeEvent:
    verdict: FakeVerdict


def test_unexpected_verdict_fails_the_step_naming_it() -> None:
    from credential.reasons import Reason
    from credential.verdict import Decision

    admitted = FakeEvent(FakeVerdict(Decision.ADMIT, ()))
    with pytest.raises(StepFailed) as e:
        expect(4, admitted, "deny", "revoked")
    assert e.value.step == 4
    assert "step 4: expected deny (revoked), the station said ADMIT" in str(e.value)
    replayed = FakeEvent(FakeVerdict(Decision.DENY, (Reason.PROOF_REPLAYED,)))
    with pytest.raises(StepFailed, match="expected deny \\(revoked\\)"):
        expect(4, replayed, "deny", "revoked")
