"""The kiosk as staff use it, in real headless Chromium, in each station language.

Per language: the verdict, its reason, the "last scans" list in plain words with a
24-hour clock, a foreign health code named, the camera area saying since when the
camera is disconnected, and the alarms. Expected words come from the verifier's
catalogs through plain `gettext` (not through the app), so a page that forgot to
translate fails. Screenshots go to test-artifacts/kiosk/ for review.
"""

from __future__ import annotations

import gettext
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from werkzeug.serving import make_server

from common.serving import free_port
from credential.languages import Language
from credential.reasons import Reason
from credential.verdict import describe
from tests.support.environment import CHROMIUM_ARGS, chromium_path
from tests.verifier.conftest import T0, Mint
from verifier.frames import Frame
from verifier.kiosk import CAMERA_LIVE_S, KioskState, create_app
from verifier.scanlog import ScanLog
from verifier.station import Station, presentation_verifier
from verifier.synth import qr_image

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "kiosk"
CATALOGS = ROOT / "verifier" / "translations"
# Chromium may start Web Audio without a click; a kiosk browser is set up the same way.
KIOSK_ARGS = [*CHROMIUM_ARGS, "--autoplay-policy=no-user-gesture-required"]
TIME_24H = re.compile(r"([01]\d|2[0-3]):[0-5]\d:[0-5]\d")
DCC_TEXT = "HC1:NCFOXN%TS3DH3ZSUZK+.V0ETD%65NL-AH-R6IOO6+IDOEZKL2W5"


def words(language: Language) -> gettext.NullTranslations:
    if language is Language.EN:
        return gettext.NullTranslations()
    return gettext.translation("messages", str(CATALOGS), [language.catalog])


@dataclass
class Desk:
    url: str
    state: KioskState
    station: Station
    now: list[float]
    alarm: list[str | None] = field(default_factory=lambda: [None])
    ages: dict[str, int | None] = field(default_factory=lambda: {"GD": 60, "MO": 3600})
    saved: list[Language] = field(default_factory=list)

    def show(self, text: str) -> None:
        self.station.process(Frame(qr_image(text), self.now[0] - T0, 0))

    def camera_frame(self) -> None:
        self.state.on_frame(Frame(np.full((90, 160, 3), 90, np.uint8), 0.0, 0), [])


def desk_for(mint: Mint, language: Language) -> Iterator[Desk]:
    now = [T0]
    log = ScanLog()
    desk = Desk("", KioskState(), Station(verify=presentation_verifier(lambda: mint.trust)), now)
    state = KioskState(
        log=log,
        sync_ages=lambda: desk.ages,
        online=lambda: True,
        alarm=lambda: desk.alarm[0],
        max_sync_age_s=6 * 3600,
        clock=lambda: now[0],
        language=language,
        on_language=desk.saved.append,
    )
    desk.state = state
    desk.station = Station(
        verify=presentation_verifier(lambda: mint.trust),
        log=log,
        clock=lambda f: T0 + f.timestamp,
        listeners=[state.on_event],
        frame_listeners=[state.on_frame],
    )
    server = make_server("127.0.0.1", free_port(), create_app({"KIOSK_STATE": state}), True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    desk.url = f"http://127.0.0.1:{server.server_port}"
    try:
        yield desk
    finally:
        server.shutdown()
        thread.join(5)


@pytest.fixture()
def desk(mint: Mint, request: pytest.FixtureRequest) -> Iterator[Desk]:
    yield from desk_for(mint, getattr(request, "param", Language.EN))


def wait_for_tone(page: object, tone: str, timeout_s: float = 5.0) -> list[str]:
    """What the page played, once `tone` is the newest (polled from Python: the page's
    CSP forbids the string evaluation Playwright's wait_for_function would need)."""
    deadline = time.monotonic() + timeout_s
    while True:
        played: list[str] = page.evaluate("window.hbKiosk.played")  # type: ignore[attr-defined]
        if played and played[-1] == tone:
            return played
        assert time.monotonic() < deadline, f"expected tone {tone}, played {played}"
        time.sleep(0.05)


def shoot(page: object, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))  # type: ignore[attr-defined]


@pytest.mark.parametrize("desk", list(Language), indirect=True, ids=str)
def test_kiosk_speaks_the_station_language(desk: Desk, mint: Mint) -> None:
    from playwright.sync_api import expect, sync_playwright

    language = desk.state.language
    _ = words(language).gettext
    texts = mint.scenarios()
    desk.camera_frame()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=KIOSK_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(desk.url + "/", wait_until="domcontentloaded")
            assert page.locator("html").get_attribute("lang") == language.value
            expect(page.locator("#label")).to_have_text(_("READY"))
            expect(page.locator("#message")).to_have_text(_("Show the health code to the camera."))

            desk.show(texts["valid"])
            desk.show(texts["yellow"])
            desk.show(texts["stale_screenshot"])
            desk.camera_frame()
            expect(page.locator("#recent li")).to_have_count(3)
            desk.show(texts["revoked"])
            desk.camera_frame()
            expect(page.locator("#label")).to_have_text(_("DENY"))
            expect(page.locator("#message")).to_have_text(_(describe(Reason.REVOKED)))
            expect(page.locator("#colour")).to_have_text(_("GREEN"))
            rows = page.locator("#recent li")
            expect(rows).to_have_count(4)
            # "last scans" in plain words: the decision and the reason, never a code
            expect(rows.nth(0)).to_contain_text(_(describe(Reason.REVOKED)))
            expect(rows.nth(1)).to_contain_text(_(describe(Reason.PROOF_STALE)))
            expect(rows.nth(2)).to_contain_text(_("CHECK"))
            expect(rows.nth(3)).to_contain_text(_("Valid health code."))
            listed = " ".join(rows.all_inner_texts())
            assert "proof_stale" not in listed and "status_yellow" not in listed
            assert " AM" not in listed and " PM" not in listed
            assert TIME_24H.fullmatch(rows.nth(0).locator(".time").inner_text())
            shoot(page, f"verdict-{language.value}")

            desk.now[0] += 1.0
            desk.show(DCC_TEXT)
            expect(page.locator("#message")).to_have_text(_(describe(Reason.FOREIGN_EU_DCC)))
            shoot(page, f"eu-dcc-{language.value}")

            # The camera goes away: the view says so, and since when, in 24-hour time.
            desk.now[0] += CAMERA_LIVE_S + 1.0
            off = page.locator("#camera-off")
            expect(off).to_be_visible()
            expect(page.locator("#view")).to_be_hidden()
            said = page.locator("#camera-off-text").inner_text()
            assert TIME_24H.search(said), said
            prefix = _("Camera disconnected since %(time)s.").split("%(time)s")[0]
            assert said.startswith(prefix.strip()), said
            shoot(page, f"camera-disconnected-{language.value}")
            desk.camera_frame()
            expect(off).to_be_hidden()
            expect(page.locator("#view")).to_be_visible()
        finally:
            browser.close()


@pytest.mark.parametrize("desk", [Language.ZH_HANT, Language.PT], indirect=True, ids=str)
def test_fork_and_sync_alarms_cannot_be_missed(desk: Desk) -> None:
    from playwright.sync_api import expect, sync_playwright

    _ = words(desk.state.language).gettext
    desk.camera_frame()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=KIOSK_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(desk.url + "/", wait_until="domcontentloaded")
            expect(page.locator("#label")).to_have_text(_("READY"))
            assert page.locator("#fork-alarm").is_hidden()
            desk.ages["MO"] = 7 * 3600
            sync = page.locator("#sync-alarm")
            expect(sync).to_be_visible()
            expect(sync).to_contain_text("MO")
            desk.alarm[0] = "MO: cosigned root 9f.. for size 9, trusted 12.."
            fork = page.locator("#fork-alarm")
            expect(fork).to_be_visible()
            expect(fork).to_contain_text(
                _(
                    "LEDGER ALARM: a ledger shows two different histories. Stop and call the"
                    " supervisor."
                )
            )
            expect(page.locator("body")).to_have_class(re.compile(r"\bforked\b"))
            # the band spans the page's whole width, above the verdict panel
            box = fork.bounding_box()
            assert box is not None and box["width"] >= 1200 and box["y"] < 5
            wait_for_tone(page, "alarm")
            shoot(page, f"alarm-{desk.state.language.value}")
            page.locator("#silence").click()
            expect(page.locator("#silence")).to_be_hidden()
            expect(fork).to_be_visible()  # silenced, not dismissed
        finally:
            browser.close()


def test_each_decision_has_its_own_tone_and_sound_can_be_switched_off(
    desk: Desk, mint: Mint
) -> None:
    from playwright.sync_api import expect, sync_playwright

    texts = mint.scenarios()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=KIOSK_ARGS)
        try:
            page = browser.new_page()
            page.goto(desk.url + "/", wait_until="domcontentloaded")
            expect(page.locator("#sync-text")).not_to_have_text("…")
            tones = page.evaluate("window.hbKiosk.tones")
            signatures = {k: tuple(map(tuple, v)) for k, v in tones.items()}
            assert len(set(signatures.values())) == len(signatures) == 4
            for name, want in (("valid", "admit"), ("yellow", "manual_check")):
                desk.show(texts[name])
                wait_for_tone(page, want)
            desk.show(texts["revoked"])
            wait_for_tone(page, "deny")
            page.locator("#sound").click()  # staff switch the sound off
            assert page.locator("#sound").get_attribute("aria-pressed") == "false"
            desk.show(texts["expired"])
            expect(page.locator("#recent li")).to_have_count(4)
            assert page.evaluate("window.hbKiosk.played") == ["admit", "manual_check", "deny"]
            page.reload(wait_until="domcontentloaded")  # the choice is kept on this kiosk screen
            assert page.locator("#sound").get_attribute("aria-pressed") == "false"
        finally:
            browser.close()


def test_staff_switch_the_language_from_the_page(desk: Desk) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=KIOSK_ARGS)
        try:
            page = browser.new_page()
            page.goto(desk.url + "/", wait_until="domcontentloaded")
            expect(page.locator("#label")).to_have_text("READY")
            page.locator("button.lang[data-language='zh-Hans']").click()
            expect(page.locator("html")).to_have_attribute("lang", "zh-Hans")
            expect(page.locator("#label")).to_have_text(words(Language.ZH_HANS).gettext("READY"))
            assert desk.state.language is Language.ZH_HANS
            assert desk.saved == [Language.ZH_HANS]
        finally:
            browser.close()
