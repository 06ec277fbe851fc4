"""What enrolment leaves on disk: rate-limit rows and development code deliveries that
name no document number, neither in clear nor as a hash anyone can recompute."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest
from sqlalchemy import select

from issuer import enrolment
from issuer.context import IssuerContext
from issuer.delivery import FileDelivery, read_delivered_code
from issuer.errors import ConfigError
from issuer.keystore import KeyStore
from issuer.models import RateEvent
from tests.issuer.helpers import make_context

DOC = "G10000003"


@pytest.fixture()
def ctx(tmp_path: Path) -> IssuerContext:
    c = make_context(tmp_path, "GD")
    c.delivery = FileDelivery(c.config.delivery_file, c.keys.delivery_ref)
    return c


def unkeyed_hashes(*parts: str) -> set[str]:
    """Every unkeyed digest an attacker with the table would try (the old scheme too)."""
    out = set()
    for text in ("\x1f".join(parts), parts[-1]):
        for algo in ("sha256", "md5", "sha1"):
            out.add(hashlib.new(algo, text.encode()).hexdigest())
    return out


def test_rate_limit_rows_are_keyed_not_brute_forceable(ctx: IssuerContext) -> None:
    enrolment.request_code(ctx, DOC, "203.0.113.9")
    with ctx.sessions() as s:
        keys = list(s.scalars(select(RateEvent.key)))
    assert len(keys) == 2
    joined = " ".join(keys)
    assert DOC not in joined
    for h in unkeyed_hashes("GD", DOC) | unkeyed_hashes("203.0.113.9"):
        assert h[:40] not in joined
    # Same person, same key: the limit still counts them together.
    assert ctx.keys.pseudonym("rate", "GD", DOC) in joined


def test_development_code_file_names_no_document_number(ctx: IssuerContext) -> None:
    enrolment.request_code(ctx, DOC, "203.0.113.9")
    path = ctx.config.delivery_file
    text = path.read_text()
    assert DOC not in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    code = read_delivered_code(path, ctx.keys.delivery_ref(DOC))
    assert code is not None and len(code) == enrolment.CODE_DIGITS
    assert read_delivered_code(path, DOC) is None


def test_pseudonym_key_is_a_private_file_and_stable(ctx: IssuerContext) -> None:
    first = ctx.keys.pseudonym("rate", DOC)
    path = ctx.config.pseudonym_key_path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert KeyStore(ctx.config).pseudonym("rate", DOC) == first
    assert ctx.keys.pseudonym("delivery", DOC) != first  # purposes never collide


def test_world_readable_pseudonym_key_is_refused(ctx: IssuerContext) -> None:
    ctx.keys.pseudonym_key()
    ctx.config.pseudonym_key_path.chmod(0o644)
    with pytest.raises(ConfigError, match="0600"):
        KeyStore(ctx.config).pseudonym_key()
