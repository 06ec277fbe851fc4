"""The credential payload: claims <-> canonical JSON <-> raw DEFLATE bytes.

The JWS payload is the claims object as compact UTF-8 JSON (sorted keys, no
whitespace, non-ASCII kept as UTF-8), compressed with raw DEFLATE (RFC 1951, no zlib
or gzip wrapper) primed with a fixed preset dictionary (PRESET_DICTIONARY, the JSON
skeleton every credential repeats; RFC 1951 §3.2 back-references into it are what
zlib's `zdict` provides). The dictionary saves ~80 bytes (~120 QR characters) per
credential; it is why the JWS header says `"zip":"HBZ2"` and not SMART Health Cards'
plain `"DEF"`: a generic inflater must be given the dictionary. Inflation is bounded
(MAX_INFLATED_BYTES) against decompression bombs. The key id is
not a payload member: it travels in the JWS header (`kid`) and is joined to the claims
on parse. Does not sign or verify anything.
"""

from __future__ import annotations

import binascii
import json
import zlib
from typing import Any

import orjson

from common.b64 import b64url, b64url_decode
from credential.claims import HealthClaims, SourceRef, StatusColour
from credential.errors import ClaimsError, KeyFormatError, MalformedError, TooLargeError
from credential.keys import p256_der_from_point, p256_point_from_der

MAX_INFLATED_BYTES = 4096  # bytes of claims JSON after inflation; real ones are ~350
DEFLATE_LEVEL = 9  # smallest output; the payload is tiny so speed does not matter
_RAW_DEFLATE_WBITS = -15  # zlib: negative window bits = raw DEFLATE, no header
_MEM_LEVEL = 9  # zlib memLevel: most memory, best compression
# Frozen for format version 2 (`zip: HBZ2`): changing one byte breaks every issued
# credential. Version 1's dictionary (HBZ1) also primed the basis member `hs.b` and its
# time `hs.t`, which version 2 no longer has.
PRESET_DICTIONARY = (
    b'"iss":"MO","hs":{"c":"r"},"hs":{"c":"y"},'
    b'{"cnf":{"jwk":{"crv":"P-256","kty":"EC","x":"","y":""}},"dh":"****","exp":17,'
    b'"hs":{"c":"g"},"iat":17,"iss":"GD","nbf":17,"nm":"*","sti":'
)

# Wire codes for colour and basis: one letter each keeps the QR small.
COLOUR_CODES: dict[StatusColour, str] = {
    StatusColour.GREEN: "g",
    StatusColour.YELLOW: "y",
    StatusColour.RED: "r",
}
_COLOUR_BY_CODE = {v: k for k, v in COLOUR_CODES.items()}
_TOP_KEYS = frozenset({"iss", "sti", "iat", "nbf", "exp", "hs", "nm", "dh", "cnf"})
_OPTIONAL_KEYS = frozenset({"src"})  # a converted credential's source {r, i}
_ALLOWED_KEYS = _TOP_KEYS | _OPTIONAL_KEYS
_SRC_KEYS = frozenset({"i", "r"})
_HS_KEYS = frozenset({"c"})  # format v2: the colour alone
_CNF_KEYS = frozenset({"jwk"})
_JWK_KEYS = frozenset({"crv", "kty", "x", "y"})
_MAX_JSON_INT = 2**53 - 1  # I-JSON (RFC 7493 §2.2): integers exactly representable
_COORD_B64_CHARS = 43  # unpadded base64url characters of a 32-byte coordinate
_B64URL_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_TO_STANDARD_B64 = bytes.maketrans(b"-_", b"+/")  # RFC 4648 §5 -> §4 alphabet
# Alphabet characters whose 6-bit value ends in two zero bits (value % 4 == 0).
_LOW_BITS_CLEAR = frozenset(_B64URL_ALPHABET[::4])


def claims_to_json(claims: HealthClaims) -> bytes:
    """The canonical JSON of the claims (without kid, which lives in the header)."""
    x, y = p256_point_from_der(claims.holder_key)
    # Format v2: the status block is the colour alone (no basis, no basis time).
    hs: dict[str, Any] = {"c": COLOUR_CODES[claims.colour]}
    obj = {
        "iss": claims.region,
        "sti": claims.status_index,
        "iat": claims.issued_at,
        "nbf": claims.not_before,
        "exp": claims.expires_at,
        "hs": hs,
        "nm": claims.masked_name,
        "dh": claims.document_hint,
        # RFC 7800 §3.2: the holder's device key as a JWK confirmation method.
        "cnf": {"jwk": {"crv": "P-256", "kty": "EC", "x": b64url(x), "y": b64url(y)}},
    }
    if claims.source is not None:
        # The source credential of a conversion: region and status index (~20 bytes).
        obj["src"] = {"i": claims.source.status_index, "r": claims.source.region}
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


def deflate(data: bytes) -> bytes:
    """Raw DEFLATE (RFC 1951) with the preset dictionary."""
    c = zlib.compressobj(
        DEFLATE_LEVEL,
        zlib.DEFLATED,
        _RAW_DEFLATE_WBITS,
        _MEM_LEVEL,
        zlib.Z_DEFAULT_STRATEGY,
        zdict=PRESET_DICTIONARY,
    )
    return c.compress(data) + c.flush()


def inflate(data: bytes, limit: int = MAX_INFLATED_BYTES) -> bytes:
    """Inflate raw DEFLATE, refusing output beyond `limit` bytes, truncated streams and
    trailing garbage."""
    d = zlib.decompressobj(_RAW_DEFLATE_WBITS, zdict=PRESET_DICTIONARY)
    try:
        out = d.decompress(data, limit)
    except zlib.error as e:
        raise MalformedError(f"expected a raw DEFLATE payload: {e}") from e
    if d.unconsumed_tail:
        raise TooLargeError(f"payload inflates beyond {limit} bytes")
    if not d.eof:
        raise MalformedError("DEFLATE payload is truncated")
    if d.unused_data:
        raise MalformedError(f"{len(d.unused_data)} bytes after the DEFLATE stream")
    return out


def encode_payload(claims: HealthClaims) -> bytes:
    """The JWS payload bytes: deflated canonical claims JSON."""
    return deflate(claims_to_json(claims))


def _int(obj: dict[str, Any], name: str) -> int:
    v = obj.get(name)
    if type(v) is not int or not 0 <= v <= _MAX_JSON_INT:
        raise MalformedError(f"claim {name!r}: expected a non-negative integer, found {v!r}")
    return v


def _str(obj: dict[str, Any], name: str) -> str:
    v = obj.get(name)
    if not isinstance(v, str):
        raise MalformedError(f"claim {name!r}: expected a string, found {type(v).__name__}")
    return v


def _coordinate(text: Any) -> bytes:
    """A P-256 coordinate (RFC 7518 §6.2.1.2) read as `b64url_decode` reads it, with
    the common case, 43 alphabet characters, checked without decoding twice."""
    if type(text) is str and len(text) == _COORD_B64_CHARS:
        raw = text.encode("ascii", "ignore")
        # 43 characters carry 258 bits: the last one's two low bits are past the 32nd
        # byte and must be zero for the spelling to be canonical (RFC 4648 §3.5).
        if (
            len(raw) == _COORD_B64_CHARS
            and not raw.translate(None, _B64URL_ALPHABET)
            and raw[-1] in _LOW_BITS_CLEAR
        ):
            return binascii.a2b_base64(raw.translate(_TO_STANDARD_B64) + b"=")
    if not isinstance(text, str):
        raise ValueError(f"expected a base64url coordinate, found {type(text).__name__}")
    # Any other text: the general decoder refuses it with its reason (or decodes a
    # value of another length, which `p256_der_from_point` refuses).
    return b64url_decode(text)


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # dict() and len() run in C: a member-by-member loop cost a few microseconds per
    # object on every scan. A duplicate shows as a dict shorter than the pair list.
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise MalformedError(f"duplicate JSON member {dup!r}")
    return out


def _canonical_object(data: bytes) -> dict[str, Any] | None:
    """The JSON object `data` holds when `data` is exactly its canonical serialisation
    (as `claims_to_json` writes it), else None.

    Every credential is issued in canonical form, so this is what a scan meets. orjson
    parses it, and the object is accepted only when orjson writes it back (compact,
    sorted keys, UTF-8) byte for byte as the input: the input is then orjson's own
    output for that object, a standard JSON text with unique member names (a repeated
    member would be missing from the rewrite) that any conforming parser, `json`
    included, reads as the same object (RFC 8259 §4). About five times faster than
    `json` with a duplicate-refusing hook, which reads everything else.
    """
    try:
        obj = orjson.loads(data)
        if type(obj) is dict and orjson.dumps(obj, option=orjson.OPT_SORT_KEYS) == data:
            return obj
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        pass
    return None


def claims_from_json(data: bytes, kid: str) -> HealthClaims:
    """Parse claims JSON strictly: exact member set, exact types, valid device key.

    Canonical JSON takes a fast path; anything else (other member order, whitespace,
    escapes written another way, duplicate members) is read by `json` with every
    member seen, and judged by the same checks below."""
    obj = _canonical_object(data)
    if obj is None:
        try:
            obj = json.loads(data.decode("utf-8"), object_pairs_hook=_reject_duplicates)
        except (UnicodeDecodeError, ValueError, RecursionError) as e:
            raise MalformedError(f"expected UTF-8 JSON claims: {e}") from e
    # Member sets compared as dict key views: the same test as on sets, none built.
    if not isinstance(obj, dict) or not _TOP_KEYS <= obj.keys() <= _ALLOWED_KEYS:
        found = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
        raise MalformedError(f"expected claims {sorted(_TOP_KEYS)} [+ src], found {found}")
    source: SourceRef | None = None
    if "src" in obj:
        src = obj["src"]
        if not isinstance(src, dict) or src.keys() != _SRC_KEYS:
            raise MalformedError("claim 'src': expected {i, r}")
    hs = obj["hs"]
    if not isinstance(hs, dict) or hs.keys() != _HS_KEYS:
        # Format v2: a basis (`b`) or basis time (`t`) is refused, not ignored.
        raise MalformedError("claim 'hs': expected exactly {c}")
    colour = _COLOUR_BY_CODE.get(hs["c"]) if isinstance(hs["c"], str) else None
    if colour is None:
        raise MalformedError(f"unknown status colour code {hs['c']!r}")
    cnf = obj["cnf"]
    jwk = cnf.get("jwk") if isinstance(cnf, dict) and cnf.keys() == _CNF_KEYS else None
    if not isinstance(jwk, dict) or jwk.keys() != _JWK_KEYS:
        raise MalformedError("claim 'cnf': expected {jwk: {crv, kty, x, y}}")
    if jwk["kty"] != "EC" or jwk["crv"] != "P-256":
        raise MalformedError(f"device key: expected EC P-256, found {jwk['kty']}/{jwk['crv']}")
    iss, nm, dh = obj["iss"], obj["nm"], obj["dh"]
    sti, iat, nbf, exp = obj["sti"], obj["iat"], obj["nbf"], obj["exp"]
    # The type checks of `_str` and `_int`, in one expression for every scan; the
    # helpers run only to name the claim that failed.
    if not (
        type(iss) is str
        and type(nm) is str
        and type(dh) is str
        and type(sti) is int
        and type(iat) is int
        and type(nbf) is int
        and type(exp) is int
        and 0 <= sti <= _MAX_JSON_INT
        and 0 <= iat <= _MAX_JSON_INT
        and 0 <= nbf <= _MAX_JSON_INT
        and 0 <= exp <= _MAX_JSON_INT
    ):
        for name in ("iss", "nm", "dh"):
            _str(obj, name)
        for name in ("sti", "iat", "nbf", "exp"):
            _int(obj, name)
    try:
        if "src" in obj:
            source = SourceRef(_str(obj["src"], "r"), _int(obj["src"], "i"))
        holder_key = p256_der_from_point(_coordinate(jwk["x"]), _coordinate(jwk["y"]))
        return HealthClaims(iss, kid, sti, iat, nbf, exp, colour, nm, dh, holder_key, source)
    except (ValueError, TypeError, ClaimsError, KeyFormatError) as e:
        raise MalformedError(f"invalid claims: {e}") from e


def decode_payload(payload: bytes, kid: str) -> HealthClaims:
    """Inflate (bounded) and parse a JWS payload."""
    return claims_from_json(inflate(payload), kid)
