"""Unpadded base64url (RFC 4648 §5, as JWS uses it: RFC 7515 §2): one encoder, one
strict decoder. Pure; no I/O.

The decoder refuses padding, characters outside the URL-safe alphabet and
non-canonical tails (bits set past the last full byte), so one value has exactly one
spelling — two spellings of one key or signature would otherwise compare unequal.
Standard base64 with padding (RFC 4648 §4, used by signed notes and JSON bodies) is
`ledger.log.note.b64decode_strict`'s business, not this module's.
"""

from __future__ import annotations

import binascii

_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# RFC 4648 §5: the URL-safe alphabet differs from §4's in its last two characters only.
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
_TO_STANDARD = bytes.maketrans(b"-_", b"+/")


def b64url(data: bytes) -> str:
    """Unpadded base64url of `data` (RFC 7515 §2)."""
    return b64url_bytes(data).decode("ascii")


def b64url_bytes(data: bytes) -> bytes:
    """Unpadded base64url of `data`, as ASCII bytes (a JWS signing input is bytes)."""
    # binascii directly: `base64.urlsafe_b64encode` is the same two C calls behind a
    # Python wrapper, and this runs several times per scan.
    return binascii.b2a_base64(data, newline=False).translate(_TO_URLSAFE).rstrip(b"=")


def b64url_decode(text: str | bytes, max_chars: int | None = None) -> bytes:
    """Strict unpadded base64url; raises ValueError on anything else.

    `max_chars` bounds the input before any work is done (a header field, a path
    segment); None means no bound beyond the caller's own.
    """
    # Text or bytes only: `bytes(n)` of an integer (a JSON number where a string was
    # expected) would allocate n zero bytes.
    if isinstance(text, str):
        try:
            raw = text.encode("ascii", "strict")
        except UnicodeEncodeError as e:
            raise ValueError("expected unpadded base64url, found non-ASCII text") from e
    elif isinstance(text, bytes | bytearray | memoryview):
        raw = bytes(text)
    else:
        raise ValueError(f"expected base64url text, found {type(text).__name__}")
    if max_chars is not None and len(raw) > max_chars:
        raise ValueError(f"expected at most {max_chars} base64url characters, found {len(raw)}")
    # Deleting every alphabet character leaves nothing only when there is nothing else.
    if len(raw) % 4 == 1 or raw.translate(None, _ALPHABET):
        raise ValueError("expected unpadded base64url")
    try:
        out = binascii.a2b_base64(raw.translate(_TO_STANDARD) + b"=" * (-len(raw) % 4))
    except binascii.Error as e:  # unreachable after the checks above; kept typed
        raise ValueError("expected unpadded base64url") from e
    if b64url_bytes(out) != raw:
        raise ValueError("expected canonical base64url (no bits set past the last byte)")
    return out
