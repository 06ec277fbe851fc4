"""Command-line group for `healthbridge verifier`."""

from __future__ import annotations

import click


@click.group()
def cli() -> None:
    """Verifier commands."""
