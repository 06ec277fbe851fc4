"""The one place where the issuer builds ledger entries (ledger.log.entries) and signs the
key entries with the region root key.

Entries carry digests, indices and key material only: never a name or a document
number (docs/ledger-protocol.md, "The validation rules"). Pure: no I/O; the caller
hands in the root key object.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ed25519

from credential.keys import SigningAlg
from ledger.log import entries as le


def credential_anchored(
    region: str, digest: bytes, status_index: int, kid: str, expires_at: int
) -> bytes:
    return le.encode_entry(
        le.CredentialAnchored(
            region=region, digest=digest, status_index=status_index, kid=kid, expires_at=expires_at
        )
    )


def credential_revoked(region: str, status_index: int, effective_at: int) -> bytes:
    """The public revocation entry: index and time only, reason `unspecified` always.

    Why a credential was revoked (a status change, fraud, a lost phone) is the issuer's
    record (credential row, admin audit log), never the public log's: every QR shows
    the status index, so a reason here would publish a named person's health event to
    whoever once scanned their code."""
    return le.encode_entry(
        le.CredentialRevoked(
            region=region,
            status_index=status_index,
            reason=le.RevocationReason.UNSPECIFIED,
            effective_at=effective_at,
        )
    )


def credential_reinstated(region: str, status_index: int, effective_at: int) -> bytes:
    return le.encode_entry(
        le.CredentialReinstated(region=region, status_index=status_index, effective_at=effective_at)
    )


def key_added(
    region: str,
    kid: str,
    alg: SigningAlg,
    public_key_der: bytes,
    not_before: int,
    not_after: int,
    root_key: ed25519.Ed25519PrivateKey,
) -> bytes:
    entry = le.KeyAdded(
        region=region,
        kid=kid,
        alg=alg,
        public_key_der=public_key_der,
        not_before=not_before,
        not_after=not_after,
        root_signature=b"",
    )
    return le.encode_entry(le.sign_key_entry(entry, root_key))


def key_revoked(
    region: str,
    kid: str,
    retired_at: int,
    compromised_at: int | None,
    reason: str,
    root_key: ed25519.Ed25519PrivateKey,
) -> bytes:
    entry = le.KeyRevoked(
        region=region,
        kid=kid,
        compromised_at=compromised_at,
        retired_at=retired_at,
        reason=le.KeyRevocationReason(reason),
        root_signature=b"",
    )
    return le.encode_entry(le.sign_key_entry(entry, root_key))
