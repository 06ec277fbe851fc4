"""HTTP cache headers of the read side (C2SP tlog-tiles), shared by the node and the
mirror endpoints, so any HTTP cache between them and the stations can serve tiles.

Full tiles and entry bundles never change once written: a year and `immutable`
(RFC 8246). The checkpoint and partial tiles change as the log grows: a second. A
strong ETag (RFC 9110 §8.8.3) over the body lets a cache revalidate those short-lived
answers with If-None-Match and get 304 without the body. Caching is safe because a
station verifies tiles against the cosigned root and judges freshness from the
cosignature timestamps, never from when a cache answered. No I/O beyond the request.
"""

from __future__ import annotations

import hashlib

from flask import Response, request

from ledger.node.config import IMMUTABLE_MAX_AGE_S, MUTABLE_MAX_AGE_S

ETAG_HEX_CHARS = 32  # 128 bits of SHA-256: a cache validator, not a security check


def cacheable(resp: Response, immutable: bool) -> Response:
    """Set Cache-Control and a strong ETag; answer 304 to a matching If-None-Match."""
    if immutable:
        resp.headers["Cache-Control"] = f"public, max-age={IMMUTABLE_MAX_AGE_S}, immutable"
    else:
        resp.headers["Cache-Control"] = f"public, max-age={MUTABLE_MAX_AGE_S}"
    resp.set_etag(hashlib.sha256(resp.get_data()).hexdigest()[:ETAG_HEX_CHARS])
    resp.make_conditional(request)  # turns resp itself into a 304 when the tag matches
    return resp
