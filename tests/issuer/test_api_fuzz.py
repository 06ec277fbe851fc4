"""Schemathesis against the live issuer (real HTTP on loopback), over the OpenAPI
document it serves at /openapi.yaml: the wallet and health-authority API (the
credential fetch signed by a really enrolled device, the record feed with the health
authority's token) and the per-admin API with a real admin token holding every role.
Positive and negative requests; no answer may be a 5xx, and every answer must be
documented (status code, media type, body schema)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from argon2 import PasswordHasher
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from credential.trust import InMemoryTrustState
from issuer.admin import accounts, accounts_db
from issuer.admin.accounts import Role
from issuer.app import OPENAPI_PATH, create_app
from issuer.conversion import StaticTrustSource
from issuer.testing import device_header, enrol_directly, make_context, new_device, serve
from tests.support.fuzz_count import counting

EXAMPLES = 40  # per operation and test: about 24 operations -> ~1,000 requests
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck)
)

pytestmark = [pytest.mark.api_fuzz, pytest.mark.slow]


class LiveIssuer:
    def __init__(
        self, url: str, admin_token: str, authority_token: str, device: Any, holder_id: str
    ) -> None:
        self.url = url
        self.admin_token = admin_token
        self.authority_token = authority_token
        self.device = device  # an enrolled wallet's key: signs HB-Device headers
        self.holder_id = holder_id
        self.http = requests.Session()


@pytest.fixture(scope="module")
def live_issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveIssuer]:
    mp = pytest.MonkeyPatch()
    mp.setattr(accounts, "_HASHER", PasswordHasher(time_cost=1, memory_cost=8192))
    ctx = make_context(Path(tmp_path_factory.mktemp("fuzz-issuer")), "GD")
    accounts_db.create_account(ctx.sessions, "fuzzer", "GD", frozenset(Role), "x" * 12, 0)
    admin = accounts_db.issue_token(ctx.sessions, "fuzzer", "fuzz", ctx.now())
    authority = ctx.keys.token(ctx.config.authority_token_path) or ""
    device = new_device()
    holder_id = enrol_directly(ctx, "G10000002", device).holder_id
    app = create_app(
        ctx.config, context=ctx, trust=StaticTrustSource(InMemoryTrustState()), start_workers=False
    )
    try:
        with serve(app) as served:
            live = LiveIssuer(served.url, admin, authority, device, holder_id)
            with counting(live.http, "issuer"):
                yield live
    finally:
        ctx.dispose()
        mp.undo()


# The repository's document; the first test proves it is byte for byte the one the
# running issuer serves at /openapi.yaml.
issuer_api = schemathesis.openapi.from_path(OPENAPI_PATH)


def test_fuzzed_document_is_the_served_one(live_issuer: LiveIssuer) -> None:
    served = live_issuer.http.get(f"{live_issuer.url}/openapi.yaml", timeout=10)
    assert served.status_code == 200
    assert served.content == OPENAPI_PATH.read_bytes()


@issuer_api.exclude(path_regex="^/v1/admin/").parametrize()
@FUZZ_SETTINGS
def test_public_api_answers_as_documented(case, live_issuer: LiveIssuer) -> None:  # type: ignore[no-untyped-def]
    headers = {}
    if case.path == "/v1/records":
        headers["Authorization"] = f"Bearer {live_issuer.authority_token}"
    elif case.path == "/v1/credential":
        headers["Authorization"] = device_header(
            live_issuer.device, live_issuer.holder_id, case.method.upper(), case.path
        )
    case.call_and_validate(
        base_url=live_issuer.url, session=live_issuer.http, headers=headers, checks=CHECKS
    )


@issuer_api.include(path_regex="^/v1/admin/").parametrize()
@FUZZ_SETTINGS
def test_admin_api_answers_as_documented(case, live_issuer: LiveIssuer) -> None:  # type: ignore[no-untyped-def]
    case.call_and_validate(
        base_url=live_issuer.url,
        session=live_issuer.http,
        headers={"Authorization": f"Bearer {live_issuer.admin_token}"},
        checks=CHECKS,
    )
