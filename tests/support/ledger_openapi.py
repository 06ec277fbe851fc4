"""ledger/openapi.yaml as tests read it: the documented routes of an unsharded and of a
sharded node, the routes a built node serves, and the check of one live answer
against the document.

No tests here; tests/ledger/node/test_node_openapi.py and test_sharded_openapi.py use it.
"""

from __future__ import annotations

import re
from pathlib import Path

import jsonschema
import requests
import yaml
from flask import Flask

from ledger.node.sharding import SHARDED_KEY, ShardedNode

SPEC = yaml.safe_load((Path(__file__).resolve().parents[2] / "ledger/openapi.yaml").read_text())
IGNORED_METHODS = frozenset({"HEAD", "OPTIONS"})  # added by Flask/werkzeug to every rule
SHARDED_ONLY = "sharded-node"  # operation tags in ledger/openapi.yaml
UNSHARDED_ONLY = "unsharded-node"
SHARD_PREFIX = "/{shard}"


def documented(*, sharded: bool) -> set[tuple[str, str]]:
    """(path, method) of every operation a node of that kind serves."""
    foreign = UNSHARDED_ONLY if sharded else SHARDED_ONLY
    return {
        (path, method)
        for path, ops in SPEC["paths"].items()
        for method, op in ops.items()
        if foreign not in op.get("tags", [])
    }


def _openapi_path(rule: str) -> str:
    """A werkzeug rule as an OpenAPI path: `<path:subpath>` becomes `{subpath}`."""
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule)


def _rules(app: Flask, prefix: str = "") -> set[tuple[str, str]]:
    return {
        (prefix + _openapi_path(r.rule), m.lower())
        for r in app.url_map.iter_rules()
        for m in (r.methods or set()) - IGNORED_METHODS
    }


def served_routes(app: Flask) -> set[tuple[str, str]]:
    """What `app` serves; for a sharded node its own routes and, under /{shard}, the
    routes of every shard's app (ledger.node.sharding dispatches /<k>/... to them)."""
    out = _rules(app)
    node: ShardedNode | None = app.extensions.get(SHARDED_KEY)
    if node is not None:
        for sl in node.live():
            out |= _rules(sl.app, SHARD_PREFIX)
    return out


def json_schema(node: object) -> object:
    """An OpenAPI 3.0 schema as JSON Schema: `$ref`s inlined, `nullable` as a null type."""
    if isinstance(node, list):
        return [json_schema(x) for x in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target: object = SPEC
        for part in node["$ref"].removeprefix("#/").split("/"):
            assert isinstance(target, dict)
            target = target[part]
        return json_schema(target)
    out = {k: json_schema(v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable"):
        return {"anyOf": [out, {"type": "null"}]}
    return out


def check_answer(path: str, method: str, r: requests.Response, expected: int) -> None:
    """`r` has the expected status, and that status, its media type, body schema and
    documented headers are what ledger/openapi.yaml says."""
    what = f"{method.upper()} {r.url}"
    assert r.status_code == expected, f"{what}: {r.status_code} {r.text[:300]}"
    doc = json_schema(SPEC["paths"][path][method]["responses"].get(str(r.status_code)))
    assert isinstance(doc, dict), f"{what}: status {r.status_code} undocumented"
    if "content" not in doc:  # 304: no body
        assert not r.content, f"{what}: a body where none is documented"
        return
    media = r.headers.get("Content-Type", "").split(";")[0].strip()
    assert media in doc["content"], f"{what}: {media} undocumented for {r.status_code}"
    schema = doc["content"][media].get("schema", {})
    if media == "application/json":
        jsonschema.validate(r.json(), schema)
    elif media.startswith("text/"):
        jsonschema.validate(r.content.decode("utf-8"), schema)
    for name, header in doc.get("headers", {}).items():
        allowed = header["schema"].get("enum")
        if allowed is not None:
            assert r.headers.get(name) in allowed, f"{what}: {name}: {r.headers.get(name)}"
