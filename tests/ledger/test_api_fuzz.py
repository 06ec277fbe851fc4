"""Schemathesis against live ledger nodes in joint operation (GD and MO, each built as
`healthbridge ledger serve --consortium` builds it, over real HTTP on loopback), over
ledger/openapi.yaml: the node's log API and, separately, its witness, alarms and
mirror; then a sharded node (GD with a shard table: a frozen shard, the open one and
future ones) on its top-level routes and every shard's `/{shard}/...` API. Positive
and negative requests; no answer may be a 5xx, and every answer must be documented
(status code, media type, body schema)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from ledger.log.shards import ShardPlan, ShardSchedule
from ledger.serving import RunningNode, open_node
from tests.support.fuzz_count import counting
from tests.support.joint_world import Server
from tests.support.ledger_cli import init_node_folder, origin_of, shard_member, write_consortium
from tests.support.ledger_openapi import SHARDED_ONLY, UNSHARDED_ONLY

SPEC = Path(__file__).resolve().parents[2] / "ledger" / "openapi.yaml"
EXAMPLES = 40  # per operation: about 15 operations -> ~600 requests
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck)
)
WITNESS_PATHS = r"^/(add-checkpoint|v1/witness/|v1/alarms|mirror/)"
DAY_S = 86_400

pytestmark = [pytest.mark.api_fuzz, pytest.mark.slow]


@dataclass
class LiveNode:
    url: str
    http: requests.Session


def _joint_nodes(tmp: Path, plan: ShardPlan | None, what: str) -> Iterator[LiveNode]:
    """GD and MO in joint operation; GD sharded by `plan` when one is given."""
    servers = {region: Server() for region in ("GD", "MO")}
    nodes: dict[str, RunningNode] = {}
    try:
        for region in servers:
            init_node_folder(tmp / region, region)
        consortium = write_consortium(tmp, {k: s.port for k, s in servers.items()})
        if plan is not None:
            shard_member(consortium, "GD", plan)
        for region, server in servers.items():
            nodes[region] = open_node(tmp / region / "node.toml", consortium)
            server.app = nodes[region].app
        for server in servers.values():
            server.start()
        node = LiveNode(servers["GD"].url, requests.Session())
        with counting(node.http, what):
            yield node
    finally:
        for server in servers.values():
            server.close()
        for running in nodes.values():
            running.close()


@pytest.fixture(scope="module")
def live_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveNode]:
    yield from _joint_nodes(
        Path(tmp_path_factory.mktemp("fuzz-ledger")), None, "ledger node and witness"
    )


@pytest.fixture(scope="module")
def live_sharded_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveNode]:
    """GD sharded by day: shard 0 ended ten minutes ago (frozen, not yet droppable),
    shard 1 is open, shards 2 and 3 lie ahead (credentials valid up to two days)."""
    epoch = int(time.time()) - DAY_S - 600
    plan = ShardPlan(ShardSchedule(origin_of("GD"), DAY_S, epoch), 3600, 2 * DAY_S)
    yield from _joint_nodes(Path(tmp_path_factory.mktemp("fuzz-sharded")), plan, "sharded node")


ledger_api = schemathesis.openapi.from_path(SPEC)


@ledger_api.exclude(path_regex=WITNESS_PATHS).exclude(tag=SHARDED_ONLY).parametrize()
@FUZZ_SETTINGS
def test_log_api_answers_as_documented(case, live_node: LiveNode) -> None:  # type: ignore[no-untyped-def]
    case.call_and_validate(base_url=live_node.url, session=live_node.http, checks=CHECKS)


@ledger_api.include(path_regex=WITNESS_PATHS).parametrize()
@FUZZ_SETTINGS
def test_witness_and_mirror_answer_as_documented(case, live_node: LiveNode) -> None:  # type: ignore[no-untyped-def]
    case.call_and_validate(base_url=live_node.url, session=live_node.http, checks=CHECKS)


@ledger_api.exclude(path_regex=WITNESS_PATHS).exclude(tag=UNSHARDED_ONLY).parametrize()
@FUZZ_SETTINGS
def test_sharded_node_answers_as_documented(case, live_sharded_node: LiveNode) -> None:  # type: ignore[no-untyped-def]
    case.call_and_validate(
        base_url=live_sharded_node.url, session=live_sharded_node.http, checks=CHECKS
    )
