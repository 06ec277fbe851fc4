"""The presentation a wallet shows as a QR: credential + holder proof, framed compactly.

A presentation proves that the phone showing the credential holds the device key named
in its `cnf` claim (RFC 7800), now: the device signs (ES256) the credential digest, the
current 30-second window number and, when the verifier displays one, its challenge.

QR text = "HB2:" + base45(frame), all in the QR alphanumeric alphabet. The frame drops
what a verifier rebuilds exactly: the canonical JWS header (from an algorithm code and
the key id), base64url (segments travel as raw bytes) and DER (signatures are raw
r||s); the window travels as its low 8 bits. See docs/credential-format.md for the
byte layout. Does not verify anything: see `credential.verify`.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from functools import lru_cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from common.b64 import b64url_bytes
from credential.base45 import Base45Error, b45decode, b45encode
from credential.errors import (
    EuDccCodeError,
    MalformedError,
    PresentationFormatError,
    SmartHealthCardCodeError,
    TooLargeError,
    UnsupportedVersionError,
)
from credential.foreign import ForeignScheme, recognise
from credential.issue import (
    canonical_header,
    credential_digest,
    parse_header,
    read_claims_unverified,
    split_jws,
)
from credential.keys import (
    ES256_SIGNATURE_BYTES,
    PrivateKey,
    SigningAlg,
    es256_raw_signature,
    public_key_der,
)

WINDOW_SECONDS = 30  # seconds per holder-proof window; the wallet refreshes this often
WINDOW_TAG_MODULUS = 256  # the frame carries window mod 256 (1 byte)
PREFIX_MAGIC = "HB"
# Version 2: claims without the status basis (docs/credential-format.md §7). A version 1
# code is refused as unsupported_version: it would show the basis to any camera.
FORMAT_VERSION = 2
QR_PREFIX = f"{PREFIX_MAGIC}{FORMAT_VERSION}:"
MAX_PREFIX_CHARS = 8  # characters before ':' examined to report a version
MAX_QR_BYTES = 4296  # characters; QR version 40-L alphanumeric capacity (ISO/IEC 18004)
MAX_KID_BYTES = 64  # matches credential.claims.KID_RE
MAX_HEADER_BYTES = 1024  # bytes of a verbatim JWS header
PROOF_CONTEXT = b"HealthBridge holder proof v1\n"  # domain separation for the device key
FLAG_CHALLENGE = 0x01  # frame flags bit 0: the proof covers a verifier challenge
# Domain separation of the challenge a wallet binds when it converts a credential into
# another region's under a new device key (see `conversion_challenge`).
CONVERSION_CHALLENGE_CONTEXT = b"HealthBridge conversion key v1\n"

# Frame header forms: a canonical JWS header rebuilt from (alg, kid), or verbatim bytes.
FORM_VERBATIM = 0x00
FORM_CANONICAL: dict[SigningAlg, int] = {SigningAlg.ES256: 0x01, SigningAlg.EDDSA: 0x02}
_ALG_BY_FORM = {v: k for k, v in FORM_CANONICAL.items()}
CANONICAL_SIGNATURE_BYTES = 64  # ES256 r||s and Ed25519 signatures are both 64 bytes
# Canonical headers kept with their base64url, by (form, kid): one per issuer key in use.
CANONICAL_HEADER_CACHE_SIZE = 256


def window_of(now: float) -> int:
    """The holder-proof window number containing `now`: floor(now / 30)."""
    return math.floor(now / WINDOW_SECONDS)


def resolve_window(tag: int, now: float) -> int:
    """The window number with low byte `tag` nearest to `now`'s window (within ±128)."""
    return window_near(tag, window_of(now))


def window_near(tag: int, current: int) -> int:
    """The window number with low byte `tag` nearest to window `current` (within ±128)."""
    delta = (tag - current) % WINDOW_TAG_MODULUS
    if delta >= WINDOW_TAG_MODULUS // 2:
        delta -= WINDOW_TAG_MODULUS
    return current + delta


def conversion_challenge(new_device_key_der: bytes) -> bytes:
    """The challenge a conversion presentation binds: context || SHA-256(new key SPKI).

    The wallet gives each region's credential its own device key, so two regions' codes
    of one person share no key. The presented credential's key endorses the new one by
    proving over this challenge: a photo of someone's code (made without it) cannot be
    converted into a credential bound to the photographer's key.
    """
    return CONVERSION_CHALLENGE_CONTEXT + hashlib.sha256(new_device_key_der).digest()


def proof_signing_input(digest: bytes, window: int, challenge: bytes | None) -> bytes:
    """The bytes the device key signs:
    context || digest || u64be(window) [|| SHA-256(challenge)]."""
    out = PROOF_CONTEXT + digest + window.to_bytes(8, "big")
    if challenge is not None:
        out += hashlib.sha256(challenge).digest()
    return out


@dataclass(frozen=True, init=False)
class Presentation:
    """A parsed presentation: the credential's JWS parts and the holder proof."""

    header: bytes  # JWS protected header, decoded
    payload: bytes  # JWS payload, decoded (raw DEFLATE of the claims)
    signature: bytes  # JWS signature, raw
    window_tag: int  # holder-proof window mod 256
    challenge_bound: bool
    proof: bytes  # ES256 raw r||s by the device key
    # (alg, kid) when the frame used a canonical header form: the verifier then skips
    # parsing the header it rebuilt itself. Not part of equality.
    canonical: tuple[SigningAlg, str] | None = field(default=None, compare=False)
    # Derived from the fields above when built (every verification needs both; a
    # cached_property would take a lock on each first use under Python 3.11).
    signing_input: bytes = field(init=False, repr=False, compare=False)
    credential_jws_ascii: bytes = field(init=False, repr=False, compare=False)

    # Written out rather than generated: see the note above `credential.claims.HealthClaims`.
    def __init__(
        self,
        header: bytes,
        payload: bytes,
        signature: bytes,
        window_tag: int,
        challenge_bound: bool,
        proof: bytes,
        canonical: tuple[SigningAlg, str] | None = None,
    ) -> None:
        # A canonical header is the same bytes object for every code of one issuer key
        # (see `_canonical`), so its base64url is looked up rather than recomputed.
        b64_header = _b64url_header(header) if canonical else b64url_bytes(header)
        # The JWS signing input (RFC 7515 §5.1 step 5) and the compact JWS (§7.1),
        # exactly as issued, in ASCII bytes.
        signing_input = b64_header + b"." + b64url_bytes(payload)
        object.__setattr__(
            self,
            "__dict__",
            {
                "header": header,
                "payload": payload,
                "signature": signature,
                "window_tag": window_tag,
                "challenge_bound": challenge_bound,
                "proof": proof,
                "canonical": canonical,
                "signing_input": signing_input,
                "credential_jws_ascii": signing_input + b"." + b64url_bytes(signature),
            },
        )

    @property
    def credential_jws(self) -> str:
        """The compact JWS, exactly as issued."""
        return self.credential_jws_ascii.decode("ascii")

    @property
    def digest(self) -> bytes:
        """`credential_digest` of the JWS: the SHA-256 anchored on the ledger."""
        return hashlib.sha256(self.credential_jws_ascii).digest()


@lru_cache(maxsize=CANONICAL_HEADER_CACHE_SIZE)
def _b64url_header(header: bytes) -> bytes:
    return b64url_bytes(header)


@lru_cache(maxsize=CANONICAL_HEADER_CACHE_SIZE)
def _canonical(form: int, kid: bytes) -> tuple[tuple[SigningAlg, str], bytes]:
    """((alg, kid), header bytes) of a canonical header form; MalformedError for a kid
    that is not ASCII or not of KID_RE's form (never cached: lru_cache keeps results
    only). Every scan of one issuer key's codes gets the same header object."""
    try:
        canonical = (_ALG_BY_FORM[form], kid.decode("ascii"))
    except UnicodeDecodeError as e:
        raise MalformedError("kid is not ASCII") from e
    return canonical, canonical_header(*canonical)


def _canonical_form(header: bytes) -> tuple[int, bytes] | None:
    """(form code, kid) when the header is canonical, else None."""
    try:
        obj = parse_header(header)
    except MalformedError:
        return None
    alg, kid = obj.get("alg"), obj.get("kid")
    if not isinstance(alg, str) or alg not in FORM_CANONICAL or not isinstance(kid, str):
        return None
    signing_alg = SigningAlg(alg)
    try:
        if header != canonical_header(signing_alg, kid):
            return None
    except MalformedError:  # a kid outside KID_RE: frame the header verbatim
        return None
    return FORM_CANONICAL[signing_alg], kid.encode("ascii")


def render_presentation(p: Presentation) -> str:
    """The QR text of a presentation."""
    frame = bytearray()
    canon = _canonical_form(p.header)
    if canon is not None and len(p.signature) == CANONICAL_SIGNATURE_BYTES:
        form, kid = canon
        if not 0 < len(kid) <= MAX_KID_BYTES:
            raise PresentationFormatError(f"kid must be 1-{MAX_KID_BYTES} bytes")
        frame += bytes([form, len(kid)]) + kid + p.signature
    else:
        if len(p.header) > MAX_HEADER_BYTES or len(p.signature) > 255:
            raise PresentationFormatError("JWS header or signature too long to frame")
        frame += bytes([FORM_VERBATIM]) + len(p.header).to_bytes(2, "big") + p.header
        frame += bytes([len(p.signature)]) + p.signature
    if len(p.proof) != ES256_SIGNATURE_BYTES or not 0 <= p.window_tag < WINDOW_TAG_MODULUS:
        raise PresentationFormatError("proof must be 64 bytes and window_tag one byte")
    if not p.payload:
        raise PresentationFormatError("empty JWS payload")
    frame += bytes([FLAG_CHALLENGE if p.challenge_bound else 0, p.window_tag]) + p.proof
    frame += p.payload
    return QR_PREFIX + b45encode(bytes(frame))


def _text_of(data: str | bytes) -> str:
    # Type first: anything but text or bytes (None, a number) is a malformed code, not
    # a TypeError out of len().
    if not isinstance(data, str | bytes | bytearray):
        raise MalformedError(f"expected str or bytes, found {type(data).__name__}")
    if len(data) > MAX_QR_BYTES:
        raise TooLargeError(f"QR content of {len(data)} exceeds {MAX_QR_BYTES} characters")
    if isinstance(data, bytes | bytearray):
        try:
            return bytes(data).decode("ascii")
        except UnicodeDecodeError as e:
            raise MalformedError(f"expected ASCII QR text: {e}") from e
    return data


def parse_presentation(data: str | bytes) -> Presentation:
    """Parse QR text (1. parse and bounds). Raises a VerificationError subclass."""
    # Text within bounds, what a scanner hands over, skips the checks of other types.
    text = data if type(data) is str and len(data) <= MAX_QR_BYTES else _text_of(data)
    if not text.startswith(QR_PREFIX):
        head, sep, _ = text[: MAX_PREFIX_CHARS + 1].partition(":")
        if sep and head.startswith(PREFIX_MAGIC) and head[len(PREFIX_MAGIC) :].isdigit():
            raise UnsupportedVersionError(
                f"expected format version {FORMAT_VERSION}, found {head[len(PREFIX_MAGIC) :]}"
            )
        foreign = recognise(text)
        if foreign is ForeignScheme.EU_DCC:
            raise EuDccCodeError("found an EU Digital COVID Certificate (HC1:)")
        if foreign is ForeignScheme.SMART_HEALTH_CARD:
            raise SmartHealthCardCodeError("found a SMART Health Card (shc:/)")
        raise MalformedError(f"expected prefix {QR_PREFIX!r}, found {text[:8]!r}")
    try:
        frame = b45decode(text[len(QR_PREFIX) :])
    except Base45Error as e:
        raise MalformedError(f"expected base45 after the prefix: {e}") from e
    # Offsets are computed and checked against the frame's length directly: a cursor
    # object cost a method call per field on every scan. Layout: docs/credential-format.md
    # §3.1.
    end = len(frame)
    if not end:
        raise MalformedError("frame truncated in header form: need 1 byte")
    form = frame[0]
    if form in _ALG_BY_FORM:
        if end < 2:
            raise MalformedError("frame truncated in kid length: need 1 byte")
        kid_len = frame[1]
        if not 0 < kid_len <= MAX_KID_BYTES:
            raise MalformedError(f"kid length must be 1-{MAX_KID_BYTES}, found {kid_len}")
        pos = 2 + kid_len
        sig_end = pos + CANONICAL_SIGNATURE_BYTES
        if sig_end > end:
            raise MalformedError(f"frame truncated in kid or signature: need {sig_end} bytes")
        canonical: tuple[SigningAlg, str] | None
        canonical, header = _canonical(form, frame[2:pos])
        signature = frame[pos:sig_end]
        pos = sig_end
    elif form == FORM_VERBATIM:
        canonical = None
        if end < 3:
            raise MalformedError("frame truncated in header length: need 2 bytes")
        header_len = int.from_bytes(frame[1:3], "big")
        if header_len > MAX_HEADER_BYTES:
            raise MalformedError(f"header of {header_len} bytes exceeds {MAX_HEADER_BYTES}")
        pos = 3 + header_len
        if pos + 1 > end:
            raise MalformedError(f"frame truncated in header: need {pos + 1} bytes")
        header = frame[3:pos]
        sig_end = pos + 1 + frame[pos]
        if sig_end > end:
            raise MalformedError(f"frame truncated in signature: need {sig_end} bytes")
        signature = frame[pos + 1 : sig_end]
        pos = sig_end
    else:
        raise MalformedError(f"unknown header form 0x{form:02x}")
    if pos + 2 > end:
        raise MalformedError("frame truncated in flags and window: need 2 bytes")
    flags = frame[pos]
    if flags & ~FLAG_CHALLENGE:
        raise MalformedError(f"unknown flag bits 0x{flags:02x}")
    proof_end = pos + 2 + ES256_SIGNATURE_BYTES
    if proof_end > end:
        raise MalformedError(f"frame truncated in proof: need {proof_end} bytes")
    if proof_end == end:
        raise MalformedError("frame truncated: no payload")
    return Presentation(
        header,
        frame[proof_end:],
        signature,
        frame[pos + 1],
        bool(flags & FLAG_CHALLENGE),
        frame[pos + 2 : proof_end],
        canonical,
    )


def make_presentation(
    credential_jws: str, device_key: PrivateKey, now: float, challenge: bytes | None = None
) -> str:
    """The QR text a wallet shows at `now`: the credential plus a fresh holder proof."""
    if not isinstance(device_key, ec.EllipticCurvePrivateKey):
        raise PresentationFormatError("device keys are ES256 (P-256)")
    claims = read_claims_unverified(credential_jws)
    if claims.holder_key != public_key_der(device_key):
        raise PresentationFormatError("the device key is not the one the credential names")
    parts = split_jws(credential_jws)
    window = window_of(now)
    digest = credential_digest(credential_jws)
    der = device_key.sign(proof_signing_input(digest, window, challenge), ec.ECDSA(hashes.SHA256()))
    p = Presentation(
        header=parts.header,
        payload=parts.payload,
        signature=parts.signature,
        window_tag=window % WINDOW_TAG_MODULUS,
        challenge_bound=challenge is not None,
        proof=es256_raw_signature(der),
    )
    return render_presentation(p)
