"""Options and error handling shared by every `healthbridge issuer` command.

One place for `--config` and `--token-file`, and for turning the issuer's (and the
ledger's) typed errors into a one-line message instead of a traceback.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click

from issuer.errors import IssuerError

F = TypeVar("F", bound=Callable[..., Any])

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar="HB_ISSUER_CONFIG",
    help="Issuer TOML config (or HB_ISSUER_* variables).",
)
admin_token_option = click.option(
    "--token-file",
    type=click.Path(dir_okay=False),
    envvar="HB_ADMIN_TOKEN_FILE",
    required=True,
    help="File (mode 0600) holding your admin API token (`issuer admin token`).",
)


def metrics_options(fn: F) -> F:
    """--metrics-port / --metrics-host: the separate /metrics + probes listener."""
    fn = click.option(
        "--metrics-host",
        default="127.0.0.1",
        show_default=True,
        help="Address of the metrics listener (0.0.0.0 inside a container).",
    )(fn)
    return click.option(
        "--metrics-port",
        default=None,
        type=click.IntRange(0, 65535),
        help="Serve /metrics, /healthz and /readyz on this separate port (keep it private).",
    )(fn)


def friendly(fn: F) -> F:
    """Turn the issuer's (and the ledger's) typed errors into a one-line message."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from ledger.log.errors import LedgerError

        try:
            return fn(*args, **kwargs)
        except IssuerError as e:
            raise click.ClickException(f"{e.code}: {e.message}") from e
        except (LedgerError, OSError) as e:
            raise click.ClickException(f"{type(e).__name__}: {e}") from e

    return wrapper  # type: ignore[return-value]
