"""The name an issuer process answers under: the `X-Issuer-Replica` response header.

Why: behind the region's proxy (deploy/nginx/issuer.conf.template) an operator wants
to know which replica answered a request. The proxy used to add its `$upstream_addr`
to every answer, which told any wallet on the internet the private addresses and
ports of the region's replicas. Each process now names itself, opaquely: the
configured `replica_name` (issuer.config.REPLICA_NAME_RE: never an address), or by
default `r-` and 12 hex digits of a keyed hash (HMAC-SHA256 under the issuer's
pseudonym key, issuer.keystore) of the host name and process id, which cannot be
turned back into a host name without the key. The process logs its name once at
start, so operators map names to hosts from their own logs; nginx passes the header
through unchanged.

What it does not: say anything about the request or the holder.
"""

from __future__ import annotations

import logging
import os
import socket

from flask import Flask, Response

from issuer.context import IssuerContext

log = logging.getLogger(__name__)

HEADER = "X-Issuer-Replica"
DEFAULT_PREFIX = "r-"
DEFAULT_HEX_DIGITS = 12  # 48 bits: distinct across any region's replicas and restarts


def replica_name(ctx: IssuerContext, host: str, pid: int) -> str:
    """The configured name, or the keyed default for this host and process."""
    if ctx.config.replica_name:
        return ctx.config.replica_name
    return DEFAULT_PREFIX + ctx.keys.pseudonym("replica", host, str(pid))[:DEFAULT_HEX_DIGITS]


def install(app: Flask, ctx: IssuerContext) -> str:
    """Name every answer of `app` (error answers too) after this process; returns the
    name."""
    name = replica_name(ctx, socket.gethostname(), os.getpid())
    log.info("issuer process %d answers as replica %s", os.getpid(), name)

    @app.after_request
    def _name_the_replica(response: Response) -> Response:
        response.headers[HEADER] = name
        return response

    return name
