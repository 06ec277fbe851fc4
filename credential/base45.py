"""Base45 (RFC 9285): bytes <-> text in the QR alphanumeric alphabet.

Every two bytes become three characters of the 45-character alphabet QR codes encode
in alphanumeric mode at 5.5 bits per character (ISO/IEC 18004 §7.4.4), so binary data
costs 8.25 bits per byte in the symbol, against 8 in byte mode but with text every
scanner passes through unchanged. Decoding is strict (RFC 9285 §4: invalid
characters, a dangling single character and values above the byte range are errors).
"""

from __future__ import annotations

import numpy as np

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_INVALID = 0xFF
# bytes.translate table: ASCII character -> base45 digit value, 0xFF for any other byte.
_DIGITS = bytes(ALPHABET.index(chr(b)) if chr(b) in ALPHABET else _INVALID for b in range(256))
_WEIGHTS = np.array([1, 45, 2025], dtype=np.uint32)  # RFC 9285 §4: c + d*45 + e*45*45
_PAIR_MAX = 0xFFFF  # RFC 9285 §4: a 3-character group encodes at most 65535
_SINGLE_MAX = 0xFF  # RFC 9285 §4: a trailing 2-character group encodes at most 255


class Base45Error(ValueError):
    """Text that is not canonical base45."""


def b45encode(data: bytes) -> str:
    """Encode bytes as base45 text (RFC 9285 §4)."""
    out: list[str] = []
    a = ALPHABET
    n = len(data)
    for i in range(0, n - 1, 2):
        v = (data[i] << 8) | data[i + 1]
        v, c0 = divmod(v, 45)
        c2, c1 = divmod(v, 45)
        out.append(a[c0] + a[c1] + a[c2])
    if n % 2:
        c1, c0 = divmod(data[-1], 45)
        out.append(a[c0] + a[c1])
    return "".join(out)


def b45decode(text: str) -> bytes:
    """Decode base45 text strictly (RFC 9285 §4).

    Vectorised with numpy: a presentation is ~580 characters and this runs on every
    scan, so a per-character Python loop would cost as much as one signature check.
    """
    try:
        digits = text.encode("ascii").translate(_DIGITS)
    except UnicodeEncodeError as e:
        raise Base45Error(f"non-ASCII character at {e.start} is not in the base45 alphabet") from e
    bad = digits.find(_INVALID)
    if bad >= 0:
        raise Base45Error(f"character {text[bad]!r} is not in the base45 alphabet")
    n = len(digits)
    if n % 3 == 1:
        raise Base45Error(f"base45 length {n} leaves a single dangling character")
    full = n - n % 3
    values = np.frombuffer(digits, dtype=np.uint8, count=full).reshape(-1, 3) @ _WEIGHTS
    if full and int(values.max()) > _PAIR_MAX:
        i = int(np.argmax(values > _PAIR_MAX)) * 3
        raise Base45Error(f"base45 group {text[i : i + 3]!r} exceeds 65535")
    out = values.astype(">u2").tobytes()
    if n % 3:
        v = digits[-2] + digits[-1] * 45
        if v > _SINGLE_MAX:
            raise Base45Error(f"base45 tail {text[-2:]!r} exceeds 255")
        out += bytes([v])
    return out
