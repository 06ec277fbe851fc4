"""The ledger node's HTTP service: submissions, the C2SP tlog-tiles read API, proofs.

What it does: `create_app(config, extra_blueprints=())` builds a Flask app around one
`Store` and one `Sequencer` (the single writer of this log):
  POST /v1/entries                      authenticated writer submissions (docs/ledger-protocol.md)
  GET  /checkpoint                      latest signed checkpoint + cosignatures (tlog-tiles)
  GET  /tile/<L>/<N>[.p/<W>]            hash tiles (tlog-tiles)
  GET  /tile/entries/<N>[.p/<W>]        entry bundles (tlog-tiles)
  GET  /v1/proof/inclusion              by ?index=&size= or ?hash=<entry hash>[&size=]
  GET  /v1/proof/consistency?old=&new=  RFC 9162 §2.1.4
  GET  /v1/status
  GET  /revocation/snapshot/<hex>, /revocation/delta/<hex>/<hex>   (ledger.node.revocation_api)
  GET  /healthz, /readyz                probes (common.observability; also on the ops port)
ledger/openapi.yaml documents every route, with the joint-operation ones; the test
tests/ledger/node/test_node_openapi.py fails when a served route is not documented.
Every error is a JSON body {"error": code, "message": ...} with a 4xx status (503 when
the database or the sequencer is unavailable). What it does not: witnessing other logs
or mirroring (blueprints added by `extra_blueprints`), cosignature collection (the
config's `cosign_hook`, called after each checkpoint is signed).
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from common.observability import SecurityEvent, health_blueprint, instrument, security_event
from ledger.log import tiles
from ledger.log.errors import LedgerError, TileError
from ledger.log.note import NoteSigner
from ledger.log.rules import LogState
from ledger.log.writer_auth import WriterAuth, WriterAuthError
from ledger.metrics import METRICS_KEY, LedgerMetrics
from ledger.node.config import (
    AUTH_WINDOW_S,
    MAX_BODY_BYTES,
    MAX_ENTRIES_PER_REQUEST,
    MAX_ENTRY_BYTES,
    NodeConfig,
)
from ledger.node.http_cache import cacheable
from ledger.node.revocation_api import RevocationPublisher, revocation_blueprint
from ledger.node.sequencer import (
    Clock,
    Sequencer,
    SequencerUnavailableError,
    ShardFrozenError,
    SubmissionRefusedError,
)
from ledger.node.storage import StorageError, Store, open_store

log = logging.getLogger(__name__)

EXTENSION_KEY = "healthbridge_ledger"
REVOCATION_KEY = "healthbridge_ledger_revocation"  # the node's RevocationPublisher
CHECKPOINT_MEDIA_TYPE = "text/plain; charset=utf-8"
MAX_PROOF_QUERY_SIZE = 1 << 62  # tree sizes beyond this are refused outright


class ApiError(Exception):
    """A request the node refuses: rendered as {"error", "message"} with `status`."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.extra = extra


@dataclass
class LedgerNode:
    """What the blueprints share (app.extensions["healthbridge_ledger"])."""

    config: NodeConfig
    store: Store
    sequencer: Sequencer
    signer: NoteSigner
    clock: Clock


def node() -> LedgerNode:
    n: LedgerNode = current_app.extensions[EXTENSION_KEY]
    return n


def initial_state_for(region: str, root_public_key: bytes) -> LogState:
    """The rules' state of an empty log of `region` (ledger.log.rules)."""
    return LogState.empty(region, root_public_key)


# -- blueprints ----------------------------------------------------------------------

api = Blueprint("ledger_api", __name__, url_prefix="/v1")
read = Blueprint("ledger_tiles", __name__)


def _refuse_writer(message: str) -> ApiError:
    """A refused submission: counted, logged once as a security event, answered 401."""
    metrics: LedgerMetrics | None = current_app.extensions.get(METRICS_KEY)
    if metrics is not None:
        metrics.writer_refusals.inc()
    security_event(log, SecurityEvent.WRITER_REFUSED, origin=node().config.origin, why=message)
    return ApiError(401, "unauthorized", message)


def _authenticate(body: bytes) -> None:
    try:
        _check_writer(body)
    except ApiError as e:
        raise _refuse_writer(str(e)) from e


def _check_writer(body: bytes) -> None:
    try:
        auth = WriterAuth.parse(request.headers.get("Authorization", ""))
    except WriterAuthError as e:
        raise ApiError(401, "unauthorized", str(e)) from e
    ts = auth.timestamp
    n = node()
    if auth.public_key not in n.config.writer_public_keys:
        raise ApiError(401, "unauthorized", "the key is not a writer of this log")
    now = int(n.clock())
    if abs(now - ts) > AUTH_WINDOW_S:
        raise ApiError(
            401,
            "unauthorized",
            f"expected a timestamp within {AUTH_WINDOW_S} s of {now}, found {ts}",
        )
    try:
        auth.verify(n.config.origin, body)
    except WriterAuthError as e:
        raise ApiError(401, "unauthorized", str(e)) from e


def _parse_entries(body: bytes) -> list[bytes]:
    try:
        doc = request.get_json(force=True, silent=False, cache=False)
    except HTTPException as e:
        raise ApiError(400, "bad_request", "expected a JSON body") from e
    except RecursionError as e:
        # The json module recurses per nesting level; a body nested thousands deep is
        # refused here, not left to the catch-all.
        raise ApiError(400, "bad_request", "JSON nested too deeply") from e
    if not isinstance(doc, dict) or not isinstance(doc.get("entries"), list):
        raise ApiError(400, "bad_request", 'expected {"entries": ["<base64>", ...]}')
    items = doc["entries"]
    if not 1 <= len(items) <= MAX_ENTRIES_PER_REQUEST:
        raise ApiError(
            400, "bad_request", f"expected 1..{MAX_ENTRIES_PER_REQUEST} entries, found {len(items)}"
        )
    out: list[bytes] = []
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise ApiError(400, "bad_request", f"entry {i}: expected a base64 string")
        try:
            raw = base64.b64decode(item, validate=True)
        except (binascii.Error, ValueError) as e:
            raise ApiError(400, "bad_request", f"entry {i}: invalid base64") from e
        if not 0 < len(raw) <= MAX_ENTRY_BYTES:
            raise ApiError(
                400,
                "bad_request",
                f"entry {i}: expected 1..{MAX_ENTRY_BYTES} bytes, found {len(raw)}",
            )
        out.append(raw)
    return out


@api.post("/entries")
def submit_entries() -> Any:
    body = request.get_data(cache=True)
    _authenticate(body)
    entries = _parse_entries(body)
    n = node()
    try:
        receipts = n.sequencer.submit(entries)
    except SubmissionRefusedError as e:
        raise ApiError(422, "rule_violation", str(e), rule=e.rule, position=e.position) from e
    except ShardFrozenError as e:
        # A frozen temporal shard never grows (docs/ledger-protocol.md, temporal shards).
        raise ApiError(409, "shard_frozen", str(e)) from e
    except SequencerUnavailableError as e:
        raise ApiError(503, "unavailable", str(e)) from e
    return jsonify(
        receipts=[{"index": r.index, "entry_hash": r.entry_hash.hex()} for r in receipts],
        size=n.sequencer.tree.size,
    )


def _int_arg(name: str, required: bool = True) -> int | None:
    text = request.args.get(name)
    if text is None:
        if required:
            raise ApiError(400, "bad_request", f"missing query parameter {name!r}")
        return None
    if not text.isdigit() or len(text) > 19 or int(text) > MAX_PROOF_QUERY_SIZE:
        raise ApiError(400, "bad_request", f"{name}: expected a non-negative integer")
    return int(text)


def _hashes(proof: Iterable[bytes]) -> list[str]:
    return [base64.b64encode(h).decode("ascii") for h in proof]


@api.get("/proof/inclusion")
def inclusion() -> Any:
    n = node()
    current = n.store.tree_state().size
    size = _int_arg("size", required=False)
    size = current if size is None else size
    hash_text = request.args.get("hash")
    if hash_text is not None:
        try:
            wanted = bytes.fromhex(hash_text)
        except ValueError:
            wanted = b""
        if len(wanted) != 32:
            raise ApiError(
                400, "bad_request", "hash: expected 64 hex digits (SHA-256 of the entry)"
            )
        found = n.store.find_indices([wanted])
        if wanted not in found:
            raise ApiError(404, "not_found", "no entry with that hash in this log")
        index = found[wanted]
    else:
        index_arg = _int_arg("index")
        assert index_arg is not None
        index = index_arg
    if not 0 < size <= current:
        raise ApiError(400, "bad_request", f"size: expected 1..{current}, found {size}")
    if index >= size:
        raise ApiError(400, "bad_request", f"index: expected < {size}, found {index}")
    proof = tiles.inclusion_proof(index, size, n.store)
    return jsonify(index=index, size=size, proof=_hashes(proof))


@api.get("/proof/consistency")
def consistency() -> Any:
    n = node()
    current = n.store.tree_state().size
    old, new = _int_arg("old"), _int_arg("new")
    assert old is not None and new is not None
    if not 0 <= old <= new <= current:
        raise ApiError(
            400, "bad_request", f"expected 0 <= old <= new <= {current}, found old={old} new={new}"
        )
    # RFC 9162 §2.1.4: nothing to prove from the empty tree or to the same size.
    proof = [] if old in (0, new) else tiles.consistency_proof(old, new, n.store)
    return jsonify(old=old, new=new, proof=_hashes(proof))


@api.get("/status")
def status() -> Any:
    n = node()
    tree = n.store.tree_state()
    cp = n.store.latest_checkpoint()
    return jsonify(
        region=n.config.region,
        origin=n.config.origin,
        size=tree.size,
        root_hash=base64.b64encode(tree.root_hash).decode("ascii"),
        last_timestamp_ms=tree.last_timestamp_ms,
        checkpoint_size=None if cp is None else cp.size,
        cosignatures=0 if cp is None else len(cp.cosignatures),
        log_vkey=n.signer.verifier().vkey(),
        root_public_key=base64.b64encode(n.config.root_public_key).decode("ascii"),
    )


@read.get("/checkpoint")
def checkpoint() -> Response:
    cp = node().store.latest_checkpoint()
    if cp is None:
        raise ApiError(404, "not_found", "no checkpoint signed yet")
    resp = Response(cp.served(), mimetype="text/plain")
    return cacheable(resp, immutable=False)


@read.get("/tile/<path:subpath>")
def tile(subpath: str) -> Response:
    try:
        tid = tiles.TileId.parse_path("tile/" + subpath)
    except (TileError, ValueError) as e:
        raise ApiError(400, "bad_tile_path", str(e)) from e
    n = node()
    size = n.store.tree_state().size
    if tid.level == tiles.ENTRIES_LEVEL:
        available = tiles.tile_width(0, tid.index, size)
    else:
        available = tiles.tile_width(tid.level, tid.index, size)
    if available == 0 or tid.width > available or (not tid.is_partial and available < 256):
        raise ApiError(404, "not_found", f"{tid.path()} is not in the tree of size {size}")
    if tid.level == tiles.ENTRIES_LEVEL:
        start = tid.index * tiles.TILE_WIDTH
        leaves = n.store.leaves(start, start + tid.width)
        if len(leaves) != tid.width:
            raise ApiError(503, "unavailable", "entry bundle incomplete in storage")
        body = tiles.encode_entry_bundle(leaves)
    else:
        data = n.store.read_tile(tid.level, tid.index)
        body = data[: tid.width * 32]
        if len(body) != tid.width * 32:
            raise ApiError(503, "unavailable", "tile incomplete in storage")
    resp = Response(body, mimetype="application/octet-stream")
    return cacheable(resp, immutable=not tid.is_partial)


# -- application ---------------------------------------------------------------------


def _error_response(status: int, code: str, message: str, **extra: Any) -> Response:
    resp = jsonify(error=code, message=message, **extra)
    resp.status_code = status
    if status == 503:
        resp.headers["Retry-After"] = "1"
    return resp


def _register_errors(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api(e: ApiError) -> Response:
        return _error_response(e.status, e.code, str(e), **e.extra)

    @app.errorhandler(HTTPException)
    def _http(e: HTTPException) -> Response:
        code = (e.name or "error").lower().replace(" ", "_")
        return _error_response(e.code or 400, code, e.description or code)

    @app.errorhandler(StorageError)
    def _storage(e: StorageError) -> Response:
        log.error("storage failure: %s", e)
        return _error_response(503, "unavailable", "the log database is unavailable")

    @app.errorhandler(LedgerError)
    def _ledger(e: LedgerError) -> Response:
        return _error_response(400, "bad_request", str(e))

    @app.errorhandler(Exception)
    def _anything(e: Exception) -> Response:
        # The one catch-all: whatever escaped a route is logged here with its traceback
        # and answered as JSON, never as Werkzeug's HTML page with internals.
        log.error("unhandled %s on %s %s", type(e).__name__, request.method, request.path,
                  exc_info=e)  # fmt: skip
        return _error_response(500, "internal_error", "the node failed to answer this request")


def create_app(
    config: NodeConfig,
    extra_blueprints: Iterable[Blueprint] = (),
    *,
    clock: Clock = time.time,
    start: bool = True,
) -> Flask:
    """Build the node: open (and migrate) the store, rebuild state, start the writer."""
    # No static folder: the node serves only the routes ledger/openapi.yaml documents
    # (Flask would otherwise add /static/<path:filename>).
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.json.sort_keys = False  # type: ignore[attr-defined]
    try:
        skey = config.log_key_file.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise LedgerError(f"cannot read the log signing key {config.log_key_file}: {e}") from e
    signer = NoteSigner.from_skey(skey)
    if config.shard is not None:
        # One log key for every temporal shard, under the shard's origin as key name
        # (C2SP tlog-checkpoint: the key name is the origin; ledger.log.consortium).
        signer = NoteSigner(config.shard.origin, signer.private_key)
    store = open_store(config.database_url)
    # Every checkpoint commits the region's revocation snapshot (docs/ledger-protocol.md
    # §8); the witnesses re-derive it before cosigning.
    publisher = RevocationPublisher(config.region, store=store)
    sequencer = Sequencer(
        store,
        config,
        signer,
        initial_state_for(config.region, config.root_public_key),
        clock=clock,
        extender=publisher,
    )
    ledger_node = LedgerNode(config, store, sequencer, signer, clock)
    app.extensions[EXTENSION_KEY] = ledger_node
    app.extensions[REVOCATION_KEY] = publisher
    metrics = LedgerMetrics.for_node(ledger_node)
    app.extensions[METRICS_KEY] = metrics
    instrument(app, metrics.registry)
    app.register_blueprint(health_blueprint(lambda: metrics.checks))
    app.register_blueprint(api)
    app.register_blueprint(read)
    app.register_blueprint(revocation_blueprint(publisher))
    for bp in extra_blueprints:
        app.register_blueprint(bp)
    _register_errors(app)
    if start:
        sequencer.start()
    return app
