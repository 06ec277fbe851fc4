"""Print a worked example of the credential and presentation format, byte for byte.

`python -m credential.format_example` derives fixed keys from fixed scalars, issues a
credential, builds a presentation at a fixed time and prints every intermediate value
(docs/credential-format.md quotes one run). ECDSA signatures are randomised, so the
signature bytes differ between runs; everything else is reproducible. Not used by the
verifier.
"""

from __future__ import annotations

import json

import segno
from cryptography.hazmat.primitives.asymmetric import ec

from credential.base45 import b45decode
from credential.claims import HealthClaims, StatusColour
from credential.issue import credential_digest, sign_credential, split_jws
from credential.keys import SigningAlg, key_id, public_jwk, public_key_der
from credential.payload import claims_to_json
from credential.presentation import (
    QR_PREFIX,
    make_presentation,
    parse_presentation,
    proof_signing_input,
    resolve_window,
)
from credential.trust import InMemoryTrustState, RegisteredKey
from credential.verify import verify_presentation

ISSUER_SCALAR = 0x1D1 * 2**200 + 0xC0FFEE  # fixed, for the example only
DEVICE_SCALAR = 0x2E2 * 2**200 + 0xBEEF  # fixed, for the example only
NOW = 1_767_225_615  # 2026-01-01T00:00:15Z
DAY = 86_400  # seconds


def main() -> None:
    issuer = ec.derive_private_key(ISSUER_SCALAR, ec.SECP256R1())
    device = ec.derive_private_key(DEVICE_SCALAR, ec.SECP256R1())
    kid = key_id(public_key_der(issuer))
    claims = HealthClaims(
        region="GD",
        kid=kid,
        status_index=123_456_789,
        issued_at=NOW - 3600,
        not_before=NOW - 3600,
        expires_at=NOW - 3600 + 30 * DAY,
        colour=StatusColour.GREEN,
        masked_name="欧阳*明",
        document_hint="C1234****",
        holder_key=public_key_der(device),
    )
    print("issuer public JWK:", json.dumps(public_jwk(public_key_der(issuer)), sort_keys=True))
    print("issuer kid:", kid)
    print("device public key (DER SPKI hex):", public_key_der(device).hex())
    claims_json = claims_to_json(claims)
    print(f"claims JSON ({len(claims_json)} bytes UTF-8):", claims_json.decode())
    jws = sign_credential(claims, issuer, SigningAlg.ES256)
    parts = split_jws(jws)
    print("JWS header:", parts.header.decode())
    print(f"JWS payload (raw DEFLATE, {len(parts.payload)} bytes hex):", parts.payload.hex())
    print(f"compact JWS ({len(jws)} chars):", jws)
    digest = credential_digest(jws)
    print("credential digest (SHA-256 of the ASCII JWS):", digest.hex())
    text = make_presentation(jws, device, NOW)
    p = parse_presentation(text)
    window = resolve_window(p.window_tag, NOW)
    print(f"now: {NOW}, window: {window} (tag 0x{p.window_tag:02x})")
    print("proof signing input (hex):", proof_signing_input(digest, window, None).hex())
    frame = b45decode(text[len(QR_PREFIX) :])
    kid_len = frame[1]
    cut = [0, 1, 2, 2 + kid_len, 66 + kid_len, 67 + kid_len, 68 + kid_len, 132 + kid_len]
    names = ["form", "kid length", "kid", "JWS signature r||s", "flags", "window tag", "proof r||s"]
    print(f"frame ({len(frame)} bytes):")
    for name, a, b in zip(names, cut, cut[1:], strict=False):
        print(f"  {name:20} {frame[a:b].hex()}")
    print(f"  {'payload':20} {frame[cut[-1] :].hex()}")
    print(f"QR text ({len(text)} chars):", text)
    qr = segno.make(text, error="m", boost_error=False)
    print(f"QR: version {qr.version}, ECC {qr.error}, mode {qr.mode}")
    trust = InMemoryTrustState()
    trust.add_key(RegisteredKey("GD", kid, SigningAlg.ES256, public_key_der(issuer), 0))
    trust.sync_times["GD"] = NOW - 60
    print("verdict:", verify_presentation(text, trust, NOW).decision)


if __name__ == "__main__":
    main()
