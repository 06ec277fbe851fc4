"""The OpenAPI document lists exactly the issuer's /v1 routes. (Schemathesis against
the live issuer over this document: tests/issuer/test_api_fuzz.py.)"""

from __future__ import annotations

from pathlib import Path

import yaml

from issuer.app import OPENAPI_PATH, create_app
from issuer.testing import make_context

OWN_BLUEPRINTS = {"wallet", "authority", "admin_api", "meta", "healthbridge_health"}
PROBES = {"/healthz", "/readyz"}


def test_openapi_document_lists_every_issuer_v1_route(tmp_path: Path) -> None:
    ctx = make_context(tmp_path)
    app = create_app(ctx.config, context=ctx, start_workers=False)
    documented = set(yaml.safe_load(OPENAPI_PATH.read_text())["paths"])
    routed = {
        r.rule.replace("<int:", "{").replace("<", "{").replace(">", "}")
        for r in app.url_map.iter_rules()
        if (r.rule.startswith("/v1/") or r.rule in PROBES)
        and r.endpoint.split(".")[0] in OWN_BLUEPRINTS
    }
    assert routed == documented
