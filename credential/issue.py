"""Issuing a credential: claims -> compact JWS signed with pyjwt.

The JWS protected header is canonical: exactly `{"alg":..,"kid":..,"zip":"HBZ2"}` as
compact JSON with sorted keys, so a verifier can rebuild it byte for byte from the
algorithm and the key id (which is how the QR framing drops it, see
`credential.presentation`). The payload is the deflated claims (`credential.payload`).
`credential_digest` is the SHA-256 anchored on the issuing region's log.

Does not verify: see `credential.verify`. `read_claims_unverified` is for a wallet
showing its own credential, never for a decision.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from jwt.api_jws import PyJWS

from common.b64 import b64url, b64url_decode
from credential.claims import KID_RE, HealthClaims
from credential.errors import ClaimsError, MalformedError
from credential.keys import PrivateKey, SigningAlg, alg_of, key_id, low_s_raw
from credential.keys import public_key_der as _public_key_der
from credential.payload import decode_payload, encode_payload

MAX_JWS_CHARS = 8192  # characters of a compact JWS accepted for parsing
# JWE `zip` header (RFC 7516 §4.1.3) reused on the JWS as SMART Health Cards do with
# "DEF"; ours names raw DEFLATE with the preset dictionary of `credential.payload`.
# HBZ2 is format version 2 (claims without the basis, its own preset dictionary); a
# verifier refuses HBZ1 credentials, whose claims disclosed the basis.
ZIP_DEFLATE = "HBZ2"

# pyjwt with every option set explicitly: no `typ`, sorted header members.
_JWS = PyJWS()
# The key id of each signing key seen, so that the kid check of `sign_credential` does
# not serialise and hash the public key on every credential (it cost more than the
# signature). Keyed by the key object's identity; the entry holds the key itself, so
# that identity cannot be reused by another object while the entry exists. An issuer
# holds a handful of keys; the table is cleared when it fills.
_KID_OF: dict[int, tuple[PrivateKey, str]] = {}
MAX_CACHED_KEYS = 64  # signing keys whose key id is remembered


def signing_kid(private_key: PrivateKey) -> str:
    """The key id (credential.keys.key_id) of a signing key, computed once per key."""
    known = _KID_OF.get(id(private_key))
    if known is not None and known[0] is private_key:
        return known[1]
    kid = key_id(_public_key_der(private_key))
    if len(_KID_OF) >= MAX_CACHED_KEYS:
        _KID_OF.clear()
    _KID_OF[id(private_key)] = (private_key, kid)
    return kid


def canonical_header(alg: SigningAlg, kid: str) -> bytes:
    """The exact protected-header bytes of a HealthBridge credential: compact JSON,
    sorted keys. Formatted directly (this runs on every scan); the kid must match
    KID_RE, whose characters need no JSON escaping."""
    if not KID_RE.fullmatch(kid):
        raise MalformedError(f"kid must be 4-64 base64url characters, found {kid!r}")
    return f'{{"alg":"{alg.value}","kid":"{kid}","zip":"{ZIP_DEFLATE}"}}'.encode("ascii")


def sign_credential(claims: HealthClaims, private_key: PrivateKey, alg: SigningAlg) -> str:
    """Sign the claims as a compact JWS (RFC 7515 §7.1) with pyjwt.

    The key must match `alg` and `claims.kid` (the key id of its public key), so an
    issuer cannot sign under a kid that names another key.
    """
    if alg_of(private_key) is not alg:
        raise ClaimsError(f"expected a {alg} key, found a {alg_of(private_key)} key")
    expected_kid = signing_kid(private_key)
    if claims.kid != expected_kid:
        raise ClaimsError(f"claims kid {claims.kid!r} does not name the key ({expected_kid})")
    token = _JWS.encode(
        encode_payload(claims),
        private_key,
        algorithm=alg.value,
        headers={"typ": None, "kid": claims.kid, "zip": ZIP_DEFLATE},
        sort_headers=True,
    )
    header_b64, payload_b64, sig_b64 = token.split(".")
    if header_b64 != b64url(canonical_header(alg, claims.kid)):
        # The compact QR framing rebuilds this header; refuse to issue anything else.
        raise ClaimsError("pyjwt produced a non-canonical JWS header")
    if alg is SigningAlg.ES256:
        # One credential, one signature, one digest: ES256 is issued in low-s form and
        # verifiers refuse high-s (credential.verify step 4), so `s -> n - s` cannot
        # make a second, ledger-unmatchable variant of an anchored credential.
        sig_b64 = b64url(low_s_raw(b64url_decode(sig_b64)))
    return f"{header_b64}.{payload_b64}.{sig_b64}"


_CURRENT_HEADER_SUFFIX = f',"zip":"{ZIP_DEFLATE}"}}'.encode("ascii")


def is_current_format(jws: str) -> bool:
    """Whether a stored compact JWS is of the current format (its canonical header
    names this version's compression). For an issuer deciding to re-issue; not a check
    of validity."""
    try:
        return split_jws(jws).header.endswith(_CURRENT_HEADER_SUFFIX)
    except (MalformedError, ValueError):
        return False


def credential_digest(jws: str) -> bytes:
    """SHA-256 of the ASCII compact JWS: the digest anchored on the ledger."""
    return hashlib.sha256(jws.encode("ascii")).digest()


@dataclass(frozen=True)
class JwsParts:
    """The three segments of a compact JWS, decoded."""

    header: bytes
    payload: bytes
    signature: bytes


def split_jws(jws: str) -> JwsParts:
    """Split and base64url-decode a compact JWS (no verification)."""
    if len(jws) > MAX_JWS_CHARS:
        raise MalformedError(f"JWS longer than {MAX_JWS_CHARS} characters")
    segments = jws.split(".")
    if len(segments) != 3:
        raise MalformedError(f"expected 3 JWS segments, found {len(segments)}")
    try:
        return JwsParts(*(b64url_decode(s) for s in segments))
    except (ValueError, UnicodeEncodeError) as e:
        raise MalformedError(f"JWS segment is not base64url: {e}") from e


def _no_duplicate_members(pairs: list[tuple[str, object]]) -> dict[str, object]:
    # RFC 7515 §4: header parameter names MUST be unique; a parser that keeps the last
    # one lets two readers of the same header disagree. Refused, as duplicate claims are.
    out: dict[str, object] = {}
    for k, v in pairs:
        if k in out:
            raise MalformedError(f"duplicate JWS header member {k!r}")
        out[k] = v
    return out


def parse_header(header: bytes) -> dict[str, object]:
    """The JOSE header as a JSON object; duplicate member names are refused."""
    try:
        obj = json.loads(header.decode("utf-8"), object_pairs_hook=_no_duplicate_members)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise MalformedError(f"expected a JSON JWS header: {e}") from e
    if not isinstance(obj, dict):
        raise MalformedError(f"expected a JSON object header, found {type(obj).__name__}")
    return obj


def read_claims_unverified(jws: str) -> HealthClaims:
    """The claims of a credential WITHOUT checking its signature (wallet display only)."""
    parts = split_jws(jws)
    kid = parse_header(parts.header).get("kid")
    if not isinstance(kid, str):
        raise MalformedError("JWS header has no string 'kid'")
    return decode_payload(parts.payload, kid)
