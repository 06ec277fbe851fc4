"""Counts the answers a fuzzing session got, by status code, and prints the tally
when the session ends (visible with `pytest -s`): the figures docs/performance.md quotes."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests


@contextmanager
def counting(session: requests.Session, label: str) -> Iterator[Counter[int]]:
    tally: Counter[int] = Counter()

    def hook(response: requests.Response, *_args: Any, **_kwargs: Any) -> None:
        tally[response.status_code] += 1

    session.hooks["response"].append(hook)
    try:
        yield tally
    finally:
        total = sum(tally.values())
        codes = ", ".join(f"{code}: {n}" for code, n in sorted(tally.items()))
        print(f"\n[api_fuzz] {label}: {total} requests ({codes})", file=sys.stderr)
