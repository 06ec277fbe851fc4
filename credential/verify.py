"""Verifying a presentation: the numbered checklist of docs/credential-format.md §4, as
a pure function.

Input: the QR bytes or text, a `TrustState` (the station's synced view of the
consortium's logs), a reference time `now`, a `StationPolicy`, optionally a replay
guard and the station's challenge. No I/O, no clock. Each step raises its own
`VerificationError` subclass carrying a `Reason`:

1. parse and bounds (size, version prefix, base45, frame, bounded inflation, claims)
2. issuer region is a consortium member
3. key registered by that region under that kid; not compromised before anchoring
4. JWS signature with the algorithm pinned by the registered key; key active at iat
5. validity window (nbf, exp; iat not in the future), with CLOCK_SKEW_LEEWAY_S
6. holder proof by the `cnf` device key over digest + window (+ challenge); fresh
   window; not replayed
7. revocation as of the synced checkpoint; sync age against the policy; for a
   converted credential, its source's revocation in the source region's state; on a
   full-mode view, the credential's digest anchored on the region's cosigned log
8. policy on the status colour (only in `verify_presentation`)

Unknown key, our call: when the station's view of the region is older than the
credential's `iat` (or the region was never synced), the key may have been registered
after the last sync, so the reason is STATION_NEEDS_SYNC; otherwise the region's log
as we know it covers the issuing time and never registered the key: UNKNOWN_KEY.
Both deny; `iat` is unverified at that point, so it only selects the message.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol, cast

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.serialization import load_der_public_key

from credential.claims import HealthClaims, StatusColour
from credential.errors import (
    AlgorithmMismatchError,
    BadSignatureError,
    ChallengeMismatchError,
    CredentialError,
    ExpiredError,
    HolderProofInvalidError,
    KeyCompromisedError,
    KeyFormatError,
    KeyNotActiveError,
    KeyRegionMismatchError,
    KeyRetiredError,
    MalformedError,
    NotAnchoredError,
    NotYetAnchoredError,
    NotYetValidError,
    ProofReplayedError,
    ProofStaleError,
    RevocationUnknownError,
    RevokedError,
    SourceRevokedError,
    StationNeedsSyncError,
    UnknownKeyError,
    UnknownRegionError,
    VerificationError,
)
from credential.issue import ZIP_DEFLATE, parse_header
from credential.keys import (
    P256_SPKI_PREFIX,
    SigningAlg,
    es256_der_signature,
    is_low_s,
    load_public_key_der,
)
from credential.payload import claims_from_json, inflate
from credential.presentation import (
    WINDOW_SECONDS,
    WINDOW_TAG_MODULUS,
    Presentation,
    parse_presentation,
    proof_signing_input,
    window_near,
    window_of,
)
from credential.reasons import Reason
from credential.trust import RegisteredKey, TrustState
from credential.verdict import (
    DEFAULT_POLICY,
    Decision,
    DisplayFields,
    StationPolicy,
    Verdict,
)

CLOCK_SKEW_LEEWAY_S = 60  # seconds of clock difference tolerated on nbf / exp
# Seconds an honest issuer may take from signing a credential to its anchor being in a
# quorum-cosigned checkpoint (outbox, sequencer batch, both witnesses). A credential
# missing from a full view that covers its iat by more than this is NOT_ANCHORED; a
# younger one is NOT_YET_ANCHORED (the station syncs on demand, then decides).
ANCHOR_GRACE_S = 300
MAX_PROOF_AGE_WINDOWS = 1  # a proof from the current or the previous window is fresh
PROOF_FUTURE_SKEW_S = 5  # seconds: accept the next window this close to its start
KEY_CACHE_SIZE = 256  # parsed issuer public keys kept (by DER)
DEVICE_KEY_CACHE_SIZE = 1024  # parsed device public keys kept (by DER)
REPLAY_GUARD_MAX_ENTRIES = 200_000  # proofs remembered by InMemoryReplayGuard
DIGEST_PREFIX_BYTES = 8  # bytes of the credential digest shown in verdicts and logs
# A proof that fails for its resolved window is tried this many window-tag periods
# (256 windows, 2 h 8 min each) further back, never before the credential's iat: a
# screenshot older than one period then reads as stale, not as another phone.
MAX_STALE_PERIODS_PROBED = 96  # periods; 8.5 days, past the longest credential validity
HEADER_MEMBERS = frozenset({"alg", "kid", "zip"})  # exactly these; no `crit` extensions
# ES256 is ECDSA over the SHA-256 of the message (RFC 7518 §3.4). Verification hashes
# the messages itself and hands OpenSSL the hash: the JWS signing input is the prefix of
# the JWS whose digest is needed anyway, so one pass of SHA-256 serves both, and the
# holder proof's hash is its replay key. The same verification as over the message.
_ECDSA_PREHASHED_SHA256 = ec.ECDSA(Prehashed(hashes.SHA256()))
_SEVERITY = {Decision.ADMIT: 0, Decision.MANUAL_CHECK: 1, Decision.DENY: 2}
# The reasons a verified colour adds to the verdict, in the order staff read them.
_COLOUR_REASONS: dict[StatusColour, tuple[Reason, ...]] = {
    StatusColour.GREEN: (),
    StatusColour.YELLOW: (Reason.STATUS_YELLOW,),
    StatusColour.RED: (Reason.STATUS_RED,),
}


class ReplayGuard(Protocol):
    """Remembers holder proofs for as long as they are fresh."""

    def check_and_record(self, proof_id: bytes, expires_at: float, now: float) -> None:
        """Record the proof; raise ProofReplayedError when it was already seen and
        has not expired."""
        ...


class InMemoryReplayGuard:
    """A ReplayGuard in a dictionary, pruned of expired proofs as it goes."""

    def __init__(self, max_entries: int = REPLAY_GUARD_MAX_ENTRIES) -> None:
        self._seen: OrderedDict[bytes, float] = OrderedDict()
        self._max = max_entries

    def check_and_record(self, proof_id: bytes, expires_at: float, now: float) -> None:
        # Insertion order is close to expiry order: prune from the front.
        while self._seen:
            oldest, exp = next(iter(self._seen.items()))
            if exp > now and len(self._seen) < self._max:
                break
            del self._seen[oldest]
        seen_until = self._seen.get(proof_id)
        if seen_until is not None and seen_until > now:
            raise ProofReplayedError("this holder proof was already presented in its window")
        self._seen[proof_id] = expires_at

    def __len__(self) -> int:
        return len(self._seen)


@dataclass(frozen=True)
class VerifiedPresentation:
    """A presentation that passed checklist steps 1-7."""

    claims: HealthClaims
    credential_jws: str
    digest: bytes
    key: RegisteredKey
    sync_age_s: int | None


# Checks a raw JWS signature over a signing input, given with its SHA-256; raises
# BadSignatureError.
_SignatureCheck = Callable[[bytes, bytes, bytes], None]


@lru_cache(maxsize=KEY_CACHE_SIZE)
def _issuer_check(der: bytes, alg: SigningAlg) -> _SignatureCheck:
    """The signature check of a registered key, built once per (key, algorithm): the key
    is loaded and its type matched to the registered algorithm here, not on every scan
    (the same issuer key signs a region's credentials for months). KeyFormatError when
    the key does not load or is not of the algorithm's type; never cached."""
    pub = load_public_key_der(der)
    if alg is SigningAlg.ES256 and isinstance(pub, ec.EllipticCurvePublicKey):
        es256 = pub

        def check_es256(signature: bytes, signing_input: bytes, sha256: bytes) -> None:
            # Low-s only: (r, n - s) would verify too and give the same credential a
            # second digest, unmatchable against the ledger and a fresh replay key.
            if not is_low_s(signature):
                raise BadSignatureError("issuer signature is not in low-s form")
            try:
                es256.verify(es256_der_signature(signature), sha256, _ECDSA_PREHASHED_SHA256)
            except (InvalidSignature, ValueError) as e:
                raise BadSignatureError("issuer signature does not verify") from e

        return check_es256
    if alg is SigningAlg.EDDSA and isinstance(pub, ed25519.Ed25519PublicKey):
        eddsa = pub

        def check_eddsa(signature: bytes, signing_input: bytes, sha256: bytes) -> None:
            # Ed25519 hashes the message with the key (RFC 8032 §5.1.7): the whole input.
            try:
                eddsa.verify(signature, signing_input)
            except (InvalidSignature, ValueError) as e:
                raise BadSignatureError("issuer signature does not verify") from e

        return check_eddsa
    raise KeyFormatError(f"registered key type does not match {alg}")


def _p256_public_key_class() -> type:
    """The class `load_der_public_key` gives a P-256 key: that of the curve's generator
    point G (SEC 2 v2 §2.4.2) loaded as a public key."""
    g = bytes.fromhex(
        "046B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296"
        "4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5"
    )
    key = load_der_public_key(P256_SPKI_PREFIX + g)
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise KeyFormatError("the P-256 generator does not load as a P-256 key")
    return type(key)


_P256_PUBLIC_KEY_CLASS = _p256_public_key_class()


@lru_cache(maxsize=DEVICE_KEY_CACHE_SIZE)
def _device_key(der: bytes) -> ec.EllipticCurvePublicKey:
    if not der.startswith(P256_SPKI_PREFIX):
        raise KeyFormatError("device key is not an uncompressed P-256 point")
    # Loaded from the DER SPKI, which OpenSSL decodes straight into its provider's key
    # (the point is checked to be on the curve). With OpenSSL 3 `from_encoded_point`
    # built a legacy key converted on its first use, about 11 us more per scan; with
    # the OpenSSL 4 in cryptography 50 both cost the same (docs/performance.md).
    try:
        key = load_der_public_key(der)
    except (ValueError, TypeError) as e:
        raise KeyFormatError(f"device key does not load: {e}") from e
    # The prefix names id-ecPublicKey on secp256r1 (RFC 5480 §2.1.1), so what loads is
    # a P-256 key; its class is checked once more against the one a P-256 key loads
    # as. (An ABC isinstance and building the key's curve object, the same check, cost
    # ~2 us a scan.)
    if type(key) is not _P256_PUBLIC_KEY_CLASS:
        raise KeyFormatError("device key is not a P-256 public key")
    return cast(ec.EllipticCurvePublicKey, key)  # the class check above, for mypy


class _Scratch:
    """What the checklist learned so far, for a verdict built after a failure."""

    __slots__ = ("anchor_pending", "claims", "digest", "region", "revocation_unknown", "sync_age_s")

    def __init__(self) -> None:
        self.digest: bytes | None = None
        self.region: str | None = None
        self.claims: HealthClaims | None = None  # set once the signature verified
        self.sync_age_s: int | None = None
        self.revocation_unknown = False
        self.anchor_pending = False  # newer than a view that lacks its anchor


def _check_signature(p: Presentation, signing_hash: bytes, alg: str, key: RegisteredKey) -> None:
    # Step 4 (RFC 8725 §3.1): the algorithm comes from the registration, and the token's
    # header must name that same algorithm; `none`, HS256 and any other value fail here.
    if alg != key.alg:  # a StrEnum member equals its value
        raise AlgorithmMismatchError(f"key registered for {key.alg}, token header says {alg!r}")
    try:
        check = _issuer_check(key.public_key_der, key.alg)
    except KeyFormatError as e:
        raise BadSignatureError(f"registered key cannot be used: {e}") from e
    check(p.signature, p.signing_input, signing_hash)


def _proof_hash(digest: bytes, window: int, challenge: bytes | None) -> bytes:
    """SHA-256 of what the device key signs for that window: the message hash of the
    proof's ES256 signature, and the proof's replay key."""
    return hashlib.sha256(proof_signing_input(digest, window, challenge)).digest()


def _proof_verifies(device: ec.EllipticCurvePublicKey, proof: bytes, proof_hash: bytes) -> bool:
    try:
        device.verify(es256_der_signature(proof), proof_hash, _ECDSA_PREHASHED_SHA256)
    except (InvalidSignature, ValueError):
        return False
    return True


def _proof_of_an_older_period(
    device: ec.EllipticCurvePublicKey,
    proof: bytes,
    digest: bytes,
    window: int,
    challenge: bytes | None,
    claims: HealthClaims,
) -> bool:
    """Whether the proof verifies for the same tag one or more periods earlier.

    The frame carries the window mod 256, so a screenshot 256 windows old resolves to
    the current window and fails there. Only the failure path pays for this, bounded by
    MAX_STALE_PERIODS_PROBED and by the credential's iat (no proof predates it)."""
    first = window_of(claims.issued_at - CLOCK_SKEW_LEEWAY_S)
    for k in range(1, MAX_STALE_PERIODS_PROBED + 1):
        older = window - k * WINDOW_TAG_MODULUS
        if older < first:
            return False
        if _proof_verifies(device, proof, _proof_hash(digest, older, challenge)):
            return True
    return False


def _verbatim_header(raw: bytes) -> tuple[str, str]:
    """(alg, kid) of a header sent verbatim, checked to hold exactly our members."""
    header = parse_header(raw)
    if set(header) != HEADER_MEMBERS:
        raise MalformedError(f"expected header members {sorted(HEADER_MEMBERS)}")
    alg, kid = header["alg"], header["kid"]
    if not isinstance(alg, str) or not isinstance(kid, str) or header["zip"] != ZIP_DEFLATE:
        raise MalformedError("header alg/kid must be strings and zip must be " + ZIP_DEFLATE)
    return alg, kid


def _run(
    data: str | bytes,
    trust: TrustState,
    now: float,
    policy: StationPolicy,
    replay: ReplayGuard | None,
    challenge: bytes | None,
    s: _Scratch,
) -> tuple[HealthClaims, bytes, Presentation, RegisteredKey]:
    """Steps 1-7; what passed them: (claims, digest, presentation, issuer key)."""
    # 1. Parse and bounds.
    p = parse_presentation(data)
    alg, kid = p.canonical if p.canonical is not None else _verbatim_header(p.header)
    # The compact JWS begins with the signing input (RFC 7515 §7.1): one SHA-256 pass
    # gives the signing input's hash (ES256's message hash, step 4) on the way to the
    # credential digest (`Presentation.digest`, the ledger's key).
    sha = hashlib.sha256(p.signing_input)
    signing_hash = sha.digest()
    sha.update(p.credential_jws_ascii[len(p.signing_input) :])
    s.digest = digest = sha.digest()
    claims = claims_from_json(inflate(p.payload), kid)
    region = claims.region

    # 2. Issuer region known.
    if region not in trust.regions():
        raise UnknownRegionError(f"region {region!r} is not a consortium member")
    s.region = region
    synced_at = trust.synced_at(region)
    if synced_at is not None:
        s.sync_age_s = max(0, int(now - synced_at))

    # 3. Key registered by that region and not compromised before this was anchored.
    key = trust.key(region, kid)
    if key is None:
        if synced_at is None or claims.issued_at > synced_at:
            raise StationNeedsSyncError(f"{region} key {kid!r} unknown to a view older than iat")
        raise UnknownKeyError(f"{region} never registered key {kid!r}")
    if key.region != region or key.kid != kid:
        raise KeyRegionMismatchError(f"key {kid!r} belongs to {key.region}, code says {region}")
    if key.compromised_at is not None:
        anchored = trust.anchored_at(region, digest)
        if anchored is None or anchored >= key.compromised_at:
            raise KeyCompromisedError(
                f"key compromised at {key.compromised_at}, credential anchored at {anchored}"
            )

    # 4. Signature, algorithm pinned by the registration; key active when it signed.
    _check_signature(p, signing_hash, alg, key)
    s.claims = claims
    if claims.issued_at < key.not_before or (
        key.not_after is not None and claims.issued_at > key.not_after
    ):
        raise KeyNotActiveError(f"iat {claims.issued_at} outside the key's validity")
    if key.retired_at is not None and claims.issued_at >= key.retired_at:
        raise KeyRetiredError(f"iat {claims.issued_at} after retirement {key.retired_at}")

    # 5. Validity window. An honest issuer stamps `iat` = `nbf` = its clock (RFC 7519
    # §4.1.5-6); an `iat` ahead of ours beyond the leeway is refused like a future `nbf`.
    # Left through, it read as "newer than the view" at step 7c for as long as it stayed
    # ahead: an off-ledger code signed with a registered key passed for NOT_YET_ANCHORED
    # (the policy's call) instead of NOT_ANCHORED (always a denial).
    if now + CLOCK_SKEW_LEEWAY_S < claims.not_before:
        raise NotYetValidError(f"valid from {claims.not_before}, now {int(now)}")
    if now + CLOCK_SKEW_LEEWAY_S < claims.issued_at:
        raise NotYetValidError(f"issued at {claims.issued_at}, in the future of {int(now)}")
    if now - CLOCK_SKEW_LEEWAY_S >= claims.expires_at:
        raise ExpiredError(f"expired at {claims.expires_at}, now {int(now)}")

    # 6. Holder proof: fresh window, device key, challenge, replay.
    if p.challenge_bound != (challenge is not None):
        raise ChallengeMismatchError(
            f"station challenge {'set' if challenge is not None else 'unset'}, "
            f"proof {'binds' if p.challenge_bound else 'does not bind'} one"
        )
    current = window_of(now)
    window = window_near(p.window_tag, current)
    newest = current + (1 if (current + 1) * WINDOW_SECONDS - now <= PROOF_FUTURE_SKEW_S else 0)
    if not current - MAX_PROOF_AGE_WINDOWS <= window <= newest:
        raise ProofStaleError(f"proof window {window}, current window {current}")
    try:
        device = _device_key(claims.holder_key)
    except (ValueError, KeyFormatError) as e:
        raise HolderProofInvalidError("the cnf device key cannot be loaded") from e
    if not is_low_s(p.proof):
        raise HolderProofInvalidError("holder proof is not in low-s form")
    proof_hash = _proof_hash(digest, window, challenge)
    if not _proof_verifies(device, p.proof, proof_hash):
        if _proof_of_an_older_period(device, p.proof, digest, window, challenge, claims):
            raise ProofStaleError("proof made for a window one or more tag periods ago")
        raise HolderProofInvalidError("holder proof does not verify with the cnf key")
    if replay is not None:
        # Keyed on what was proven, not on the signature bytes: ECDSA signatures are
        # malleable ((r, s) and (r, n - s) both verify). The key is the SHA-256 of the
        # proof's signed bytes, as before.
        replay.check_and_record(
            proof_hash, (window + MAX_PROOF_AGE_WINDOWS + 1) * WINDOW_SECONDS, now
        )

    # 7. Revocation as of the synced checkpoint, and how old that view is.
    if trust.is_revoked(region, claims.status_index):
        raise RevokedError(f"{region} status index {claims.status_index} is revoked")
    _check_fresh(region, synced_at, now, policy, s)
    # 7b. A conversion stands on its source: when the source region revoked the
    # credential it was made from, the conversion falls with it, read straight from the
    # source region's revocation state (no wait for the converting issuer to notice).
    src = claims.source
    if src is not None:
        if src.region not in trust.regions():
            raise UnknownRegionError(f"source region {src.region!r} is not a member")
        if trust.is_revoked(src.region, src.status_index):
            raise SourceRevokedError(f"source {src.region} index {src.status_index} is revoked")
        _check_fresh(src.region, trust.synced_at(src.region), now, policy, s)
    # 7c. On the ledger: a full-mode view holds every anchor of the region's cosigned
    # log, so a digest it lacks was never anchored there (or only on a branch no
    # witness cosigned) -- unless the credential is newer than the view. A compact view
    # knows the anchored status indices only (the committed snapshot): it refuses an
    # index the log never anchored, not a second credential under an anchored one.
    if trust.anchors_known(region):
        missing = trust.anchored_at(region, digest) is None
    else:
        missing = trust.index_anchored(region, claims.status_index) is False
    if missing:
        if synced_at is not None and claims.issued_at + ANCHOR_GRACE_S <= synced_at:
            raise NotAnchoredError(f"{region} log as of {synced_at} does not hold this digest")
        s.anchor_pending = True
        if policy.on_revocation_unknown is Decision.DENY:
            raise NotYetAnchoredError(f"iat {claims.issued_at} is newer than the {region} view")
    return claims, digest, p, key


def _check_fresh(
    region: str, synced_at: int | None, now: float, policy: StationPolicy, s: _Scratch
) -> None:
    if synced_at is None or now - synced_at > policy.max_sync_age_s:
        s.revocation_unknown = True
        if policy.on_revocation_unknown is Decision.DENY:
            age = None if synced_at is None else max(0, int(now - synced_at))
            raise RevocationUnknownError(
                f"{region} view is {age} s old, policy allows {policy.max_sync_age_s} s"
            )


def check_presentation(
    data: str | bytes,
    trust: TrustState,
    now: float,
    policy: StationPolicy = DEFAULT_POLICY,
    replay: ReplayGuard | None = None,
    challenge: bytes | None = None,
) -> VerifiedPresentation:
    """Checklist steps 1-7; raises a VerificationError subclass on the first failure.

    An unknown revocation state raises RevocationUnknownError whatever the policy: a
    caller who wants policy-driven leniency uses `verify_presentation`.
    """
    strict = StationPolicy(policy.colours, policy.max_sync_age_s, Decision.DENY)
    s = _Scratch()
    claims, digest, p, key = _run(data, trust, now, strict, replay, challenge, s)
    return VerifiedPresentation(claims, p.credential_jws, digest, key, s.sync_age_s)


def _display(c: HealthClaims) -> DisplayFields:
    return DisplayFields(c.region, c.masked_name, c.document_hint, c.colour, c.expires_at)


def verify_presentation(
    data: str | bytes,
    trust: TrustState,
    now: float,
    policy: StationPolicy = DEFAULT_POLICY,
    replay: ReplayGuard | None = None,
    challenge: bytes | None = None,
) -> Verdict:
    """Run the whole checklist and return a verdict; never raises on bad input."""
    s = _Scratch()
    try:
        c, digest, _, _ = _run(data, trust, now, policy, replay, challenge, s)
    except VerificationError as e:
        return _failed(s, e.reason)
    except (CredentialError, ValueError, TypeError, RecursionError):
        return _failed(s, Reason.MALFORMED)
    # 8. Policy on the colour (and on an unknown revocation state, when not fatal).
    colour = c.colour
    decision = policy.colours[colour]
    reasons: tuple[Reason, ...] = _COLOUR_REASONS[colour]
    if s.revocation_unknown or s.anchor_pending:
        if s.revocation_unknown:
            reasons += (Reason.REVOCATION_UNKNOWN,)
        if s.anchor_pending:
            reasons += (Reason.NOT_YET_ANCHORED,)
        if _SEVERITY[policy.on_revocation_unknown] > _SEVERITY[decision]:
            decision = policy.on_revocation_unknown
    return Verdict(
        decision,
        reasons,
        colour,
        DisplayFields(c.region, c.masked_name, c.document_hint, colour, c.expires_at),
        c.region,
        digest[:DIGEST_PREFIX_BYTES].hex(),
        s.sync_age_s,
    )


def _failed(s: _Scratch, reason: Reason) -> Verdict:
    return Verdict(
        decision=Decision.DENY,
        reasons=(reason,),
        colour=s.claims.colour if s.claims else None,
        display=_display(s.claims) if s.claims else None,
        region=s.region,
        digest_prefix=s.digest[:DIGEST_PREFIX_BYTES].hex() if s.digest else None,
        sync_age_s=s.sync_age_s,
    )
