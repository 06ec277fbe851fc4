"""gunicorn entry point: `gunicorn -w 1 ledger.wsgi:app` with HEALTHBRIDGE_LEDGER_CONFIG.

HEALTHBRIDGE_LEDGER_CONFIG names the node.toml written by `healthbridge ledger init`;
HEALTHBRIDGE_LEDGER_CONSORTIUM optionally names a consortium file (otherwise node.toml's
`consortium_file`, if any); HEALTHBRIDGE_LEDGER_METRICS_PORT (and _HOST, default
127.0.0.1) opens the separate `/metrics` + probes listener in the worker.
Run exactly ONE worker per log (threads are fine: `--threads 8`): the sequencer in the
worker is the log's single writer, and two workers would be
two writers racing for the same tree (docs/ledger-protocol.md §5).
"""

from __future__ import annotations

import os

from common.observability import configure_logging
from ledger.serving import open_node, start_ops

CONFIG_ENV = "HEALTHBRIDGE_LEDGER_CONFIG"
CONSORTIUM_ENV = "HEALTHBRIDGE_LEDGER_CONSORTIUM"
METRICS_PORT_ENV = "HEALTHBRIDGE_LEDGER_METRICS_PORT"
METRICS_HOST_ENV = "HEALTHBRIDGE_LEDGER_METRICS_HOST"

_path = os.environ.get(CONFIG_ENV)
if not _path:
    raise RuntimeError(f"set {CONFIG_ENV} to the node.toml written by `healthbridge ledger init`")
configure_logging()
node = open_node(_path, os.environ.get(CONSORTIUM_ENV) or None)
app = node.app
if os.environ.get(METRICS_PORT_ENV):
    ops = start_ops(
        node, os.environ.get(METRICS_HOST_ENV, "127.0.0.1"), int(os.environ[METRICS_PORT_ENV])
    )
