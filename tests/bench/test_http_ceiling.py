"""The web tier's ceiling apps of bench/issue.py (bench/http_ceiling.py): each answers
the same credential body, and the verifying one really checks the device signature
(a ceiling that skipped it would flatter the ratio it is compared with)."""

from __future__ import annotations

import importlib
import json
import time
from pathlib import Path
from types import ModuleType

import pytest
from werkzeug.test import Client

from common.b64 import b64url
from credential.keys import public_key_der
from issuer.testing import device_header, new_device

PATH = "/v1/credential"
HOLDER = "ceilingholder01"


def _load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, device: object) -> ModuleType:
    body = {"credential": "x" * 600, "status": {"basis": "test", "colour": "green"}}
    (tmp_path / "body.json").write_text(
        json.dumps(body, separators=(",", ":"), sort_keys=True) + "\n", encoding="utf-8"
    )
    (tmp_path / "keys.json").write_text(
        json.dumps({HOLDER: b64url(public_key_der(device))}), encoding="utf-8"
    )
    from bench import http_ceiling

    monkeypatch.setenv(http_ceiling.BODY_ENV, str(tmp_path / "body.json"))
    monkeypatch.setenv(http_ceiling.KEYS_ENV, str(tmp_path / "keys.json"))
    return importlib.reload(http_ceiling)


def test_every_ceiling_app_answers_the_same_credential_body(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dev = new_device()
    mod = _load(tmp_path, monkeypatch, dev)
    expected = (tmp_path / "body.json").read_bytes()
    hdr = {"Authorization": device_header(dev, HOLDER, "GET", PATH, int(time.time()))}
    for app in (mod.wsgi_app, mod.flask_app, mod.flask_verify_app):
        resp = Client(app).get(PATH, headers=hdr)
        assert resp.status_code == 200
        assert resp.get_data() == expected


def test_verifying_ceiling_refuses_a_header_signed_by_another_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mod = _load(tmp_path, monkeypatch, new_device())
    forged = device_header(new_device(), HOLDER, "GET", PATH, int(time.time()))
    client = Client(mod.flask_verify_app)
    assert client.get(PATH, headers={"Authorization": forged}).status_code == 401
    assert client.get(PATH, headers={"Authorization": "HB-Device nonsense"}).status_code == 401
    assert client.get(PATH).status_code == 401
