"""gunicorn entry point: `gunicorn issuer.wsgi:app` with HB_ISSUER_CONFIG or HB_ISSUER_*."""

from __future__ import annotations

import os
from pathlib import Path

from common.observability import configure_logging
from issuer.app import create_app
from issuer.config import load_config

configure_logging()  # HEALTHBRIDGE_LOG_FORMAT / _LEVEL, as for every command

_path = os.environ.get("HB_ISSUER_CONFIG")
app = create_app(load_config(Path(_path) if _path else None))
