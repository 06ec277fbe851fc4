"""Base45 (RFC 9285): bytes <-> text in the QR alphanumeric alphabet.

Every two bytes become three characters of the 45-character alphabet QR codes encode
in alphanumeric mode at 5.5 bits per character (ISO/IEC 18004 §7.4.4), so binary data
costs 8.25 bits per byte in the symbol, against 8 in byte mode but with text every
scanner passes through unchanged. Decoding is strict (RFC 9285 §4: invalid
characters, a dangling single character and values above the byte range are errors).
"""

from __future__ import annotations

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_VALUE = {c: i for i, c in enumerate(ALPHABET)}
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
    """Decode base45 text strictly (RFC 9285 §4)."""
    try:
        vals = [_VALUE[c] for c in text]
    except KeyError as e:
        raise Base45Error(f"character {e.args[0]!r} is not in the base45 alphabet") from e
    n = len(vals)
    if n % 3 == 1:
        raise Base45Error(f"base45 length {n} leaves a single dangling character")
    out = bytearray()
    full = n - n % 3
    for i in range(0, full, 3):
        v = vals[i] + vals[i + 1] * 45 + vals[i + 2] * 2025
        if v > _PAIR_MAX:
            raise Base45Error(f"base45 group {text[i : i + 3]!r} exceeds 65535")
        out.append(v >> 8)
        out.append(v & 0xFF)
    if n % 3:
        v = vals[-2] + vals[-1] * 45
        if v > _SINGLE_MAX:
            raise Base45Error(f"base45 tail {text[-2:]!r} exceeds 255")
        out.append(v)
    return bytes(out)
