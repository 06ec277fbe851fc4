"""The console's cookie session is opened only under its own path: a wallet's API
request builds no cookie serialiser (it cost more per credential fetch than the JSON
rendering), while the console still keeps its session."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from flask.sessions import SecureCookieSessionInterface

from issuer.app import create_app
from issuer.testing import device_header, enrol_directly, make_context, new_device

PATH = "/v1/credential"


def test_wallet_fetch_opens_no_console_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = make_context(tmp_path, "MO")
    dev = new_device()
    holder_id = enrol_directly(ctx, "M1000001", dev).holder_id
    client = create_app(ctx.config, context=ctx, start_workers=False).test_client()
    built: list[str] = []
    original = SecureCookieSessionInterface.get_signing_serializer

    def counting(self: SecureCookieSessionInterface, app: object) -> object:
        from flask import request

        built.append(request.path)
        return original(self, app)  # type: ignore[arg-type]

    monkeypatch.setattr(SecureCookieSessionInterface, "get_signing_serializer", counting)
    hdr = {"Authorization": device_header(dev, holder_id, "GET", PATH, int(time.time()))}
    client.set_cookie("hb_console", "anything", path="/")  # even if a cookie were sent
    resp = client.get(PATH, headers=hdr)
    assert resp.status_code == 200
    assert "Set-Cookie" not in resp.headers
    assert built == []
    # The console still opens its session (its login page sets the CSRF token in it).
    page = client.get("/console/login")
    assert page.status_code == 200
    assert built and all(p.startswith("/console") for p in built)
    assert "hb_console=" in page.headers.get("Set-Cookie", "")
    ctx.dispose()
