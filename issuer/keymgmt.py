"""Signing-key life cycle: generate and register, rotate, revoke for compromise.

Registration writes a KeyAdded entry (signed by the region root key) to the outbox in
the transaction that records the key; rotation retires the previous key with a
KeyRevoked entry carrying `retired_at` (what it signed stays valid until it expires);
revocation for compromise carries `compromised_at` (credentials anchored before that
instant stay valid, verifiers refuse the rest) and deletes the private key file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from credential.keys import SigningAlg, public_key_der
from issuer import log_entries
from issuer.context import IssuerContext
from issuer.errors import ConflictError, NotFoundError
from issuer.issuance import add_outbox
from issuer.models import SigningKeyRow

KEY_STATE_ACTIVE = "active"
KEY_STATE_RETIRED = "retired"
KEY_STATE_COMPROMISED = "compromised"
REASON_ROTATION = "rotation"
REASON_COMPROMISE = "compromise"


@dataclass(frozen=True)
class KeyChange:
    kid: str
    outbox_ids: tuple[int, ...]


# Called inside the key change's own transaction (so the admin audit row commits or
# rolls back with the change): (session, the change about to be committed).
InTransaction = Callable[[Session, KeyChange], None]


def list_keys(session: Session) -> list[SigningKeyRow]:
    return list(session.scalars(select(SigningKeyRow).order_by(SigningKeyRow.created_at)).all())


def _retire(
    ctx: IssuerContext, s: Session, row: SigningKeyRow, now: int, compromised_at: int | None
) -> int:
    # Credentials carry whole seconds, and a station refuses one whose iat is at or
    # after its key's retired_at: the key may have signed earlier in this very second,
    # so its retirement starts with the next one. (The row lock taken before `now`,
    # _lock_active, makes sure no issuance still signs with it.) A retired key revoked
    # later for compromise stays retired from its first retirement.
    ends = now + 1
    retired_at = ends if row.retired_at is None else min(row.retired_at, ends)
    row.retired_at = retired_at
    row.compromised_at = compromised_at
    row.state = KEY_STATE_RETIRED if compromised_at is None else KEY_STATE_COMPROMISED
    reason = REASON_ROTATION if compromised_at is None else REASON_COMPROMISE
    entry = log_entries.key_revoked(
        ctx.region, row.kid, retired_at, compromised_at, reason, ctx.keys.root_key()
    )
    return add_outbox(s, "key_revoked", row.kid, entry, now).id


def _lock_active(s: Session) -> list[SigningKeyRow]:
    """The active keys, row-locked until commit. Every issuance holds a share lock on
    the key it signs with (issuance.signing_key_for), so this waits until what they
    signed is committed with its outbox row: taken before the key change reads the
    time and writes its entries, the old key's anchors precede its `KeyRevoked` on the
    log and their iat precedes its `retired_at`."""
    return list(
        s.scalars(select(SigningKeyRow).where(SigningKeyRow.state == "active").with_for_update())
    )


def rotate_key(
    ctx: IssuerContext,
    alg: SigningAlg = SigningAlg.ES256,
    in_transaction: InTransaction | None = None,
) -> KeyChange:
    """Create a new active key, register it, and retire the keys active until now."""
    kid, key = ctx.keys.create_signing_key(alg)
    der = public_key_der(key)
    with ctx.sessions.begin() as s:
        olds = _lock_active(s)
        now = ctx.now()  # after the lock: no issuance with the old keys is in flight
        ids = []
        for old in olds:
            ids.append(_retire(ctx, s, old, now, None))
        not_after = now + ctx.config.key_validity_s
        s.add(
            SigningKeyRow(
                kid=kid,
                alg=alg.value,
                public_key_der=der,
                state=KEY_STATE_ACTIVE,
                not_before=now,
                not_after=not_after,
                created_at=now,
            )
        )
        entry = log_entries.key_added(
            ctx.region, kid, alg, der, now, not_after, ctx.keys.root_key()
        )
        # The new key is registered before the old one is retired on the log.
        ids.insert(0, add_outbox(s, "key_added", kid, entry, now).id)
        change = KeyChange(kid, tuple(ids))
        if in_transaction is not None:
            in_transaction(s, change)
    return change


def revoke_key(
    ctx: IssuerContext,
    kid: str,
    compromised_at: int | None,
    in_transaction: InTransaction | None = None,
) -> KeyChange:
    """Revoke a key: for compromise (with the compromise time) or plain retirement."""
    if compromised_at is not None and compromised_at > ctx.now():
        raise ConflictError(f"compromise time {compromised_at} is in the future (now {ctx.now()})")
    with ctx.sessions.begin() as s:
        _lock_active(s)  # as rotate_key: issuances with the key finish first
        row = s.get(SigningKeyRow, kid, with_for_update=True)
        if row is None:
            raise NotFoundError(f"no signing key {kid}")
        now = ctx.now()
        if row.state == KEY_STATE_COMPROMISED:
            raise ConflictError(f"key {kid} is already revoked for compromise")
        if row.state == KEY_STATE_RETIRED and compromised_at is None:
            raise ConflictError(f"key {kid} is already retired")
        change = KeyChange(kid, (_retire(ctx, s, row, now, compromised_at),))
        if in_transaction is not None:
            in_transaction(s, change)
    if compromised_at is not None:
        ctx.keys.destroy_signing_key(kid)
    return change
