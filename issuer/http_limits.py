"""Bounds on what a request may carry before any handler sees it: integers in URL
paths and JSON bodies, and the nesting depth of JSON.

Why: a path integer of 2^63 or more passes Flask's `int` converter and overflows the
database driver (SQLite and PostgreSQL store 64-bit signed integers), and a deeply
nested JSON body makes the decoder raise RecursionError. Both used to surface as
503. Here the path converter answers 400 itself, and the JSON provider turns both a
recursion failure and a depth beyond `MAX_JSON_DEPTH` into the ValueError that Flask
reports as a malformed body (every handler then answers its own typed 400).
What it does not do: bound sizes (MAX_CONTENT_LENGTH does) or validate fields.
"""

from __future__ import annotations

from typing import Any

from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import BadRequest
from werkzeug.routing import IntegerConverter

MAX_SQL_INT = 2**63 - 1  # largest value a BIGINT column (SQLite, PostgreSQL) holds
MAX_JSON_DEPTH = 32  # nesting levels of arrays and objects; no body of ours needs 4


class BoundedIntConverter(IntegerConverter):
    """Flask's `int` path converter, answering 400 beyond a signed 64-bit integer."""

    def to_python(self, value: str) -> int:
        # Digits only (IntegerConverter's regex): length bounds the work before int().
        if len(value) > 19 or int(value) > MAX_SQL_INT:
            raise BadRequest(f"expected an integer of at most {MAX_SQL_INT}, found {value[:24]}")
        return int(value)


def json_depth_exceeds(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when `value` nests arrays/objects deeper than `limit` (iterative walk)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False


class BoundedJSONProvider(DefaultJSONProvider):
    """Flask's JSON provider, refusing over-deep bodies as malformed (ValueError)."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            value = super().loads(s, **kwargs)
        except RecursionError as e:
            raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from e
        if json_depth_exceeds(value):
            raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
        return value


def install(app: Any) -> None:
    """Use both bounds in `app`; call before any blueprint is registered."""
    app.url_map.converters["int"] = BoundedIntConverter
    app.json_provider_class = BoundedJSONProvider
    app.json = BoundedJSONProvider(app)
