"""The OpenAPI document against the running app: schemathesis generates requests for
every operation (bodies, headers, parameters) and no answer may be a server error."""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, settings

from credential.trust import InMemoryTrustState
from issuer.app import OPENAPI_PATH, create_app
from issuer.conversion import StaticTrustSource
from issuer.testing import make_context

OWN_BLUEPRINTS = {"wallet", "authority", "admin_api", "meta", "healthbridge_health"}
PROBES = {"/healthz", "/readyz"}
MAX_EXAMPLES = 15  # per operation: keeps the run well under a minute


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


schema = schemathesis.openapi.from_path(OPENAPI_PATH)


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory: pytest.TempPathFactory):
    ctx = make_context(tmp_path_factory.mktemp("fuzz"))
    trust = StaticTrustSource(InMemoryTrustState())
    return create_app(ctx.config, context=ctx, trust=trust, start_workers=False)


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_generated_request_gets_a_server_error(case, fuzz_app) -> None:
    client = fuzz_app.test_client()
    kwargs = case.as_transport_kwargs()
    response = client.open(
        kwargs.pop("url"),
        **{
            k: v
            for k, v in kwargs.items()
            if k in ("method", "headers", "query_string", "json", "data")
        },
    )
    where = (case.method, case.path, response.status_code, response.get_data()[:200])
    assert response.status_code < 500, where
    if case.method not in ("OPTIONS", "HEAD"):
        assert response.is_json, where
