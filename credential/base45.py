"""Base45 (RFC 9285): bytes <-> text in the QR alphanumeric alphabet.

Every two bytes become three characters of the 45-character alphabet QR codes encode
in alphanumeric mode at 5.5 bits per character (ISO/IEC 18004 §7.4.4), so binary data
costs 8.25 bits per byte in the symbol, against 8 in byte mode but with text every
scanner passes through unchanged. Decoding is strict (RFC 9285 §4: invalid
characters, a dangling single character and values above the byte range are errors).
"""

from __future__ import annotations

from functools import lru_cache

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_INVALID = 0xFF
# bytes.translate table: ASCII character -> base45 digit value, 0xFF for any other byte.
_DIGITS = bytes(ALPHABET.index(chr(b)) if chr(b) in ALPHABET else _INVALID for b in range(256))
_PAIR_MAX = 0xFFFF  # RFC 9285 §4: a 3-character group encodes at most 65535
_SINGLE_MAX = 0xFF  # RFC 9285 §4: a trailing 2-character group encodes at most 255
_LANE_LOW_BYTE = b"\x00\x00\xff"  # one group's lane: keep its least significant byte
# Lane masks kept by group count: one issuer's codes differ in length by a few groups.
_MASK_CACHE_SIZE = 16


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


@lru_cache(maxsize=_MASK_CACHE_SIZE)
def _low_bytes_mask(groups: int) -> int:
    """The integer whose `groups` 24-bit lanes each hold 0x0000FF."""
    return int.from_bytes(_LANE_LOW_BYTE * groups, "big")


def b45decode(text: str) -> bytes:
    """Decode base45 text strictly (RFC 9285 §4).

    This runs on every scan (a presentation is ~440 characters), so the groups are
    decoded all at once in C-level integer arithmetic rather than one by one: read as
    one big-endian integer, the digit bytes put each group (c, d, e) in its own 24-bit
    lane, c in the lane's top byte. Shifting by 16 and by 8 and masking every lane to
    its low byte gives three integers holding every group's c, d and e alone, and
    c + 45 d + 2025 e is then computed for every lane at once: a group's value is at
    most 44 * 2026 = 91,124 < 2**24, so no lane carries into the next. A lane with a
    non-zero top byte is a group above 65,535; the other two bytes are the output.
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
    groups = n // 3
    full = 3 * groups
    packed = int.from_bytes(digits[:full], "big")
    low = _low_bytes_mask(groups)
    values = ((packed >> 16) & low) + 45 * ((packed >> 8) & low) + 2025 * (packed & low)
    lanes = values.to_bytes(full, "big")
    overflow = lanes[0::3]
    if overflow.count(0) != groups:
        i = 3 * next(g for g, top in enumerate(overflow) if top)
        raise Base45Error(f"base45 group {text[i : i + 3]!r} exceeds {_PAIR_MAX}")
    out = bytearray(2 * groups)
    out[0::2] = lanes[1::3]
    out[1::2] = lanes[2::3]
    if n % 3:
        v = digits[-2] + digits[-1] * 45
        if v > _SINGLE_MAX:
            raise Base45Error(f"base45 tail {text[-2:]!r} exceeds {_SINGLE_MAX}")
        out.append(v)
    return bytes(out)
