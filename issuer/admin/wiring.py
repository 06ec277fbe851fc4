"""Wires the admin console into the issuer's Flask app.

`init_console(app)` sets the session cookie (HttpOnly, SameSite=Strict, Secure over
https), the session signing key (a 0600 file under the issuer's key_dir), CSRF
protection (flask-wtf, `issuer.admin.views.csrf`) on every console form, the
`AdminOps` object, and the two blueprints (console pages, per-admin JSON API). The
issuer's own JSON APIs are untouched: CSRF is enforced only on the console blueprint,
whose pages are the only ones that authenticate with a cookie.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path
from typing import Any

from flask import Flask, request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask.wrappers import Request
from flask_babel import Babel

from common.secret_file import write_secret
from issuer.admin.api import api
from issuer.admin.ops import MAX_BULK_REQUEST_BYTES, AdminOps
from issuer.admin.views import console, console_language, csrf
from issuer.context import IssuerContext
from issuer.errors import ConfigError
from issuer.keystore import read_secret
from issuer.ledger_state import ConsortiumCheckpoints

log = logging.getLogger(__name__)
SESSION_KEY_FILE = "console-session.key"
SESSION_KEY_BYTES = 32
BULK_UPLOAD_ENDPOINTS = frozenset({"console.bulk_upload", "admin_api.bulk_create"})


class ConsoleSessionInterface(SecureCookieSessionInterface):
    """Marks the cookie Secure whenever the request itself came over https, and opens
    a session only under the cookie's path (/console): no browser sends the cookie
    anywhere else, and building the cookie serialiser on every API request (a wallet's
    credential fetch) cost more than the route's own JSON rendering."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"] or request.is_secure)

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        path = app.config["SESSION_COOKIE_PATH"] or "/"
        if not request.path.startswith(path):
            return self.make_null_session(app)
        return super().open_session(app, request)


def session_key(ctx: IssuerContext) -> bytes:
    """The cookie-signing key, shared by every worker process of this issuer.

    The first process to start creates it; the file appears atomically (hard link of
    a finished temporary file), so gunicorn workers racing at start-up all end up
    reading the same key instead of each keeping its own.
    """
    path: Path = ctx.config.key_dir / SESSION_KEY_FILE
    if not path.exists():
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        write_secret(tmp, secrets.token_bytes(SESSION_KEY_BYTES))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another worker won the race: use its key
        finally:
            tmp.unlink(missing_ok=True)
    return read_secret(path)


def init_console(app: Flask, ledger: ConsortiumCheckpoints | None = None) -> AdminOps:
    """`ledger`: the service layer's checkpoint view (default: from the consortium file
    in the config; none configured or unreadable: pages say cosignatures are unchecked)."""
    ctx: IssuerContext = app.extensions["issuer"]
    if ledger is None:
        try:
            ledger = ConsortiumCheckpoints.from_context(ctx)
        except ConfigError as e:
            # The console still serves; the ledger page says it cannot check.
            log.error("console cannot load the consortium file: %s", e.message)
    ops = AdminOps(ctx, ledger)

    def wake() -> None:
        worker: Any = app.extensions.get("issuer.worker")
        if worker is not None:
            worker.wake()

    ops.on_change = wake
    app.extensions["issuer.admin_ops"] = ops
    if not app.secret_key:
        app.secret_key = session_key(ctx)
    app.config.update(
        SESSION_COOKIE_NAME="hb_console",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_PATH="/console",
        # CSRF checks run only where the console asks for them (see views.before_request).
        WTF_CSRF_CHECK_DEFAULT=False,
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the (idle-limited) session
    )
    app.config.setdefault("SESSION_COOKIE_SECURE", False)
    app.session_interface = ConsoleSessionInterface()
    csrf.init_app(app)
    # The console's catalogs (issuer/admin/translations); the language is the
    # admin's choice, else the browser's (issuer.admin.views.console_language).
    Babel(
        app,
        locale_selector=lambda: console_language().catalog,
        default_translation_directories=str(Path(__file__).parent / "translations"),
    )
    app.register_blueprint(console)
    app.register_blueprint(api)

    @app.before_request
    def _bulk_upload_limit() -> None:
        # Bulk revocation uploads (100,000 status indices) may exceed the issuer's
        # general body limit; only those two routes get the larger one, set before
        # anything (CSRF check included) reads the body.
        if request.endpoint in BULK_UPLOAD_ENDPOINTS:
            request.max_content_length = max(MAX_BULK_REQUEST_BYTES, ctx.config.max_body_bytes)

    return ops
