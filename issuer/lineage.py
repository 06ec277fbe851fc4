"""Conversion lineage at the converting issuer: a conversion falls with its source.

A credential converted from another region's credential names that source (`src`:
region, status index). Stations deny it `source_revoked` as soon as their view of the
source region shows the source revoked; this module makes the converting issuer agree,
from the same synced view (ledger.clients.sync over the source region's quorum-cosigned log):

- `check_holder` runs on every refresh of a converted holder: a revoked source marks
  the holder (`source_revoked_at`) and revokes its outstanding credentials on this
  region's log (reason `source_revoked`), so no fresh green code is handed out;
- `sweep` runs after every periodic sync and does the same for every converted holder
  with an outstanding credential, so a conversion nobody refreshes is revoked within
  one sync interval of the source's revocation reaching a cosigned checkpoint.

It does not decide whether the source is revoked (the trust state does) nor reinstate:
a reinstated source does not revive a conversion; the holder converts again.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from credential.trust import TrustState
from issuer.context import IssuerContext
from issuer.issuance import ConvertedHolder, revoke_credential_row
from issuer.models import CredentialRow, Holder, OutboxRow

REVOKE_REASON_SOURCE_REVOKED = "source_revoked"


def source_revoked(holder: ConvertedHolder, trust: TrustState) -> bool:
    """Whether the converted holder's source is revoked in the synced view."""
    if holder.source_region is None or holder.source_status_index is None:
        return False
    return trust.is_revoked(holder.source_region, holder.source_status_index)


def revoke_conversion(
    ctx: IssuerContext, session: Session, holder: Holder, now: int
) -> list[OutboxRow]:
    """Mark the holder's source revoked and revoke its outstanding credentials."""
    if holder.source_revoked_at is None:
        holder.source_revoked_at = now
    rows = session.scalars(
        select(CredentialRow).where(
            CredentialRow.holder_pk == holder.id,
            CredentialRow.state == "active",
            CredentialRow.expires_at > now,
        )
    ).all()
    return [revoke_credential_row(ctx, session, r, REVOKE_REASON_SOURCE_REVOKED, now) for r in rows]


def check_holder(ctx: IssuerContext, holder_pk: int, trust: TrustState, now: int) -> bool:
    """On a refresh: True when the holder's conversion stands, False when its source
    is (now or already) revoked, in which case its credentials were revoked here."""
    with ctx.sessions.begin() as s:
        holder = s.get_one(Holder, holder_pk)
        if holder.source_revoked_at is not None:
            return False
        if not source_revoked(holder, trust):
            return True
        revoke_conversion(ctx, s, holder, now)
        return False


def sweep(ctx: IssuerContext, trust: TrustState, now: int) -> list[int]:
    """Revoke every conversion whose source the synced view shows revoked; returns the
    outbox ids of the revocations queued (to be anchored by the worker)."""
    queued: list[int] = []
    with ctx.sessions.begin() as s:
        holders = s.scalars(
            select(Holder)
            .join(CredentialRow, CredentialRow.holder_pk == Holder.id)
            .where(
                Holder.source_region.is_not(None),
                Holder.source_revoked_at.is_(None),
                CredentialRow.state == "active",
                CredentialRow.expires_at > now,
            )
            .distinct()
        ).all()
        for holder in holders:
            if source_revoked(holder, trust):
                queued += [box.id for box in revoke_conversion(ctx, s, holder, now)]
    return queued
