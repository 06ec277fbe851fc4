"""gunicorn settings for `healthbridge issuer serve`: one metrics listener in the master.

Each worker measures its own requests; prometheus_client's multiprocess mode keeps those
values in files under PROMETHEUS_MULTIPROC_DIR (set here, before any worker imports
prometheus_client), and the master serves them merged, with the database-derived
gauges, on HB_ISSUER_METRICS_PORT (issuer.metrics.start_master_ops).
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
if not os.environ.get(MULTIPROC_ENV):
    # Made only when none is given (`setdefault` would make one on every start and
    # leave it behind, empty, when the caller chose its own).
    os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="hb-issuer-metrics-")


def when_ready(server: Any) -> None:
    from common.observability import configure_logging
    from issuer.metrics import start_master_ops

    configure_logging()  # HEALTHBRIDGE_LOG_FORMAT / _LEVEL, as for every command
    start_master_ops()


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
