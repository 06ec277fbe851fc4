"""One id at both ends: the issuer passes its request id to the ledger node it reads
(X-Request-ID), and an anchoring batch its own correlation id (`outbox-<first>-<last>`)
to the node it submits to; the node logs it in its access log and echoes it. GD's
issuer and GD's and MO's nodes over real HTTP on loopback."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from common.observability import REQUEST_ID_HEADER, RequestIdFilter
from issuer.admin import accounts_db
from issuer.admin.accounts import Role
from issuer.anchor import outbox_correlation_id
from issuer.app import create_app
from issuer.testing import enrol_directly, new_device, serve
from tests.support.issuer_joint import JointWorld, joint_world

pytestmark = pytest.mark.slow
ACCESS_LOG = "healthbridge.access"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[JointWorld]:
    with joint_world(tmp_path) as w:
        yield w


def _access(caplog: pytest.LogCaptureFixture, rid: str) -> list[str]:
    """The access-log lines (method, route, status) recorded under request id `rid`."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == ACCESS_LOG and getattr(r, "request_id", None) == rid
    ]


def test_issuer_request_id_reaches_the_ledger_node_it_reads(
    world: JointWorld, caplog: pytest.LogCaptureFixture
) -> None:
    gd = world.regions["GD"]
    app = create_app(gd.ctx.config, context=gd.ctx, start_workers=False)
    accounts_db.create_account(
        gd.ctx.sessions, "watcher", "GD", frozenset({Role.VIEWER}), "a long pass phrase", 0
    )
    token = accounts_db.issue_token(gd.ctx.sessions, "watcher", "test", gd.ctx.now())
    enrolled = enrol_directly(gd.ctx, "G10000001", new_device())
    gd.anchor_all()
    rid = "console-7f3a9c21"
    with serve(app) as issuer, caplog.at_level(logging.DEBUG, logger=ACCESS_LOG):
        r = requests.get(
            f"{issuer.url}/v1/admin/log-entries/{enrolled.issued.outbox_id}",
            headers={"Authorization": f"Bearer {token}", REQUEST_ID_HEADER: rid},
            timeout=10,
        )
    assert r.status_code == 200, r.text
    assert r.headers[REQUEST_ID_HEADER] == rid
    lines = _access(caplog, rid)
    # The issuer's own line, and the node's for the checkpoint it read for this request.
    assert any("/v1/admin/log-entries/" in line for line in lines), lines
    assert any(line.startswith("GET /checkpoint 200") for line in lines), lines


def test_anchoring_batch_sends_its_correlation_id(
    world: JointWorld, caplog: pytest.LogCaptureFixture
) -> None:
    gd = world.regions["GD"]
    enrolled = enrol_directly(gd.ctx, "G10000002", new_device())
    box = enrolled.issued.outbox_id
    # Stamp records as the services' log handler does (common.observability).
    caplog.handler.addFilter(RequestIdFilter())
    with caplog.at_level(logging.DEBUG):
        assert gd.anchor_all() >= 1
    anchored = [r for r in caplog.records if r.getMessage().startswith("anchored outbox rows")]
    assert anchored, "the worker logged no anchored batch"
    rid = anchored[-1].request_id
    assert rid.startswith("outbox-") and int(rid.split("-")[2]) >= box
    # The node logged the submission under the same id.
    assert any(line.startswith("POST /v1/entries 200") for line in _access(caplog, rid))


def test_outbox_correlation_id_names_the_batch_ids_only() -> None:
    class Row:
        def __init__(self, id: int) -> None:
            self.id = id

    assert outbox_correlation_id([Row(7), Row(8), Row(12)]) == "outbox-7-12"
