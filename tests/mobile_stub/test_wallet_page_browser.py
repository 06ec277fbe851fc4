"""The wallet page in headless Chromium at a phone viewport.

The wallet page is served over real HTTP (werkzeug on 127.0.0.1) with an injected
clock; the issuer behind it is the in-memory one, so status changes and outages can be
staged. Screenshots go to test-artifacts/ and the QR read back from them (zxing-cpp)
must verify with credential.verify.
"""

from __future__ import annotations

import gettext
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from common.serving import free_port
from credential.claims import StatusColour
from credential.languages import Language
from credential.presentation import WINDOW_SECONDS
from credential.trust import InMemoryTrustState
from credential.verify import verify_presentation
from mobile_stub.wallet import Wallet
from mobile_stub.web import create_app
from tests.support.environment import CHROMIUM_ARGS, chromium_path
from tests.support.screen import read_code_on_screen
from tests.support.wallet import FakeIssuer

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PHONE = {"width": 390, "height": 844}  # CSS pixels, a common phone viewport
# 3 s before the end of a window, so the page's own timer rolls over during the test.
START = 1_800_000_010 - 1_800_000_010 % WINDOW_SECONDS + WINDOW_SECONDS - 3
FRAME_RGB = {"green": "rgb(11, 122, 52)", "red": "rgb(196, 28, 28)"}


@dataclass
class Clock:
    now: float

    def __call__(self) -> float:
        return self.now


@dataclass
class Served:
    url: str
    clock: Clock
    issuer: FakeIssuer
    holder: str
    trust: InMemoryTrustState


@pytest.fixture()
def served(tmp_path: Path) -> Iterator[Served]:
    from werkzeug.serving import make_server

    issuer = FakeIssuer("GD", START)
    wallet = Wallet.open(tmp_path / "wallet")
    wallet.request_code(issuer, "G12345678")
    holder = wallet.enrol(issuer, "G12345678", "123456", START).holder_id
    trust = InMemoryTrustState()
    issuer.register(trust)
    clock = Clock(float(START))
    app = create_app(
        {"WALLET_DIR": tmp_path / "wallet", "CLOCK": clock, "ISSUER_FACTORY": lambda u: issuer}
    )
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Served(f"http://127.0.0.1:{port}/", clock, issuer, holder, trust)
    finally:
        server.shutdown()
        thread.join(timeout=5)


def test_phone_page_shows_a_verifying_code_that_refreshes_and_recolours(served: Served) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(
                viewport=PHONE, device_scale_factor=2, is_mobile=True
            ).new_page()
            page.goto(served.url)
            # Selector waits, not wait_for_function: the page's CSP forbids eval.
            page.wait_for_selector("#qr[data-window]:not([data-window=''])", state="attached")

            # The colour matches the status, in the frame and in the status word.
            assert page.get_attribute("body", "data-colour") == "green"
            border = page.eval_on_selector("#frame", "e => getComputedStyle(e).borderTopColor")
            assert border == FRAME_RGB["green"]
            assert page.inner_text("#status-word") == "GREEN"
            assert page.inner_text("#name") == "C** T** M**"
            assert page.is_hidden("#offline")

            # A code captured from the screen verifies.
            shot = ARTIFACTS / "wallet-page-green.png"
            first = read_code_on_screen(page, shot)
            verdict = verify_presentation(first, served.trust, served.clock.now)
            assert verdict.decision == "admit", verdict.reasons

            # The next window brings a new code, fetched by the page's own timer.
            window = page.get_attribute("#qr", "data-window")
            served.clock.now += WINDOW_SECONDS
            page.wait_for_selector(
                f"#qr:not([data-window='{window}'])", state="attached", timeout=15_000
            )
            shot = ARTIFACTS / "wallet-page-next-window.png"
            second = read_code_on_screen(page, shot)
            assert second != first
            verdict = verify_presentation(second, served.trust, served.clock.now)
            assert verdict.decision == "admit", verdict.reasons

            # A status change at the issuer reaches the page on its next issuer poll.
            served.issuer.set_colour(served.holder, StatusColour.RED)
            served.issuer.now = served.clock.now
            page.evaluate("window.hbWallet.pollIssuer()")
            page.wait_for_selector("body[data-colour='red']", state="attached", timeout=10_000)
            border = page.eval_on_selector("#frame", "e => getComputedStyle(e).borderTopColor")
            assert border == FRAME_RGB["red"]
            page.screenshot(path=str(ARTIFACTS / "wallet-page-red.png"), full_page=True)

            # Issuer gone: the offline banner shows and the code keeps working.
            served.issuer.online = False
            page.evaluate("window.hbWallet.pollIssuer()")
            page.wait_for_selector("#offline", state="visible", timeout=10_000)
            shot = ARTIFACTS / "wallet-page-offline.png"
            offline_code = read_code_on_screen(page, shot)
            verdict = verify_presentation(offline_code, served.trust, served.clock.now)
            assert verdict.colour == StatusColour.RED
        finally:
            browser.close()


def test_issuer_refusing_the_refresh_is_said_on_the_page(served: Served) -> None:
    """An issuer that answers but refuses (here: the device key is no longer the one it
    enrolled) is not "offline": the page says what the issuer said, keeps showing the
    stored code, and clears the message once the issuer answers normally again."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from playwright.sync_api import sync_playwright

    from credential.keys import public_key_der

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 390, "height": 844})
            page.goto(served.url)
            page.wait_for_selector("#qr[src]", timeout=10_000)
            assert page.is_hidden("#problem")
            holder = served.issuer.holders[served.holder]
            enrolled_key = holder.device_der
            holder.device_der = public_key_der(ec.generate_private_key(ec.SECP256R1()))
            page.evaluate("window.hbWallet.pollIssuer()")
            page.wait_for_selector("#problem", state="visible", timeout=10_000)
            assert "unauthorized" in page.inner_text("#problem")
            assert page.is_hidden("#offline")
            page.evaluate("window.hbWallet.fetchPresentation()")  # a code still shows
            page.wait_for_selector("#qr[src]", timeout=10_000)
            assert page.is_visible("#problem")  # and the refusal is not wiped by it
            page.screenshot(path=str(ARTIFACTS / "wallet-page-refused.png"), full_page=True)
            holder.device_der = enrolled_key
            page.evaluate("window.hbWallet.pollIssuer()")
            page.wait_for_selector("#problem", state="hidden", timeout=10_000)
        finally:
            browser.close()


CATALOGS = Path(__file__).resolve().parents[2] / "mobile_stub" / "translations"


@pytest.mark.parametrize(
    ("phone_locale", "language"),
    [
        ("en-GB", Language.EN),
        ("zh-CN", Language.ZH_HANS),
        ("zh-MO", Language.ZH_HANT),
        ("pt-PT", Language.PT),
    ],
)
def test_phone_page_speaks_the_phone_language(
    served: Served, phone_locale: str, language: Language
) -> None:
    """The phone's language (Chromium sends it as Accept-Language) picks the page's words;
    times are on a 24-hour clock; the code shown still verifies."""
    from playwright.sync_api import sync_playwright

    tr = (
        gettext.translation("messages", str(CATALOGS), [language.catalog])
        if language is not Language.EN
        else gettext.NullTranslations()
    )
    _ = tr.gettext
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(
                viewport=PHONE, device_scale_factor=2, is_mobile=True, locale=phone_locale
            )
            page = context.new_page()
            page.goto(served.url)
            page.wait_for_selector("#qr[data-window]:not([data-window=''])", state="attached")
            assert page.get_attribute("html", "lang") == language.value
            assert page.inner_text("#status-word") == _("GREEN")
            assert page.inner_text("#countdown-text").startswith(
                _("New code in %(seconds)s s").split("%(seconds)s")[0].strip()
            )
            facts = page.inner_text(".facts")
            assert _("Valid until") in facts and _("Vaccination") in facts
            expires = page.inner_text("#expires")
            assert re.search(r"\b([01]\d|2[0-3]):[0-5]\d\b", expires), expires
            assert "AM" not in expires and "PM" not in expires
            assert re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d:[0-5]\d", page.inner_text("#clock"))
            shot = ARTIFACTS / f"wallet-page-{language.value}.png"
            verdict = verify_presentation(
                read_code_on_screen(page, shot), served.trust, served.clock.now
            )
            assert verdict.decision == "admit", verdict.reasons
            served.issuer.online = False
            page.evaluate("window.hbWallet.pollIssuer()")
            page.wait_for_selector("#offline", state="visible", timeout=10_000)
            assert page.inner_text("#offline") == _(
                "Offline: the issuer cannot be reached. Your code still works."
            )
        finally:
            browser.close()
