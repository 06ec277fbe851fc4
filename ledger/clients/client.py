"""HTTP client of a ledger node: authenticated submissions and the tlog-tiles read API.

What it does: `LedgerClient(base_url, writer_key, timeout)` signs POST /v1/entries with
the writer's Ed25519 key (scheme in docs/ledger-protocol.md), fetches checkpoints, tiles,
entry bundles and proofs, and maps every failure to a typed `LedgerClientError`
subclass. It is a `ledger.clients.reader.LogReader`, and every body it reads goes through
`ledger.clients.reader.bounded_request` with a per-resource limit (an auditor points it at
another operator's node). The writer signature is `ledger.log.writer_auth`'s.
What it does not: verify what it fetches (checkpoint signatures, proofs); callers do
that with ledger.log.checkpoint / ledger.log.merkle, as `ledger.clients.audit` does.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.clients.reader import (
    DEFAULT_TIMEOUT_S,
    MAX_BUNDLE_BYTES,
    MAX_CHECKPOINT_BYTES,
    MAX_ERROR_TEXT_CHARS,
    MAX_JSON_BYTES,
    MAX_TILE_BYTES,
    HttpAnswer,
    LogTooLargeError,
    LogUnreachableError,
    bounded_request,
)
from ledger.log import writer_auth
from ledger.log.errors import LedgerError
from ledger.log.tiles import TILE_WIDTH, TileId, entry_bundle_path
from ledger.node.sequencer import Receipt

WAIT_POLL_S = 0.1  # seconds between checkpoint polls in wait_for_size


class LedgerClientError(LedgerError):
    """Root of the client's errors."""


class LedgerUnreachableError(LedgerClientError):
    """No answer from the node (connection refused, reset, timeout)."""


class LedgerResponseError(LedgerClientError):
    """The node answered with an error status; `code` is its JSON error code."""

    def __init__(self, status: int, code: str, message: str, body: dict[str, Any]) -> None:
        super().__init__(f"HTTP {status} {code}: {message}")
        self.status = status
        self.code = code
        self.body = body


class LedgerRefusedError(LedgerResponseError):
    """A submission broke a ledger rule (HTTP 422); `rule` names it."""

    @property
    def rule(self) -> str:
        return str(self.body.get("rule", ""))


class LedgerNotFoundError(LedgerResponseError):
    """The tile, bundle, entry or checkpoint does not exist (yet)."""


class LedgerProtocolError(LedgerClientError):
    """The node's answer is not what the API promises (bad JSON, bad base64)."""


def load_writer_key(source: str | Path | Ed25519PrivateKey | None) -> Ed25519PrivateKey | None:
    """An Ed25519 key object, or one read from a PKCS#8 PEM file (mode 0600)."""
    if source is None or isinstance(source, Ed25519PrivateKey):
        return source
    try:
        key = serialization.load_pem_private_key(Path(source).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as e:
        raise LedgerClientError(f"cannot read writer key {source}: {e}") from e
    if not isinstance(key, Ed25519PrivateKey):
        raise LedgerClientError(f"expected an Ed25519 writer key in {source}")
    return key


def writer_public_key(key: Ed25519PrivateKey) -> bytes:
    return writer_auth.raw_public_key(key)


def authorization(key: Ed25519PrivateKey, origin: str, body: bytes, now: int) -> str:
    """The Authorization header value for a POST /v1/entries body (ledger.log.writer_auth)."""
    return writer_auth.authorization(key, origin, body, now)


class LedgerClient:
    """One node's API. Thread-safe enough for one session per thread."""

    def __init__(
        self,
        base_url: str,
        writer_key_path_or_key: str | Path | Ed25519PrivateKey | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        origin: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.key = load_writer_key(writer_key_path_or_key)
        self.timeout = timeout
        self._origin = origin
        self.session = requests.Session()

    # -- plumbing ------------------------------------------------------------------

    def _request(
        self, method: str, path: str, limit: int = MAX_JSON_BYTES, **kw: Any
    ) -> HttpAnswer:
        try:
            answer = bounded_request(
                self.session, method, self.base_url + path, limit=limit, timeout=self.timeout, **kw
            )
        except LogUnreachableError as e:
            raise LedgerUnreachableError(f"{method} {path}: {e}") from e
        except LogTooLargeError as e:
            raise LedgerProtocolError(f"{method} {path}: {e}") from e
        if answer.status >= 400:
            try:
                body = json.loads(answer.body)
                if not isinstance(body, dict):
                    body = {}
            except ValueError:
                body = {}
            code = str(body.get("error", "http_error"))
            message = str(body.get("message", answer.text[:MAX_ERROR_TEXT_CHARS]))
            cls: type[LedgerResponseError] = LedgerResponseError
            if answer.status == 422:
                cls = LedgerRefusedError
            elif answer.status == 404:
                cls = LedgerNotFoundError
            raise cls(answer.status, code, message, body)
        return answer

    def _json(self, path: str, **params: Any) -> dict[str, Any]:
        resp = self._request("GET", path, params=params)
        try:
            doc = json.loads(resp.body)
        except ValueError as e:
            raise LedgerProtocolError(f"GET {path}: expected JSON") from e
        if not isinstance(doc, dict):
            raise LedgerProtocolError(f"GET {path}: expected a JSON object")
        return doc

    @property
    def origin(self) -> str:
        if self._origin is None:
            self._origin = str(self.status()["origin"])
        return self._origin

    # -- writes --------------------------------------------------------------------

    def submit(self, entries: Sequence[bytes]) -> list[Receipt]:
        """Log entries; returns after they are committed and sequenced (idempotent)."""
        if self.key is None:
            raise LedgerClientError("submitting needs a writer key")
        body = json.dumps(
            {"entries": [base64.b64encode(e).decode("ascii") for e in entries]}
        ).encode()
        auth = authorization(self.key, self.origin, body, int(time.time()))
        resp = self._request(
            "POST",
            "/v1/entries",
            data=body,
            headers={"Authorization": auth, "Content-Type": "application/json"},
        )
        try:
            doc = json.loads(resp.body)
            out = [
                Receipt(int(r["index"]), bytes.fromhex(r["entry_hash"])) for r in doc["receipts"]
            ]
        except (ValueError, KeyError, TypeError) as e:
            raise LedgerProtocolError("POST /v1/entries: malformed receipts") from e
        if len(out) != len(entries):
            raise LedgerProtocolError(f"expected {len(entries)} receipts, found {len(out)}")
        return out

    # -- reads ---------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return self._json("/v1/status")

    # LogReader (ledger.clients.reader): the tlog-tiles read side, each body bounded.

    @property
    def name(self) -> str:
        return self.base_url

    def checkpoint(self) -> bytes:
        return self._request("GET", "/checkpoint", limit=MAX_CHECKPOINT_BYTES).body

    def tile(self, level: int, index: int, width: int = TILE_WIDTH) -> bytes:
        path = "/" + TileId(level, index, width).path()
        return self._request("GET", path, limit=MAX_TILE_BYTES).body

    def read_tile(self, level: int, index: int) -> bytes:
        """TileReader over HTTP: the full tile (partial tiles need a width: use `tile`)."""
        return self.tile(level, index)

    def entry_bundle(self, index: int, width: int = TILE_WIDTH) -> bytes:
        path = "/" + entry_bundle_path(index, width)
        return self._request("GET", path, limit=MAX_BUNDLE_BYTES).body

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        return _proof(self._json("/v1/proof/inclusion", index=index, size=size))

    def inclusion_proof_by_hash(
        self, entry_hash: bytes, size: int | None = None
    ) -> tuple[int, list[bytes]]:
        params: dict[str, Any] = {"hash": entry_hash.hex()}
        if size is not None:
            params["size"] = size
        doc = self._json("/v1/proof/inclusion", **params)
        return int(doc["index"]), _proof(doc)

    def consistency_proof(self, old: int, new: int) -> list[bytes]:
        return _proof(self._json("/v1/proof/consistency", old=old, new=new))

    def size(self) -> int:
        return int(self.status()["size"])

    def wait_for_size(self, n: int, timeout: float = 30.0) -> int:
        """Poll until the node's tree has at least `n` leaves; returns the size seen."""
        deadline = time.monotonic() + timeout
        while True:
            size = self.size()
            if size >= n:
                return size
            if time.monotonic() > deadline:
                raise LedgerClientError(f"expected size >= {n} within {timeout} s, found {size}")
            time.sleep(WAIT_POLL_S)

    def close(self) -> None:
        self.session.close()


def _proof(doc: dict[str, Any]) -> list[bytes]:
    try:
        return [base64.b64decode(h, validate=True) for h in doc["proof"]]
    except (KeyError, TypeError, binascii.Error, ValueError) as e:
        raise LedgerProtocolError("expected a proof as a list of base64 hashes") from e
