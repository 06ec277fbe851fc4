"""The wallet page in headless Chromium, backed by the real GD issuer over HTTP.

The GD issuer (`issuer.app.create_app`, its development file delivery for enrolment
codes) and the wallet page (`mobile_stub.web.create_app`) are each served by werkzeug
on 127.0.0.1; the wallet enrols over HTTP, and Chromium shows the page at a phone
viewport. Every QR is read back from a screenshot (zxing-cpp) and verified with
`credential.verify` against the issuer's registered signing keys. The status change
goes through GD's admin API with an operator's own token, and the outage is a real
one: the issuer's server is shut and its socket closed.

No ledger node is served: the wallet never reads a log, and the issuer's anchoring is
covered by its own tests (the worker is off here, as in test_wallet_over_http.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import requests
from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from common.serving import free_port
from credential.claims import StatusColour
from credential.keys import SigningAlg
from credential.reasons import Reason
from credential.trust import InMemoryTrustState, RegisteredKey
from credential.verdict import Decision
from credential.verify import verify_presentation
from issuer.app import create_app as create_issuer_app
from issuer.context import IssuerContext
from issuer.delivery import FileDelivery, read_delivered_code
from issuer.models import SigningKeyRow
from issuer.testing import make_context
from mobile_stub.client import HttpIssuer
from mobile_stub.wallet import Wallet
from mobile_stub.web import create_app as create_wallet_app
from tests.support.environment import CHROMIUM_ARGS, chromium_path
from tests.support.screen import read_code_on_screen

if TYPE_CHECKING:
    from playwright.sync_api import ViewportSize

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "wallet"
PHONE: ViewportSize = {"width": 390, "height": 844}  # CSS pixels, a common phone viewport
FRAME_RGB = {"green": "rgb(11, 122, 52)", "red": "rgb(196, 28, 28)"}  # wallet.css
GD_DOC = "G10000001"  # a seeded GD resident (fully vaccinated: green)
RED_REASON = "contact tracing"
WAIT_MS = 15_000  # milliseconds a page change may take (2 shared cores)
KEY_NOT_BEFORE_SLACK_S = 60  # seconds; a synced view registers the key a little early


class Server:
    """A Flask app on 127.0.0.1 that can be stopped mid-test, socket and all."""

    def __init__(self, app: Flask) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: BaseWSGIServer = make_server("127.0.0.1", self.port, app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.running = True

    def stop(self) -> None:
        if self.running:
            self.running = False
            self._server.shutdown()
            # Closing the listening socket makes the outage a refused connection, as
            # when the issuer process is gone, not a connection left hanging.
            self._server.server_close()
            self._thread.join(timeout=5)


def issuer_trust(ctx: IssuerContext) -> InMemoryTrustState:
    """What a station holds after syncing GD's log: GD's registered signing keys."""
    trust = InMemoryTrustState()
    with ctx.sessions() as s:
        for k in s.query(SigningKeyRow).all():
            trust.add_key(
                RegisteredKey(
                    ctx.region,
                    k.kid,
                    SigningAlg(k.alg),
                    k.public_key_der,
                    k.not_before - KEY_NOT_BEFORE_SLACK_S,
                    k.not_after,
                )
            )
    trust.sync_times[ctx.region] = int(time.time())
    return trust


def operator_token(ctx: IssuerContext) -> str:
    """An API token of a GD operator's own account (admins act as themselves)."""
    from issuer.admin import accounts_db
    from issuer.admin.accounts import Role

    roles = frozenset({Role.OPERATOR})
    accounts_db.create_account(ctx.sessions, "gd-ops", ctx.region, roles, "a long pass phrase", 0)
    return accounts_db.issue_token(ctx.sessions, "gd-ops", "wallet page test", ctx.now())


@dataclass
class Stack:
    issuer_ctx: IssuerContext
    issuer: Server
    wallet_url: str
    trust: InMemoryTrustState


@pytest.fixture()
def stack(tmp_path: Path) -> Iterator[Stack]:
    ctx = make_context(tmp_path, "GD")
    # The development delivery: codes land in a 0600 file, as `healthbridge issuer serve`
    # does out of the box, instead of the in-memory test delivery.
    ctx.delivery = FileDelivery(ctx.config.delivery_file, ctx.keys.delivery_ref)
    issuer = Server(create_issuer_app(ctx.config, context=ctx, start_workers=False))
    wallet_server: Server | None = None
    try:
        # Enrol over HTTP, reading the code from the development delivery file.
        wallet_dir = tmp_path / "wallet"
        wallet = Wallet.open(wallet_dir)
        http = HttpIssuer(issuer.url)
        delivery = wallet.request_code(http, GD_DOC)
        assert "development delivery" in delivery.delivery
        code = read_delivered_code(ctx.config.delivery_file, ctx.keys.delivery_ref(GD_DOC))
        assert code is not None
        wallet.enrol(http, GD_DOC, code, time.time())
        wallet_server = Server(create_wallet_app({"WALLET_DIR": wallet_dir}))
        yield Stack(ctx, issuer, wallet_server.url + "/", issuer_trust(ctx))
    finally:
        if wallet_server is not None:
            wallet_server.stop()
        issuer.stop()
        ctx.dispose()


def test_phone_page_turns_red_and_survives_an_issuer_outage(stack: Stack) -> None:
    from playwright.sync_api import Page, sync_playwright

    def frame_colour(page: Page) -> str:
        return str(page.eval_on_selector("#frame", "e => getComputedStyle(e).borderTopColor"))

    def shot_code(page: Page, name: str) -> str:
        shot = ARTIFACTS / f"real-issuer-{name}.png"
        return read_code_on_screen(page, shot)

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(
                viewport=PHONE, device_scale_factor=2, is_mobile=True
            ).new_page()
            page.goto(stack.wallet_url)
            # Selector waits, not wait_for_function: the page's CSP forbids eval.
            page.wait_for_selector("#qr[data-window]:not([data-window=''])", state="attached")

            # Green from the real issuer; the code on screen verifies with its real key.
            assert page.get_attribute("body", "data-colour") == "green"
            assert frame_colour(page) == FRAME_RGB["green"]
            assert page.inner_text("#status-word") == "GREEN"
            assert GD_DOC not in page.content()
            verdict = verify_presentation(shot_code(page, "green"), stack.trust, time.time())
            assert verdict.decision == Decision.ADMIT, verdict.reasons
            assert verdict.region == "GD"
            assert verdict.colour == StatusColour.GREEN
            # The page's own first issuer poll found the issuer online.
            assert page.is_hidden("#offline")

            # GD's operator turns the resident red through the admin API.
            r = requests.post(
                f"{stack.issuer.url}/v1/admin/regions/GD/status-overrides",
                json={"document_number": GD_DOC, "colour": "red", "reason": RED_REASON},
                headers={"Authorization": f"Bearer {operator_token(stack.issuer_ctx)}"},
                timeout=10,
            )
            assert r.status_code == 202, r.text

            # The page's refresh (POST /v1/refresh from its own script) brings the red code.
            page.evaluate("window.hbWallet.pollIssuer()")
            page.wait_for_selector("body[data-colour='red']", state="attached", timeout=WAIT_MS)
            assert frame_colour(page) == FRAME_RGB["red"]
            assert page.inner_text("#status-word") == "RED"
            assert page.is_hidden("#offline")
            verdict = verify_presentation(shot_code(page, "red"), stack.trust, time.time())
            assert verdict.decision == Decision.DENY
            assert verdict.reasons == (Reason.STATUS_RED,)
            assert verdict.colour == StatusColour.RED

            # The issuer goes away: the banner shows, the stored red code still verifies.
            stack.issuer.stop()
            page.evaluate("window.hbWallet.pollIssuer()")
            page.wait_for_selector("#offline", state="visible", timeout=WAIT_MS)
            assert page.get_attribute("body", "data-colour") == "red"
            assert page.is_hidden("#problem")
            verdict = verify_presentation(shot_code(page, "offline"), stack.trust, time.time())
            assert verdict.decision == Decision.DENY
            assert verdict.reasons == (Reason.STATUS_RED,)
            assert verdict.colour == StatusColour.RED
        finally:
            browser.close()


def test_issuer_answering_unavailable_raises_the_offline_banner(stack: Stack) -> None:
    """The issuer is up but its database is gone: it answers HTTP 503, and the page must
    raise the offline banner (the refresh used to answer a 409 the page read as online)
    while its code keeps verifying."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(
                viewport=PHONE, device_scale_factor=2, is_mobile=True
            ).new_page()
            page.goto(stack.wallet_url)
            page.wait_for_selector("#qr[data-window]:not([data-window=''])", state="attached")
            assert page.is_hidden("#offline")

            # The issuer's database file disappears under it: every request now fails.
            stack.issuer_ctx.dispose()
            db_file = Path(stack.issuer_ctx.config.database_url.removeprefix("sqlite:///"))
            db_file.unlink()
            # The real issuer maps the failure to a JSON 503, never a traceback.
            refresh = requests.post(f"{stack.wallet_url}v1/refresh", timeout=10).json()
            assert (refresh["online"], refresh["error"]) == (False, "issuer_unavailable")

            page.evaluate("window.hbWallet.pollIssuer()")
            page.wait_for_selector("#offline", state="visible", timeout=WAIT_MS)
            shot = ARTIFACTS / "real-issuer-unavailable.png"
            verdict = verify_presentation(read_code_on_screen(page, shot), stack.trust, time.time())
            assert verdict.decision == Decision.ADMIT, verdict.reasons
        finally:
            browser.close()
