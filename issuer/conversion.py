"""Cross-region conversion: another region's valid presentation -> a credential here.

The presentation is checked with credential.verify.check_presentation against this
issuer's synced view of the other region's log (ledger.sync.SyncedTrustState, refreshed
periodically and on demand). The new credential is bound to the same device key and
carries over the masked name, document hint, colour and basis; it gets a fresh status
index of this region and is anchored on this region's log like any other issuance.
Each holder proof can be converted once (`DbReplayGuard`, shared by all workers).
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

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from credential.errors import CredentialError, ProofReplayedError, VerificationError
from credential.trust import TrustState
from credential.verify import check_presentation
from issuer.context import IssuerContext
from issuer.enrolment import HOLDER_ID_BYTES
from issuer.errors import ConfigError, PresentationRefusedError
from issuer.issuance import Issued, issue_credential
from issuer.models import Holder, SeenProof
from ledger.consortium import Consortium
from ledger.sync import SyncClient, SyncedTrustState

MAX_PRESENTATION_CHARS = 4096  # characters of QR text accepted in a request
REASON_SAME_REGION = "same_region"


class TrustSource(Protocol):
    """Where the issuer's view of other regions' logs comes from."""

    def trust(self) -> TrustState: ...

    def refresh(self) -> None: ...


@dataclass
class StaticTrustSource:
    """A fixed TrustState (tests, tools)."""

    state: TrustState

    def trust(self) -> TrustState:
        return self.state

    def refresh(self) -> None:
        return None


class SyncedTrustSource:
    """ledger.sync over the consortium file, refreshed at most every `min_interval_s`."""

    def __init__(self, consortium_path: Path, state_path: Path, min_interval_s: float) -> None:
        self.consortium_path, self.state_path = consortium_path, state_path
        self.min_interval_s = min_interval_s
        self._last = 0.0
        self._lock = threading.Lock()
        self._local = threading.local()  # SQLite connections stay in their thread

    def trust(self) -> TrustState:
        state: TrustState | None = getattr(self._local, "state", None)
        if state is None:
            state = SyncedTrustState(self.state_path)
            self._local.state = state
        return state

    def refresh(self) -> None:
        with self._lock:
            if time.monotonic() - self._last < self.min_interval_s:
                return
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


def convert(ctx: IssuerContext, presentation: str, trust: TrustSource) -> tuple[str, Issued]:
    """Verify the other region's presentation and issue this region's credential."""
    if not isinstance(presentation, str) or not 0 < len(presentation) <= MAX_PRESENTATION_CHARS:
        raise PresentationRefusedError("presentation must be 1-4096 characters", "malformed")
    # An unreachable peer is not fatal: verify against the last sync, whose age the
    # checklist weighs (revocation freshness: docs/credential-format.md §4).
    with contextlib.suppress(Exception):
        trust.refresh()
    now = ctx.clock.now()
    try:
        verified = check_presentation(presentation, trust.trust(), now, replay=DbReplayGuard(ctx))
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
    with ctx.sessions.begin() as s:
        holder = Holder(
            holder_id=secrets.token_urlsafe(HOLDER_ID_BYTES),
            resident_id=None,
            device_key=claims.holder_key,
            via="conversion",
            source_region=claims.region,
            carried_name=claims.masked_name,
            carried_hint=claims.document_hint,
            carried_colour=claims.colour.value,
            carried_basis=claims.basis.value,
            carried_basis_time=claims.basis_time,
            carried_until=claims.expires_at,
            created_at=int(now),
            last_auth_ts=0,
        )
        s.add(holder)
        s.flush()
        issued = issue_credential(ctx, s, holder, int(now))
    return holder.holder_id, issued
