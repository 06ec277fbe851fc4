"""Thirty simultaneous enrolment attempts with wrong codes for one document number:
the per-document limit holds exactly, so a guesser cannot multiply their tries on an
eight-digit code by sending them at once. On SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import pytest

from issuer import enrolment
from issuer.context import IssuerContext
from issuer.errors import RateLimitedError, WrongCodeError
from issuer.testing import device_key_text, make_context, new_device

DOC = "G10000003"
ATTEMPTS = 30


def race(ctx: IssuerContext) -> Counter[str]:
    device = device_key_text(new_device())
    results: list[str] = []
    start = threading.Barrier(ATTEMPTS)

    def attempt(i: int) -> None:
        start.wait()
        try:
            # Each guess from its own address: only the per-document limit binds.
            enrolment.enrol(ctx, DOC, "00000000", device, f"198.51.100.{i}")
        except WrongCodeError:
            results.append("checked")
        except RateLimitedError:
            results.append("limited")

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(ATTEMPTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return Counter(results)


def open_ctx(tmp_path: Path, url: str = "") -> IssuerContext:
    ctx = make_context(tmp_path, "GD", database_url=url)
    enrolment.request_code(ctx, DOC, "203.0.113.1")
    return ctx


def test_thirty_simultaneous_code_guesses_are_checked_only_up_to_the_limit(
    tmp_path: Path,
) -> None:
    ctx = open_ctx(tmp_path)
    try:
        got = race(ctx)
        limit = ctx.config.attempts_per_doc
    finally:
        ctx.dispose()
    assert got == {"checked": limit, "limited": ATTEMPTS - limit}


@pytest.mark.postgres
def test_thirty_simultaneous_code_guesses_are_checked_only_up_to_the_limit_on_postgres(
    tmp_path: Path, fresh_postgres_url: str
) -> None:
    ctx = open_ctx(tmp_path, fresh_postgres_url)
    try:
        got = race(ctx)
        limit = ctx.config.attempts_per_doc
    finally:
        ctx.dispose()
    assert got == {"checked": limit, "limited": ATTEMPTS - limit}
