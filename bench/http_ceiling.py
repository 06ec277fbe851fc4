"""The web tier's own ceiling for bench/issue.py: three apps that gunicorn serves in the
same shape as the issuer (worker class, workers, threads, loopback, the same clients),
so that the issuer's HTTP figures can be read against what the web tier alone allows.

  wsgi_app           a bare WSGI callable: 200 and the bytes of a real credential
                     response body (HB_CEILING_BODY names the file)
  flask_app          a Flask route of the same kind, built like the issuer's app
                     (issuer.app.create_app: a blueprint under /v1, the body rendered by
                     `jsonify` from a dict on every request, `ensure_ascii` off), no
                     database, no hooks of ours
  flask_verify_app   that route doing what any credential fetch must do at least:
                     parse the request's `Authorization: HB-Device` header and verify
                     its ES256 signature with the holder's device key
                     (issuer.device_auth, as the issuer does; keys from the JSON file
                     HB_CEILING_KEYS: holder id -> base64url DER SPKI)

What it does not: read a database, sign, measure, log or identify requests: whatever
the issuer pays beyond `flask_verify_app` is its own code (docs/performance.md).
Usage (by bench/issue.py): `gunicorn ... bench.http_ceiling:flask_verify_app`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, jsonify, request

from common.b64 import b64url_decode
from issuer.device_auth import DeviceAuth, verify_device_auth
from issuer.errors import IssuerError

BODY_ENV = "HB_CEILING_BODY"  # a file holding one credential response body (JSON)
KEYS_ENV = "HB_CEILING_KEYS"  # a JSON file: holder id -> base64url DER SPKI
SKEW_S = 300  # seconds: the issuer's default device_auth_skew_s
REORDER_S = 30  # seconds: the issuer's default device_auth_reorder_s


def _body_bytes() -> bytes:
    path = os.environ.get(BODY_ENV)
    return Path(path).read_bytes() if path else b"{}"


def _device_keys() -> dict[str, bytes]:
    path = os.environ.get(KEYS_ENV)
    if not path:
        return {}
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    return {holder: b64url_decode(der) for holder, der in raw.items()}


_BODY = _body_bytes()


def wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(_BODY)))]
    )
    return [_BODY]


def _flask(verify: bool) -> Flask:
    app = Flask(__name__)
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    document = json.loads(_BODY)
    keys = _device_keys() if verify else {}
    bp = Blueprint("wallet", __name__, url_prefix="/v1")

    @bp.get("/credential")
    def fetch_credential() -> tuple[Response, int]:
        if verify:
            auth = DeviceAuth.parse(request.headers.get("Authorization", ""))
            der = keys.get(auth.holder_id)
            if der is None:
                return jsonify({"error": "unauthorized"}), 401
            verify_device_auth(
                auth, der, request.method, request.path, int(time.time()), SKEW_S, 0, REORDER_S
            )
        return jsonify(document), 200

    app.register_blueprint(bp)

    @app.errorhandler(IssuerError)
    def _refused(e: IssuerError) -> tuple[Response, int]:
        return jsonify({"error": e.code, "message": e.message}), e.http_status

    return app


flask_app = _flask(verify=False)
flask_verify_app = _flask(verify=True)
