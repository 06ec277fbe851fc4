"""ledger/openapi.yaml against the running node: every documented route exists, and
responses to valid and invalid requests match the documented status codes and schemas."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml

from ledger.client import LedgerClient
from ledger.node import EXTENSION_KEY, create_app
from tests.ledger.test_node_support import anchor, key_added, make_config, make_keys

SPEC = yaml.safe_load((Path(__file__).resolve().parents[2] / "ledger/openapi.yaml").read_text())


def _schema(op: dict, status: int) -> dict | None:
    resp = op["responses"].get(str(status))
    assert resp is not None, f"undocumented status {status}"
    if "$ref" in resp:
        resp = SPEC["components"]["responses"][resp["$ref"].rsplit("/", 1)[1]]
    media = resp.get("content", {}).get("application/json")
    return None if media is None else media["schema"]


@pytest.fixture()
def app(tmp_path: Path):
    keys = make_keys(tmp_path)
    a = create_app(make_config(keys, f"sqlite:///{tmp_path / 'l.db'}", delay_s=0.02))
    yield a, keys
    a.extensions[EXTENSION_KEY].sequencer.stop()


CASES = [
    ("/v1/status", "get", "/v1/status"),
    ("/checkpoint", "get", "/checkpoint"),
    ("/tile/{level}/{index}", "get", "/tile/0/000.p/3"),
    ("/tile/{level}/{index}", "get", "/tile/0/000"),
    ("/tile/{level}/{index}", "get", "/tile/zz/000"),
    ("/tile/{level}/{index}", "get", "/tile/entries/000.p/3"),
    ("/v1/proof/inclusion", "get", "/v1/proof/inclusion?index=1&size=3"),
    ("/v1/proof/inclusion", "get", "/v1/proof/inclusion?index=9&size=3"),
    ("/v1/proof/inclusion", "get", "/v1/proof/inclusion?hash=" + "ab" * 32),
    ("/v1/proof/consistency", "get", "/v1/proof/consistency?old=1&new=3"),
    ("/v1/proof/consistency", "get", "/v1/proof/consistency?old=x&new=3"),
    ("/v1/entries", "post", "/v1/entries"),
]


def test_documented_routes_answer_as_documented(app) -> None:
    a, keys = app
    client = a.test_client()
    seq = a.extensions[EXTENSION_KEY].sequencer
    seq.submit([key_added(keys), anchor(keys, 1), anchor(keys, 2)])
    documented = {(p, m) for p, ops in SPEC["paths"].items() for m in ops}
    assert documented == {(p, m) for p, m, _ in CASES}
    for path, method, url in CASES:
        r = client.open(url, method=method.upper(), data=b"{}")
        assert r.status_code < 500, url
        schema = _schema(SPEC["paths"][path][method], r.status_code)
        if schema is not None:
            jsonschema.validate(r.get_json(), schema)


def test_every_spec_path_is_served_by_a_real_client(app, tmp_path: Path) -> None:
    from tests.ledger.test_node_support import serve

    a, keys = app
    with serve(a) as base:
        c = LedgerClient(base, keys.writer)
        receipts = c.submit([key_added(keys)])
        status = c.status()
        jsonschema.validate(
            status,
            SPEC["paths"]["/v1/status"]["get"]["responses"]["200"]["content"]["application/json"][
                "schema"
            ],
        )
        assert receipts[0].index == 0
