"""Issuance and privacy: every credential gets its own status index, and a credential
of the previous format (which disclosed the status basis) is not handed out again."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from sqlalchemy import select

from credential.issue import is_current_format, read_claims_unverified
from issuer.context import IssuerContext, ManualClock
from issuer.issuance import current_credential
from issuer.models import CredentialRow, Holder
from issuer.testing import enrol_directly, make_context, new_device


@pytest.fixture()
def ctx(tmp_path: Path) -> IssuerContext:
    return make_context(tmp_path, "GD", clock=ManualClock())


def _as_version_1(jws: str) -> str:
    """The same token with a version 1 header (`zip: HBZ1`): what an issuer upgraded
    from version 1 still holds for its holders."""
    header, payload, sig = jws.split(".")
    text = base64.urlsafe_b64decode(header + "==").replace(b"HBZ2", b"HBZ1")
    return base64.urlsafe_b64encode(text).rstrip(b"=").decode() + f".{payload}.{sig}"


def test_stored_version_1_credential_is_replaced_at_the_next_fetch(ctx: IssuerContext) -> None:
    issued = enrol_directly(ctx, "G10000001", new_device()).issued.credential
    assert is_current_format(issued.jws)
    with ctx.sessions.begin() as s:
        row = s.scalars(
            select(CredentialRow).where(CredentialRow.status_index == issued.status_index)
        ).one()
        row.jws = _as_version_1(row.jws)
    assert not is_current_format(_as_version_1(issued.jws))
    with ctx.sessions.begin() as s:
        holder = s.get_one(Holder, issued.holder_pk)
        again = current_credential(ctx, s, holder, ctx.now())
    assert again.fresh and is_current_format(again.credential.jws)
    assert again.credential.status_index != issued.status_index


def test_two_credentials_of_one_person_share_no_status_index(ctx: IssuerContext) -> None:
    """Re-enrolment (a new phone) and a routine re-issue each get a fresh index, so an
    index seen on one code says nothing about the person's next code."""
    first = enrol_directly(ctx, "G10000001", new_device()).issued.credential
    second = enrol_directly(ctx, "G10000001", new_device()).issued.credential
    ctx.clock.advance(ctx.config.credential_validity_s)  # type: ignore[attr-defined]
    with ctx.sessions.begin() as s:
        holder = s.get_one(Holder, second.holder_pk)
        third = current_credential(ctx, s, holder, ctx.now()).credential
    indices = [read_claims_unverified(c.jws).status_index for c in (first, second, third)]
    assert len(set(indices)) == 3


def _issue_group(ctx: IssuerContext, docs: list[str]) -> None:
    """A group of re-issues in one transaction; every credential's outbox id names its
    own anchor row, and the session holds no ORM object of the rows written."""
    from issuer.issuance import issue_many
    from issuer.models import OutboxRow
    from issuer.residents import add_residents

    add_residents(ctx, [{"document_number": d, "name": f"Resident {d}"} for d in docs])
    pks = [enrol_directly(ctx, d, new_device()).issued.credential.holder_pk for d in docs]
    with ctx.sessions.begin() as s:
        holders = [s.get_one(Holder, pk) for pk in pks]
        issued = issue_many(ctx, s, [(h, None) for h in holders], ctx.now())
        written = [o for o in s.identity_map.values() if isinstance(o, CredentialRow | OutboxRow)]
        assert written == []
    assert len({i.credential.status_index for i in issued}) == len(docs)
    with ctx.sessions() as s:
        for i in issued:
            box = s.get_one(OutboxRow, i.outbox_id)
            assert box.kind == "credential_anchored"
            assert box.ref == str(i.credential.status_index)
            row = s.scalars(
                select(CredentialRow).where(CredentialRow.digest == i.credential.digest)
            ).one()
            assert (row.jws, row.holder_pk, row.state) == (
                i.credential.jws,
                i.credential.holder_pk,
                "active",
            )


def test_a_group_of_credentials_names_each_ones_own_outbox_row(ctx: IssuerContext) -> None:
    _issue_group(ctx, [f"G2000000{i}" for i in range(8)])


@pytest.mark.postgres
def test_a_group_of_credentials_names_each_ones_own_outbox_row_on_postgres(
    tmp_path: Path, fresh_postgres_url: str
) -> None:
    pg = make_context(tmp_path, "GD", database_url=fresh_postgres_url, clock=ManualClock())
    try:
        _issue_group(pg, [f"G2000000{i}" for i in range(8)])
    finally:
        pg.dispose()
