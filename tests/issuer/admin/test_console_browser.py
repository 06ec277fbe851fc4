"""The admin console in headless Chromium (Playwright), against a real GD issuer and a
real GD ledger node served over HTTP on 127.0.0.1, whose checkpoints are cosigned by
the GD and MO witness keys (consortium quorum: all). Screenshots of each main page go
to test-artifacts/console/ for review, and one on any failure."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher

from issuer.admin import accounts, accounts_db
from issuer.admin.accounts import Role
from issuer.app import create_app, stop_app
from issuer.context import IssuerContext
from issuer.issuance import issue_credential
from issuer.models import CredentialRow, Holder
from issuer.testing import enrol_directly, make_context, new_device, node_config, serve
from ledger.log.checkpoint import Checkpoint, cosign, cosignature_vkey
from ledger.log.consortium import build_consortium, write_consortium
from ledger.log.entries import root_public_key_bytes
from ledger.log.note import NoteSigner, SignedNote
from tests.support.environment import CHROMIUM_ARGS, chromium_path

pytestmark = [pytest.mark.browser, pytest.mark.slow]
PASSWORD = "correct horse battery"
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "console"
BULK_ROWS = 1_000
WAIT_S = 30.0  # seconds to wait for the log and the witnesses at most


@pytest.fixture(autouse=True)
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(accounts, "_HASHER", PasswordHasher(time_cost=1, memory_cost=8192))


@dataclasses.dataclass
class System:
    ctx: IssuerContext
    url: str


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    from ledger.node.app import create_app as node_app

    tmp = tmp_path_factory.mktemp("console")
    gd = make_context(tmp, "GD")
    witnesses = {
        r: NoteSigner.from_skey(NoteSigner.generate(f"witness.{r.lower()}.example")[0])
        for r in ("GD", "MO")
    }

    def cosign_hook(note: bytes) -> list[str]:
        cp = Checkpoint.parse(SignedNote.parse(note).text)
        return [cosign(cp, w, int(time.time())).rstrip("\n") for w in witnesses.values()]

    base = node_config(gd, tmp)
    # C2SP tlog-checkpoint: the log key's name is the log's origin.
    skey, _ = NoteSigner.generate(base.origin)
    key_file = tmp / "gd-log-origin.skey"
    key_file.write_text(skey)
    key_file.chmod(0o600)
    ncfg = dataclasses.replace(base, log_key_file=key_file, cosign_hook=cosign_hook)
    log_signer = NoteSigner.from_skey(skey)
    napp = node_app(ncfg)
    with serve(napp) as node:
        consortium = build_consortium(
            [
                {
                    "id": "GD",
                    "name": "Guangdong",
                    "witness_vkey": cosignature_vkey(witnesses["GD"]),
                    "node_url": node.url,
                    "log_origin": ncfg.origin,
                    "log_vkey": log_signer.verifier().vkey(),
                    "root_public_key": root_public_key_bytes(gd.keys.root_key()),
                },
                {
                    "id": "MO",
                    "name": "Macau",
                    "witness_vkey": cosignature_vkey(witnesses["MO"]),
                    "node_url": "http://127.0.0.1:9",
                    "witness_only": True,
                },
            ]
        )
        write_consortium(tmp / "consortium.toml", consortium)
        cfg = gd.config.replace(
            ledger_url=node.url,
            anchor_worker=True,
            anchor_interval_s=0.05,
            consortium_path=tmp / "consortium.toml",
        )
        gd.config = cfg
        app = create_app(cfg, context=gd)
        for name, role in (
            ("oper", Role.OPERATOR),
            ("viewer", Role.VIEWER),
            ("keyadmin", Role.KEY_ADMIN),
            ("auditor", Role.AUDITOR),
        ):
            accounts_db.create_account(gd.sessions, name, "GD", frozenset({role}), PASSWORD, 0)
        with serve(app) as issuer:
            yield System(gd, issuer.url)
        stop_app(app)
        for ext in napp.extensions.values():
            if hasattr(ext, "sequencer"):
                ext.sequencer.stop()
    gd.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = ctx.new_page()
    pg.set_default_timeout(WAIT_S * 1000)
    failed_before = request.session.testsfailed
    yield pg
    # The call phase's report is logged before teardown, so a failure shows up here.
    if request.session.testsfailed > failed_before:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        pg.screenshot(path=str(ARTIFACTS / f"FAILED-{request.node.name}.png"), full_page=True)
    ctx.close()


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def login(page: Any, system: System, user: str) -> None:
    page.goto(f"{system.url}/console/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/console/overview")  # the landing page
    page.goto(f"{system.url}/console/credentials")


def new_credential(system: System, doc: str) -> int:
    return enrol_directly(system.ctx, doc, new_device()).issued.credential.status_index


def test_log_in_and_see_each_page(page: Any, system: System) -> None:
    page.goto(f"{system.url}/console/login")
    shot(page, "login")
    login(page, system, "auditor")
    for path, name in (
        ("credentials", "credentials"),
        ("keys", "keys"),
        ("ledger", "ledger"),
        ("audit", "audit"),
    ):
        page.goto(f"{system.url}/console/{path}")
        shot(page, name)
    page.goto(f"{system.url}/console/ledger")
    assert "GD" in page.inner_text("main")
    assert page.locator(".ledger-region").count() == 1


def test_revoke_goes_from_pending_to_cosigned(page: Any, system: System) -> None:
    idx = new_credential(system, "G10000001")
    login(page, system, "oper")
    page.fill("input[name=q]", str(idx))
    page.click("form.search button")
    page.click(f"text=GD:{idx}")
    page.select_option("select[name=reason]", "fraud")
    page.fill("input[name=note]", "record was forged")
    page.click("button.danger")
    assert "pending until cosigned" in page.inner_text(".flash")
    revoked = page.locator(".history tr", has_text="revoked").locator(".entry-state")
    first = revoked.text_content().strip()
    assert first in ("pending", "sequenced", "anchored", "cosigned")
    shot(page, "credential-revoked-pending")
    # The page's script polls the state; no reload needed.
    page.wait_for_function(
        "() => [...document.querySelectorAll('.history .entry-state')]"
        ".every(e => e.textContent.trim() === 'cosigned')",
        timeout=WAIT_S * 1000,
    )
    shot(page, "credential-revoked-cosigned")
    # The script shows who cosigned: pending -> sequenced -> cosigned by GD, MO.
    page.wait_for_function(
        "() => [...document.querySelectorAll('.history .cosigners')]"
        ".every(e => e.textContent.trim() === 'by GD, MO')",
        timeout=WAIT_S * 1000,
    )
    page.reload()  # and the server-rendered page says the same without the script
    assert "by GD, MO" in page.inner_text(".history")
    page.goto(f"{system.url}/console/ledger")
    assert page.locator(".state.cosigned", has_text="present").count() == 2  # both cosigned
    assert page.text_content(".ledger-region dd .state.cosigned") == "met"


def test_gd_admin_is_refused_on_an_mo_credential(page: Any, system: System) -> None:
    idx = new_credential(system, "G10000002")
    login(page, system, "oper")
    page.goto(f"{system.url}/console/credentials/GD/{idx}")
    # Point the real form (with its valid CSRF token) at MO's credential and send it.
    page.eval_on_selector(
        "form[action$='/revoke']", "f => f.action = f.action.replace('/GD/', '/MO/')"
    )
    page.click("button.danger")
    assert "Refused" in page.inner_text("h1")
    assert "act on GD only" in page.inner_text("main")
    shot(page, "refused-mo")
    resp = page.goto(f"{system.url}/console/credentials/MO/{idx}")
    assert resp.status == 403
    with system.ctx.sessions() as s:
        assert s.query(CredentialRow).filter_by(status_index=idx).one().state == "active"


def test_form_post_without_csrf_token_is_refused(page: Any, system: System) -> None:
    idx = new_credential(system, "G10000003")
    login(page, system, "oper")
    r = page.request.post(
        f"{system.url}/console/credentials/GD/{idx}/revoke", form={"reason": "fraud", "note": "x"}
    )
    assert r.status == 400
    page.goto(f"{system.url}/console/credentials/GD/{idx}")
    page.eval_on_selector("input[name=csrf_token]", "e => e.value = 'forged'")
    page.eval_on_selector_all(
        "form[action$='/revoke'] input[name=csrf_token]",
        "es => es.forEach(e => e.value = 'forged')",
    )
    page.click("button.danger")
    assert "not sent by this console" in page.inner_text("main")
    with system.ctx.sessions() as s:
        assert s.query(CredentialRow).filter_by(status_index=idx).one().state == "active"


def test_viewer_cannot_revoke(page: Any, system: System) -> None:
    idx = new_credential(system, "G10000004")
    login(page, system, "viewer")
    page.goto(f"{system.url}/console/credentials/GD/{idx}")
    assert page.locator("button.danger").count() == 0
    token = page.get_attribute("form.logout input[name=csrf_token]", "value")
    r = page.request.post(
        f"{system.url}/console/credentials/GD/{idx}/revoke",
        form={"reason": "fraud", "csrf_token": token},
    )
    assert r.status == 403
    with system.ctx.sessions() as s:
        assert s.query(CredentialRow).filter_by(status_index=idx).one().state == "active"


def test_bulk_revoke_a_thousand_rows_with_progress(page: Any, system: System) -> None:
    ctx = system.ctx
    enrolled = enrol_directly(ctx, "G10000005", new_device())
    with ctx.sessions.begin() as s:
        holder = s.query(Holder).filter_by(holder_id=enrolled.holder_id).one()
        indices = [
            issue_credential(ctx, s, holder, ctx.now()).credential.status_index
            for _ in range(BULK_ROWS)
        ]
    login(page, system, "oper")
    page.goto(f"{system.url}/console/bulk")
    csv = ("status_index\n" + "\n".join(map(str, indices)) + "\n").encode()
    page.set_input_files(
        "input[type=file]", files=[{"name": "revoke.csv", "mimeType": "text/csv", "buffer": csv}]
    )
    page.select_option("select[name=reason]", "administrative")
    page.click("button[type=submit]:has-text('Preview')")
    assert page.inner_text("#bulk-total") == str(BULK_ROWS)
    shot(page, "bulk-preview")
    page.check("input[name=confirm]")
    page.click("button.danger")
    page.wait_for_url("**/console/bulk/*")
    assert page.locator("#job-bar").count() == 1
    page.wait_for_function(
        "() => document.getElementById('job-state').textContent === 'finished'",
        timeout=WAIT_S * 2000,
    )
    shot(page, "bulk-finished")
    assert page.inner_text("#job-done") == str(BULK_ROWS)
    assert page.get_attribute("#job-bar", "value") == str(BULK_ROWS)
    with ctx.sessions() as s:
        states = {
            c.state for c in s.query(CredentialRow).filter(CredentialRow.status_index.in_(indices))
        }
    assert states == {"revoked"}


CONSOLE_CATALOGS = Path(__file__).resolve().parents[3] / "issuer" / "admin" / "translations"


def console_words(language: Any) -> Any:
    """The console catalog's gettext for `language` (English: the text itself)."""
    import gettext

    from credential.languages import Language

    if language is Language.EN:
        return gettext.NullTranslations().gettext
    return gettext.translation("messages", str(CONSOLE_CATALOGS), [language.catalog]).gettext


@pytest.mark.parametrize("choice", ["en", "zh-Hans", "pt"])
def test_overview_landing_page_draws_its_charts_in_the_admins_language(
    page: Any, system: System, choice: str
) -> None:
    """The admin lands on the overview, picks a language there and gets the overview
    back in it: headings, chart titles, hour ticks on a 24-hour clock, status words."""
    import re

    from credential.languages import Language

    language = Language(choice)
    user = f"overview-{choice}".replace("-", "").lower()
    accounts_db.create_account(
        system.ctx.sessions, user, "GD", frozenset({Role.VIEWER}), PASSWORD, 0
    )
    new_credential(system, "G10000005")
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url))
    page.goto(f"{system.url}/console/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/console/overview")
    if language is not Language.EN:
        # The language form returns to the page it was sent from: the overview.
        page.select_option("form.language select", choice)
        page.click("form.language button")
        page.wait_for_url("**/console/overview")
    _ = console_words(language)
    assert page.get_attribute("html", "lang") == language.value
    assert page.inner_text("h1").startswith(_("Overview"))
    assert page.inner_text("nav a:first-child") == _("Overview")
    headings = page.locator("main h2").all_inner_texts()
    for text in (
        "Credentials issued per hour, last 24 h (UTC)",
        "Anchoring outbox",
        "Checkpoint freshness",
        "Witness status",
        "Recent alarms",
    ):
        assert _(text) in headings, (text, headings)
    states = [t.strip() for t in page.locator(".witness-row .state").all_text_contents()]
    assert _("present") in states and _("met") in states, states  # both cosigned: quorum
    main = page.inner_text("main")
    if language is not Language.EN:
        assert "Witness status" not in main and "Recent alarms" not in main
    # The charts are drawn (not blank): bars with height, meters with a level.
    charts = page.locator("svg.chart")
    assert charts.count() >= 4
    assert all(charts.nth(i).bounding_box()["width"] > 100 for i in range(charts.count()))
    tallest = page.eval_on_selector_all(
        "svg.bar-chart rect.bar", "els => Math.max(...els.map(e => e.getBBox().height))"
    )
    assert tallest > 10
    assert page.get_attribute("svg.bar-chart", "aria-label") == _(
        "Credentials issued per hour, last 24 h (UTC)"
    )
    ticks = page.eval_on_selector_all(
        "svg.bar-chart text", "els => els.map(e => e.textContent).filter(t => t.includes(':'))"
    )
    assert ticks and all(re.fullmatch(r"([01]\d|2[0-3]):00", t) for t in ticks), ticks
    assert int(page.inner_text("#issued-total")) >= 1
    assert page.locator(".freshness-row[data-region=GD] svg.meter").count() == 1
    assert page.locator(".witness-row").count() == 2  # GD and MO witnesses on GD's log
    shot(page, f"overview-{choice}")
    page.set_viewport_size({"width": 420, "height": 900})
    shot(page, f"overview-{choice}-narrow")
    # Nothing leaves the console: every request went to the issuer itself.
    assert asked and all(u.startswith(system.url) for u in asked), asked


@pytest.mark.parametrize(
    ("browser_locale", "choice"),
    [("en-US", None), ("zh-CN", None), ("pt-PT", "zh-Hant"), ("en-GB", "pt")],
)
def test_console_speaks_each_admins_language(
    browser: Any, system: System, browser_locale: str, choice: str | None
) -> None:
    """Before login the browser's language; once an admin picks one, that language on
    every page and at the next login, whatever the browser says. Dates 24-hour."""
    import re

    from credential.languages import Language, language_of

    user = f"lang-{browser_locale}-{choice or 'none'}".replace("-", "").lower()[:32]
    accounts_db.create_account(
        system.ctx.sessions, user, "GD", frozenset({Role.AUDITOR}), PASSWORD, 0
    )
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, locale=browser_locale)
    page = ctx.new_page()
    try:
        first = language_of(browser_locale)
        assert first is not None
        words = console_words

        page.goto(f"{system.url}/console/login")
        assert page.get_attribute("html", "lang") == first.value
        assert page.inner_text("h1") == words(first)("Log in")
        login(page, system, user)
        want = first
        if choice is not None:
            page.select_option("form.language select", choice)
            page.click("form.language button")
            page.wait_for_url("**/console/credentials")
            want = Language(choice)
        _ = words(want)
        assert page.get_attribute("html", "lang") == want.value
        assert page.inner_text("h1") == _("Find a credential")
        page.goto(f"{system.url}/console/keys")
        assert page.inner_text("h1") == _("Signing keys")
        cells = page.locator("table tbody tr").first.locator("td")
        valid_from = cells.nth(3).inner_text()
        assert re.search(r"\b([01]\d|2[0-3]):[0-5]\d UTC$", valid_from), valid_from
        assert "AM" not in valid_from and "PM" not in valid_from and "下午" not in valid_from
        shot(page, f"keys-{want.value}-{browser_locale}")
        # the choice is the admin's: a new browser session in another language keeps it
        if choice is not None:
            other = browser.new_context(locale="en-US").new_page()
            try:
                login(other, system, user)
                assert other.get_attribute("html", "lang") == want.value
            finally:
                other.context.close()
    finally:
        ctx.close()
