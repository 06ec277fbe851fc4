"""X-Request-ID at a ledger node over real HTTP: a plain id is kept, echoed and written
in the node's access log; a hostile one (too long, too short, spaces, quotes, terminal
escapes, non-ASCII) is replaced by a fresh id and never reaches a log line. A sharded
node does the same at its top level and in every shard."""

from __future__ import annotations

import io
import logging
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from common.observability import REQUEST_ID_HEADER, configure_logging
from ledger.node.app import EXTENSION_KEY, create_app
from ledger.testing import make_config, make_keys, serve
from tests.ledger.node.test_sharded_openapi import ShardedPair, sharded_pair  # noqa: F401 (fixture)

FRESH_ID = re.compile(r"^[0-9a-f]{32}$")  # what the node puts in place of a refused id
HOSTILE = [
    "x" * 65,  # longer than a log field should be
    "short",  # shorter than 8
    "a b; forged=1 line",
    'abc"},"level":"CRITICAL',  # breaking out of a JSON log line
    "abcdefgh\x1b[2J\x1b[31m",  # terminal escapes
    "abcdefgh\x7f\x08\x08",
    "ａｂｃｄｅｆｇｈｉ",  # fullwidth letters
]


@pytest.fixture()
def access_log() -> Iterator[io.StringIO]:
    """The services' text log at DEBUG (the access log's level), as `configure_logging`
    sets it up in production."""
    stream = io.StringIO()
    level = logging.getLogger().level
    handler = configure_logging("text", "DEBUG", stream)
    yield stream
    logging.getLogger().removeHandler(handler)
    logging.getLogger().setLevel(level)


@pytest.fixture()
def node_url(tmp_path: Path) -> Iterator[str]:
    keys = make_keys(tmp_path)
    app = create_app(make_config(keys, f"sqlite:///{tmp_path / 'l.db'}", delay_s=0.02))
    try:
        with serve(app) as url:
            yield url
    finally:
        app.extensions[EXTENSION_KEY].sequencer.stop()


def _raw_get(url: str, path: str, header_value: bytes) -> dict[str, str]:
    """GET with the header's bytes as given (requests would re-encode them)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(
            b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            + REQUEST_ID_HEADER.encode() + b": " + header_value + b"\r\n\r\n"
        )  # fmt: skip
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    assert head[0].startswith("HTTP/1.1 200"), head[0]
    return {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:])}


def test_plain_request_id_is_echoed_and_in_the_access_log(
    node_url: str, access_log: io.StringIO
) -> None:
    r = requests.get(f"{node_url}/v1/status", headers={REQUEST_ID_HEADER: "issuer-1a2b3c4d"})
    assert r.headers[REQUEST_ID_HEADER] == "issuer-1a2b3c4d"
    lines = [x for x in access_log.getvalue().splitlines() if "healthbridge.access" in x]
    assert any("[issuer-1a2b3c4d] GET /v1/status 200" in x for x in lines), lines


def test_hostile_request_id_is_replaced_and_never_logged(
    node_url: str, access_log: io.StringIO
) -> None:
    for value in HOSTILE:
        echoed = _raw_get(node_url, "/v1/status", value.encode("utf-8"))
        assert FRESH_ID.fullmatch(echoed[REQUEST_ID_HEADER.lower()]), value
        text = access_log.getvalue()
        assert value not in text, value
        assert echoed[REQUEST_ID_HEADER.lower()] in text
    text = access_log.getvalue()
    assert "\x1b" not in text and "\x7f" not in text and "CRITICAL" not in text


def test_sharded_node_keeps_the_request_id_at_the_top_and_in_a_shard(
    sharded_pair: ShardedPair,  # noqa: F811
    access_log: io.StringIO,
) -> None:
    for path in ("/v1/shards", "/1/checkpoint", "/1/v1/status"):
        r = requests.get(f"{sharded_pair.gd}{path}", headers={REQUEST_ID_HEADER: "trace-0042abcd"})
        assert r.status_code == 200, path
        assert r.headers[REQUEST_ID_HEADER] == "trace-0042abcd", path
        hostile = _raw_get(sharded_pair.gd, path, b"abcdefgh\x1b[2J")
        assert FRESH_ID.fullmatch(hostile[REQUEST_ID_HEADER.lower()]), path
    text = access_log.getvalue()
    assert "[trace-0042abcd] GET /v1/shards 200" in text
    assert "[trace-0042abcd] GET /checkpoint 200" in text  # the shard's route template
    assert "\x1b" not in text
