"""The phone-sized wallet page: `create_app(config)` serving the refreshing health code.

The page shows the colour frame, masked name, a live clock and the QR, and fetches a
fresh presentation from `GET /v1/presentation` every window. Presentations are made
locally from the stored credential, so the page keeps working with no network; only
`POST /v1/refresh` (run on load and every few minutes) talks to the issuer, and its
failure (no answer, or an HTTP 5xx) turns on the offline banner rather than hiding
the code.

Config keys: `WALLET_DIR` (Path, required), `WALLET_PASSPHRASE` (bytes or None),
`WALLET_REGION` (region shown by default, else the store's home), `CLOCK` (callable
returning Unix seconds; tests inject one), `ISSUER_FACTORY` (callable url ->
IssuerApi), `ALLOWED_HOSTS` (Host header values served; the page binds loopback and
refuses other names so a web page elsewhere cannot reach it through DNS rebinding),
`ALLOWED_NETWORKS` (client addresses served, loopback by default: bound to 0.0.0.0 the
page still refuses another device on the network, whatever Host it sends).

Errors are JSON `{"error": "<code>", "message": "..."}` with a 4xx status; nothing
here answers 500 for a resident's state (missing key, expired credential, ...).

Language: the page and the resident-facing texts in the JSON (`message`, `colour_text`,
`basis_text`, the times) follow the phone's `Accept-Language` (English, Simplified or
Traditional Chinese, Portuguese), through the wallet's gettext catalogs
(`mobile_stub/translations`, Flask-Babel); times are the phone's local time on a
24-hour clock. The technical detail of an error stays in `detail`, in English.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify, render_template, request
from flask.typing import ResponseReturnValue
from flask_babel import Babel, gettext
from werkzeug.exceptions import HTTPException

from common.local_page import (
    LOOPBACK_HOSTS,
    LOOPBACK_NETWORKS,
    LocalGuard,
    LocalGuardError,
    Refusal,
    host_name,
)
from credential.languages import N_, Language, format_datetime, negotiate
from mobile_stub.client import HttpIssuer, IssuerApi
from mobile_stub.errors import (
    CredentialExpiredError,
    DeviceKeyCorruptError,
    DeviceKeyMissingError,
    InsecurePermissionsError,
    IssuerRefusedError,
    IssuerUnavailableError,
    IssuerUnreachableError,
    NotEnrolledError,
    StoreCorruptError,
    WalletError,
)
from mobile_stub.qr import svg_data_url
from mobile_stub.wallet import Wallet, WalletView

ISSUER_POLL_S = 300  # seconds between background refresh attempts from the page
MIN_REFETCH_S = 0.5  # seconds; the page never refetches faster than this
DEFAULT_ALLOWED_HOSTS = LOOPBACK_HOSTS

# (HTTP status, error code, plain words for the resident) per failure; most specific first.
ERROR_CODES: tuple[tuple[type[WalletError], int, str, str], ...] = (
    (NotEnrolledError, 404, "not_enrolled", N_("This phone holds no health code yet: enrol.")),
    (
        CredentialExpiredError,
        410,
        "credential_expired",
        N_("Your health code has expired: refresh it while online."),
    ),
    (
        DeviceKeyMissingError,
        409,
        "device_key_missing",
        N_("This phone's wallet key is missing: enrol again."),
    ),
    (
        DeviceKeyCorruptError,
        409,
        "device_key_corrupt",
        N_("This phone's wallet key is damaged: enrol again."),
    ),
    (
        InsecurePermissionsError,
        409,
        "insecure_permissions",
        N_("The wallet's files can be read by other users of this device."),
    ),
    (StoreCorruptError, 409, "store_corrupt", N_("The wallet's stored data is damaged.")),
    (WalletError, 409, "wallet_error", N_("The wallet cannot show the code right now.")),
)
COLOUR_WORDS = {"green": N_("GREEN"), "yellow": N_("YELLOW"), "red": N_("RED")}
BASIS_WORDS = {
    "vaccination": N_("Vaccination"),
    "test": N_("Negative test"),
    "recovery": N_("Recovery"),
    "admin": N_("Decision of the health authority"),
}

bp = Blueprint("wallet", __name__)


def _now() -> float:
    clock: Callable[[], float] = current_app.config["CLOCK"]
    return float(clock())


def _wallet() -> Wallet:
    return Wallet.open(
        Path(current_app.config["WALLET_DIR"]), current_app.config.get("WALLET_PASSPHRASE")
    )


def _region() -> str | None:
    region = request.args.get("region") or current_app.config.get("WALLET_REGION")
    return str(region) if region else None


def _language() -> Language:
    """The phone's language, from its Accept-Language header (RFC 9110 §12.5.4)."""
    return negotiate(request.accept_languages)


def _when(ts: int | None) -> str | None:
    """A time in the phone's local zone, in its language, on a 24-hour clock."""
    return None if ts is None else format_datetime(ts, _language())


def _view_json(view: WalletView) -> dict[str, Any]:
    return {
        "region": view.region,
        "masked_name": view.masked_name,
        "document_hint": view.document_hint,
        "colour": view.colour,
        "colour_text": gettext(COLOUR_WORDS[view.colour]) if view.colour in COLOUR_WORDS else "",
        "basis": view.basis,
        "basis_text": gettext(BASIS_WORDS[view.basis]) if view.basis in BASIS_WORDS else "",
        "not_before": view.not_before,
        "expires_at": view.expires_at,
        "expires_text": _when(view.expires_at),
        "expired": view.expired,
        "refresh_due": view.refresh_due,
    }


def _problem(e: WalletError) -> tuple[int, str, str]:
    """(HTTP status, error code, the resident's words in the phone's language)."""
    for cls, status, code, words in ERROR_CODES:
        if isinstance(e, cls):
            return status, code, gettext(words)
    raise AssertionError("unreachable: WalletError is in ERROR_CODES")  # pragma: no cover


def _error(e: WalletError) -> ResponseReturnValue:
    status, code, words = _problem(e)
    return jsonify(error=code, message=words, detail=str(e)), status


@bp.before_app_request
def _check_client() -> ResponseReturnValue | None:
    # The page hands out a holder proof valid for its whole window: only this device
    # (or the networks it was published to) may ask, under a loopback name (see
    # common.local_page).
    guard: LocalGuard = current_app.extensions["wallet_local_guard"]
    refusal = guard.refusal(request.host, request.remote_addr)
    if refusal is Refusal.FORBIDDEN_PEER:
        return jsonify(error=refusal.value, message="this page answers only its own device"), 403
    if refusal is Refusal.FORBIDDEN_HOST:
        return jsonify(
            error=refusal.value, message=f"host {host_name(request.host)!r} is not served"
        ), 403
    return None


@bp.after_app_request
def _headers(resp: Any) -> Any:
    # The QR is an inline data: URL; nothing else is loaded from anywhere but here.
    resp.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"
    )
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Cache-Control"] = "no-store"  # a presentation must never be cached
    resp.headers["Referrer-Policy"] = "no-referrer"
    return resp


@bp.get("/")
def page() -> ResponseReturnValue:
    wallet = _wallet()
    view: dict[str, Any] | None = None
    problem: str | None = None
    regions: list[str] = []
    home: str | None = None
    try:
        doc = wallet.document()
        regions, home = sorted(doc.entries), doc.home
        view = _view_json(wallet.view(_now(), _region()))
    except WalletError as e:
        problem = _problem(e)[2]
    return render_template(
        "wallet.html",
        language=_language(),
        view=view,
        problem=problem,
        regions=regions,
        region=_region() or home,
        poll_s=ISSUER_POLL_S,
        min_refetch_s=MIN_REFETCH_S,
    )


@bp.get("/v1/presentation")
def presentation() -> ResponseReturnValue:
    now = _now()
    try:
        shown = _wallet().show(now, _region())
        qr = svg_data_url(shown.qr_text)
    except WalletError as e:
        return _error(e)
    return jsonify(
        qr_text=shown.qr_text,
        qr_svg=qr,
        now=now,
        window_start=shown.window_start,
        window_end=shown.window_end,
        refresh_in=max(MIN_REFETCH_S, shown.window_end - now),
        **_view_json(shown.view),
    )


@bp.get("/v1/wallet")
def wallet_summary() -> ResponseReturnValue:
    try:
        doc = _wallet().document()
    except WalletError as e:
        return _error(e)
    return jsonify(home=doc.home, regions=sorted(doc.entries))


@bp.post("/v1/refresh")
def refresh() -> ResponseReturnValue:
    """Try the issuer; report online/offline. An unreachable issuer is not an error here:
    the page keeps showing the stored credential and raises the offline banner."""
    wallet = _wallet()
    try:
        entry = wallet.entry(_region())
        issuer = current_app.config["ISSUER_FACTORY"](entry.issuer_url)
        result = wallet.refresh(issuer, _now(), entry.region)
    except IssuerUnreachableError as e:
        return jsonify(online=False, changed=False, error="issuer_unreachable", message=str(e))
    except IssuerUnavailableError as e:
        # An HTTP 5xx (the issuer's database is down, a gateway has no backend) leaves
        # the resident as cut off as no answer at all: the banner must show, not a 409
        # the page would take for "online".
        return jsonify(online=False, changed=False, error="issuer_unavailable", message=str(e))
    except IssuerRefusedError as e:
        words = gettext("The issuer refused to refresh this code (%(code)s).", code=e.code)
        return jsonify(online=True, changed=False, error=e.code, message=words, detail=str(e))
    except WalletError as e:
        return _error(e)
    return jsonify(online=True, changed=result.changed, error=None, message=None)


def _json_http_error(e: HTTPException) -> ResponseReturnValue:
    code = (e.name or "error").lower().replace(" ", "_")
    return jsonify(error=code, message=e.description or ""), e.code or 400


def _default_issuer(url: str) -> IssuerApi:
    return HttpIssuer(url)


def create_app(config: dict[str, Any]) -> Flask:
    """Build the wallet page app. `config["WALLET_DIR"]` is required."""
    if "WALLET_DIR" not in config:
        raise WalletError("wallet page config needs WALLET_DIR")
    app = Flask(__name__)
    app.config.update(
        CLOCK=time.time,
        ISSUER_FACTORY=_default_issuer,
        ALLOWED_HOSTS=DEFAULT_ALLOWED_HOSTS,
        ALLOWED_NETWORKS=LOOPBACK_NETWORKS,
        WALLET_PASSPHRASE=None,
        WALLET_REGION=None,
    )
    app.config.update(config)
    try:
        guard = LocalGuard.parse(app.config["ALLOWED_HOSTS"], app.config["ALLOWED_NETWORKS"])
    except LocalGuardError as e:
        raise WalletError(f"wallet page config: {e}") from e
    app.extensions["wallet_local_guard"] = guard
    app.register_blueprint(bp)
    # Catalogs in mobile_stub/translations (app.root_path is the mobile_stub package).
    Babel(app, locale_selector=lambda: _language().catalog)
    app.register_error_handler(HTTPException, _json_http_error)
    # Any wallet failure that a view did not map itself is still a typed 4xx.
    app.register_error_handler(WalletError, _error)
    return app
