"""The staff kiosk: JSON status, MJPEG view, and the page in real headless Chromium."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests
from werkzeug.serving import make_server

from common.serving import free_port
from credential.reasons import Reason
from credential.verdict import describe
from tests.support.environment import CHROMIUM_ARGS, chromium_path
from tests.verifier.conftest import T0, Mint
from verifier.frames import Frame
from verifier.kiosk import KioskState, create_app
from verifier.scanlog import ScanLog
from verifier.station import Station, presentation_verifier
from verifier.synth import qr_image


@dataclass
class Kiosk:
    url: str
    state: KioskState
    station: Station


@pytest.fixture()
def kiosk(mint: Mint) -> Iterator[Kiosk]:
    log = ScanLog()
    state = KioskState(log=log, sync_ages=lambda: {"GD": 60, "MO": 3600}, online=lambda: True)
    station = Station(
        verify=presentation_verifier(lambda: mint.trust),
        log=log,
        clock=lambda f: T0 + f.timestamp,
        listeners=[state.on_event],
        frame_listeners=[state.on_frame],
    )
    app = create_app({"KIOSK_STATE": state, "TESTING": True})
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Kiosk(f"http://127.0.0.1:{port}", state, station)
    finally:
        server.shutdown()
        thread.join(5)


def show(k: Kiosk, text: str, t: float = 0.0) -> None:
    k.station.process(Frame(qr_image(text), t, 0))


def test_status_json_carries_verdict_and_sync_ages(kiosk: Kiosk, mint: Mint) -> None:
    empty = requests.get(kiosk.url + "/v1/status", timeout=5).json()
    assert empty["verdict"] is None and empty["sync_age_s"] == {"GD": 60, "MO": 3600}
    assert empty["sync_stale"] is False and empty["alarm"] is None
    show(kiosk, mint.scenarios()["revoked"])
    body = requests.get(kiosk.url + "/v1/status", timeout=5).json()
    assert body["verdict"]["label"] == "DENY"
    assert body["verdict"]["messages"] == [describe(Reason.REVOKED)]
    assert body["verdict"]["holder"]["masked_name"] == "C** T** M***"
    # the recent list is for the queue, not for identifying anyone
    assert "holder" not in body["recent"][0]


def test_unknown_api_paths_get_json_errors(kiosk: Kiosk) -> None:
    r = requests.get(kiosk.url + "/v1/nope", timeout=5)
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = requests.post(kiosk.url + "/v1/status", data=b"\x00\xff", timeout=5)
    assert r.status_code == 405 and r.json()["error"] == "method_not_allowed"


def test_mjpeg_stream_sends_annotated_jpeg_frames(kiosk: Kiosk, mint: Mint) -> None:
    show(kiosk, mint.present(mint.claims()))
    with requests.get(kiosk.url + "/stream.mjpg", stream=True, timeout=5) as r:
        assert r.headers["Content-Type"].startswith("multipart/x-mixed-replace")
        chunk = next(r.iter_content(4096))
    assert chunk.startswith(b"--frame\r\nContent-Type: image/jpeg")
    assert b"\xff\xd8" in chunk  # JPEG start-of-image marker


@pytest.mark.browser
@pytest.mark.parametrize(
    ("scenario", "css_class", "label", "reason"),
    [
        ("valid", "admit", "ADMIT", None),
        ("yellow", "manual_check", "CHECK", Reason.STATUS_YELLOW),
        ("revoked", "deny", "DENY", Reason.REVOKED),
        ("stale_screenshot", "deny", "DENY", Reason.PROOF_STALE),
    ],
)
def test_verdict_panel_shows_colour_and_reason(
    kiosk: Kiosk, mint: Mint, scenario: str, css_class: str, label: str, reason: Reason | None
) -> None:
    from playwright.sync_api import expect, sync_playwright

    texts = mint.scenarios()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(kiosk.url + "/", wait_until="domcontentloaded")
            expect(page.locator("#label")).to_have_text("READY")
            expect(page.locator("#sync-text")).to_contain_text("GD 1 min")
            show(kiosk, texts[scenario])
            panel = page.locator("#verdict")
            expect(panel).to_have_attribute("data-decision", css_class)
            expect(page.locator("#label")).to_have_text(label)
            if reason is not None:
                expect(page.locator("#message")).to_contain_text(describe(reason))
            expect(page.locator("#masked-name")).to_have_text("C** T** M***")
            expect(page.locator("#region")).to_have_text("GD")
            expect(page.locator("#recent li")).to_have_count(1)
            # the panel colour is the decision's, not merely a class name
            bg = panel.evaluate("e => getComputedStyle(e).backgroundColor")
            expected = {
                "admit": "rgb(10, 125, 32)",
                "manual_check": "rgb(255, 196, 0)",
                "deny": "rgb(196, 0, 0)",
            }[css_class]
            assert bg == expected
        finally:
            browser.close()


def test_stale_sync_and_fork_alarm_are_reported() -> None:
    state = KioskState(
        sync_ages=lambda: {"GD": 60, "MO": None},
        alarm=lambda: "MO: cosigned root abcd.. for size 9, trusted 1234..",
        max_sync_age_s=3600,
    )
    snap = state.snapshot()
    assert snap["sync_stale"] is True  # MO never synced
    assert snap["alarm"].startswith("MO:")


def test_old_verdict_clears_from_the_panel(mint: Mint) -> None:
    now = [1000.0]
    state = KioskState(clock=lambda: now[0])
    station = Station(
        verify=presentation_verifier(lambda: mint.trust),
        clock=lambda f: T0 + f.timestamp,
        listeners=[state.on_event],
    )
    station.process(Frame(qr_image(mint.present(mint.claims())), 0.0, 0))
    assert state.snapshot()["verdict"]["decision"] == "admit"
    now[0] += 13.0  # longer than VERDICT_HOLD_S
    snap = state.snapshot()
    assert snap["verdict"] is None and snap["recent"][0]["decision"] == "admit"


def test_network_stream_source_reads_codes_from_an_mjpeg_url(kiosk: Kiosk, mint: Mint) -> None:
    """A real MJPEG-over-HTTP stream (this very kiosk's view) read by OpenCV's
    VideoCapture through LiveSource, decoded by the station's decoder."""
    import numpy as np

    from verifier.decode import decode_frame
    from verifier.frames import LiveSource, RetryPolicy
    from verifier.synth import synthetic_frame

    text = mint.present(mint.claims())
    frame, _ = synthetic_frame(text, np.random.default_rng(5))
    kiosk.state.on_frame(Frame(frame, 0.0, 0), [])
    src = LiveSource(kiosk.url + "/stream.mjpg", retry=RetryPolicy(max_failures=3))
    try:
        got = next(iter(src))
    finally:
        src.close()
    assert got.image.shape[:2] == (720, 1280)
    assert [c.data for c in decode_frame(got.image)] == [text.encode()]


def test_view_is_encoded_at_stream_rate_not_camera_rate() -> None:
    import numpy as np

    now = [0.0]
    state = KioskState(clock=lambda: now[0])
    img = np.zeros((72, 128, 3), np.uint8)
    for i in range(30):  # one second of a 30 fps camera
        now[0] = i / 30.0
        state.on_frame(Frame(img, now[0], i), [])
    seq, jpeg = state.frame()
    assert jpeg is not None and jpeg.startswith(b"\xff\xd8")
    assert 10 <= seq <= 16  # about STREAM_MAX_FPS encodes, not 30


def test_language_switch_takes_json_only_and_names_what_it_supports(kiosk: Kiosk) -> None:
    from credential.languages import Language

    url = kiosk.url + "/v1/language"
    # a form post (what another web site could send without a preflight) is refused
    r = requests.post(url, data={"language": "pt"}, timeout=5)
    assert r.status_code == 415 and r.json()["error"] == "unsupported_media_type"
    r = requests.post(url, json={"language": "tlh"}, timeout=5)
    assert r.status_code == 400 and "zh-Hant" in r.json()["message"]
    r = requests.post(url, json=["pt"], timeout=5)
    assert r.status_code == 400
    assert kiosk.state.language is Language.EN
    r = requests.post(url, json={"language": "zh-MO"}, timeout=5)
    assert r.status_code == 200 and r.json() == {"language": "zh-Hant"}
    body = requests.get(kiosk.url + "/v1/status", timeout=5).json()
    assert body["language"] == "zh-Hant" and body["sync_text"] == "GD 1 分鐘, MO 1 小時"


def test_status_says_since_when_the_camera_is_dark() -> None:
    from verifier.frames import SourceEvent, SourceEventKind
    from verifier.kiosk import CAMERA_LIVE_S

    now = [5000.0]
    state = KioskState(clock=lambda: now[0])
    cam = state.snapshot()["camera"]
    assert cam["live"] is False and cam["since"] == 5000.0  # no frame since the start
    now[0] += 1.0
    state.on_frame(Frame(qr_image("HB1:00"), 0.0, 0), [])
    assert state.snapshot()["camera"]["live"] is True
    now[0] += CAMERA_LIVE_S + 0.5
    state.on_source(SourceEvent(SourceEventKind.LOST, "camera 0"))
    cam = state.snapshot()["camera"]
    assert cam == {"live": False, "since": 5001.0, "source": "lost"}
