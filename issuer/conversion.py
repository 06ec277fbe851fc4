"""Cross-region conversion: another region's valid presentation -> a credential here.

The presentation is checked with credential.verify.check_presentation against this
issuer's synced view of the other region's log (ledger.clients.sync.SyncedTrustState, refreshed
periodically and on demand). The new credential carries over the masked name, document
hint and colour (credentials do not carry the basis of a status); it gets a fresh
status index of this region, names its source (`src`: region and status index, see
issuer.lineage) and is anchored on this region's log like any other issuance. It is
bound to the device key the wallet names for this region in the request (a key distinct
from the one of the presented credential, proven by a signature over the presentation),
so that the two regions' codes of one person share no key; without one, it is bound to
the presented credential's key.
Each holder proof can be converted once (`DbReplayGuard`, shared by all workers).

A region never issues to its own resident from a foreign credential: a code converted
from one of this region's credentials (its `src` names this region), or bound to the
device key of one of this region's enrolled holders, maps back to that resident's own
record, whose status decides (red stays red). A conversion of a conversion into a
third region is refused: lineage is one step deep.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from credential.claims import SourceRef
from credential.errors import (
    CredentialError,
    NotYetAnchoredError,
    ProofReplayedError,
    StationNeedsSyncError,
    VerificationError,
)
from credential.presentation import conversion_challenge
from credential.trust import TrustState
from credential.verify import check_presentation
from issuer.context import IssuerContext
from issuer.enrolment import HOLDER_ID_BYTES, decode_device_key
from issuer.errors import BadRequestError, ConfigError, PresentationRefusedError
from issuer.issuance import Issued, current_credential, issue_first_credential
from issuer.models import CredentialRow, Holder, SeenProof
from ledger.clients.sync import SyncClient, SyncedTrustState
from ledger.log.consortium import Consortium

MAX_PRESENTATION_CHARS = 4096  # characters of QR text accepted in a request
REASON_SAME_REGION = "same_region"
REASON_CONVERTED = "converted_credential"  # a conversion of a conversion
REASON_UNKNOWN_SOURCE = "unknown_source"  # names a credential of ours we never issued


class TrustSource(Protocol):
    """Where the issuer's view of other regions' logs comes from."""

    def trust(self) -> TrustState: ...

    def refresh(self, force: bool = False) -> None: ...


@dataclass
class StaticTrustSource:
    """A fixed TrustState (tests, tools)."""

    state: TrustState

    def trust(self) -> TrustState:
        return self.state

    def refresh(self, force: bool = False) -> None:
        return None


class SyncedTrustSource:
    """ledger.clients.sync over the consortium file, refreshed at most every `min_interval_s`."""

    def __init__(self, consortium_path: Path, state_path: Path, min_interval_s: float) -> None:
        self.consortium_path, self.state_path = consortium_path, state_path
        self.min_interval_s = min_interval_s
        self._last = 0.0
        self._started = float("-inf")  # monotonic time the latest sync began
        self._lock = threading.Lock()
        self._local = threading.local()  # SQLite connections stay in their thread

    def trust(self) -> TrustState:
        state: TrustState | None = getattr(self._local, "state", None)
        if state is None:
            state = SyncedTrustState(self.state_path)
            self._local.state = state
        return state

    def refresh(self, force: bool = False) -> None:
        """Sync unless the last sync is younger than `min_interval_s`. With `force` (a
        presentation newer than the view), sync unless a sync began after this call:
        concurrent callers share one sync, and each is answered by a view at least as
        new as its request. Forced syncs are bounded by distinct valid presentations
        (a replayed proof is refused before the anchoring step)."""
        asked = time.monotonic()
        with self._lock:
            if force:
                if self._started >= asked:
                    return
            elif time.monotonic() - self._last < self.min_interval_s:
                return
            self._started = time.monotonic()
            client = SyncClient(Consortium.load(self.consortium_path), self.state_path)
            try:
                client.sync()
            finally:
                client.close()
            self._last = time.monotonic()


def trust_source_for(ctx: IssuerContext) -> TrustSource:
    cfg = ctx.config
    if cfg.consortium_path is None or cfg.sync_state_path is None:
        raise ConfigError("consortium_path is not configured: conversion is unavailable")
    return SyncedTrustSource(cfg.consortium_path, cfg.sync_state_path, cfg.sync_interval_s)


class DbReplayGuard:
    """credential.verify.ReplayGuard in the issuer database."""

    def __init__(self, ctx: IssuerContext) -> None:
        self.ctx = ctx

    def check_and_record(self, proof_id: bytes, expires_at: float, now: float) -> None:
        key = hashlib.sha256(proof_id).hexdigest()
        try:
            with self.ctx.sessions.begin() as s:
                s.execute(delete(SeenProof).where(SeenProof.expires_at <= now))
                s.add(SeenProof(proof_id=key, expires_at=expires_at))
        except IntegrityError as e:
            raise ProofReplayedError("this holder proof was already converted") from e


def convert(
    ctx: IssuerContext, presentation: str, trust: TrustSource, device_key: str | None = None
) -> tuple[str, Issued]:
    """Verify the other region's presentation and issue this region's credential.

    `device_key` (base64url DER SPKI) is the wallet's key for this region: the
    presentation must then bind `conversion_challenge(key)`, and the new credential is
    bound to that key. Without it, the new credential is bound to the presented one's
    key (the two regions' codes then share a device key, which links them).
    """
    if not isinstance(presentation, str) or not 0 < len(presentation) <= MAX_PRESENTATION_CHARS:
        raise PresentationRefusedError("presentation must be 1-4096 characters", "malformed")
    new_key = None if device_key is None else decode_device_key(device_key)
    challenge = None if new_key is None else conversion_challenge(new_key)
    # An unreachable peer is not fatal: verify against the last sync, whose age the
    # checklist weighs (revocation freshness: docs/credential-format.md §4).
    with contextlib.suppress(Exception):
        trust.refresh()
    now = ctx.clock.now()
    try:
        try:
            verified = check_presentation(
                presentation, trust.trust(), now, replay=DbReplayGuard(ctx), challenge=challenge
            )
        except (NotYetAnchoredError, StationNeedsSyncError) as first:
            # A code newer than this issuer's view of its region (a fresh credential,
            # a new key): one forced sync, then decide. Past the holder-proof step the
            # proof is already recorded, so the second check does not record it again.
            with contextlib.suppress(Exception):
                trust.refresh(force=True)
            guard = None if isinstance(first, NotYetAnchoredError) else DbReplayGuard(ctx)
            verified = check_presentation(
                presentation, trust.trust(), now, replay=guard, challenge=challenge
            )
    except VerificationError as e:
        raise PresentationRefusedError(f"presentation refused: {e}", str(e.reason)) from e
    except CredentialError as e:
        raise PresentationRefusedError(f"presentation refused: {e}", "malformed") from e
    claims = verified.claims
    if claims.region == ctx.region:
        raise PresentationRefusedError(
            f"expected a presentation from another region, found {claims.region}",
            REASON_SAME_REGION,
        )
    if new_key is not None and new_key == claims.holder_key:
        raise BadRequestError("device_key must differ from the presented credential's key")
    if claims.source is not None and claims.source.region != ctx.region:
        raise PresentationRefusedError(
            f"a credential converted from {claims.source.region} cannot be converted again",
            REASON_CONVERTED,
        )
    with ctx.sessions.begin() as s:
        own = own_holder(s, {claims.holder_key, new_key or claims.holder_key}, claims.source)
        if own is not None:
            # Converting back (or a resident's own device): the resident's record here
            # decides, never the foreign credential's colour.
            return own.holder_id, current_credential(ctx, s, own, int(now))
        if claims.source is not None:
            raise PresentationRefusedError(
                f"the source credential {claims.source.status_index} is not one of ours",
                REASON_UNKNOWN_SOURCE,
            )
        holder = Holder(
            holder_id=secrets.token_urlsafe(HOLDER_ID_BYTES),
            resident_id=None,
            device_key=new_key or claims.holder_key,
            via="conversion",
            source_region=claims.region,
            carried_name=claims.masked_name,
            carried_hint=claims.document_hint,
            carried_colour=claims.colour.value,
            # Format v2 credentials carry no basis: the other region keeps it. The
            # converted status is the other region's decision (basis `admin` here).
            carried_basis=None,
            carried_basis_time=None,
            carried_until=claims.expires_at,
            source_status_index=claims.status_index,
            created_at=int(now),
            last_auth_ts=0,
        )
        s.add(holder)
        s.flush()
        issued = issue_first_credential(ctx, s, holder, int(now))
    return holder.holder_id, issued


def own_holder(s: Session, device_keys: set[bytes], source: SourceRef | None) -> Holder | None:
    """This region's enrolled holder behind a foreign credential, if any: the holder of
    the source credential it names (bound to one of `device_keys`: the presented
    credential's key or the key the wallet names for this region, proven by the
    conversion challenge), else an enrolled holder with one of those keys."""
    if source is not None:
        row = s.scalars(
            select(CredentialRow).where(CredentialRow.status_index == source.status_index)
        ).first()
        if row is None:
            return None
        holder = s.get_one(Holder, row.holder_pk)
        if holder.resident_id is None or holder.device_key not in device_keys:
            return None
        return holder
    return s.scalars(
        select(Holder)
        .where(Holder.device_key.in_(device_keys), Holder.resident_id.is_not(None))
        .order_by(Holder.id.desc())
        .limit(1)
    ).first()
