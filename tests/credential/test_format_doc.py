"""The worked example in docs/credential-format.md verifies, so the page stays true."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from credential.issue import credential_digest, read_claims_unverified
from credential.keys import SigningAlg, key_id, public_key_der
from credential.payload import PRESET_DICTIONARY
from credential.presentation import parse_presentation
from credential.trust import InMemoryTrustState, RegisteredKey
from credential.verdict import Decision
from credential.verify import verify_presentation

DOC = Path(__file__).resolve().parents[2] / "docs" / "credential-format.md"


def _line(text: str, label: str) -> str:
    m = re.search(rf"^{re.escape(label)}[^:]*: (.+)$", text, re.MULTILINE)
    assert m, f"worked example lacks {label!r}"
    return m.group(1)


def _b64(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def test_worked_example_in_the_format_page_verifies() -> None:
    text = DOC.read_text(encoding="utf-8")
    jwk = json.loads(_line(text, "issuer public JWK"))
    issuer = ec.EllipticCurvePublicNumbers(
        int.from_bytes(_b64(jwk["x"]), "big"), int.from_bytes(_b64(jwk["y"]), "big"), ec.SECP256R1()
    ).public_key()
    der = public_key_der(issuer)
    kid = _line(text, "issuer kid")
    assert key_id(der) == kid
    now = int(_line(text, "now").split(",")[0])
    qr = _line(text, "QR text")
    jws = _line(text, "compact JWS")
    trust = InMemoryTrustState()
    trust.add_key(RegisteredKey("GD", kid, SigningAlg.ES256, der, not_before=0))
    trust.sync_times["GD"] = now - 60
    assert verify_presentation(qr, trust, now).decision is Decision.ADMIT
    assert parse_presentation(qr).credential_jws == jws
    assert credential_digest(jws).hex() == _line(text, "credential digest")
    claims_json = _line(text, "claims JSON")
    assert read_claims_unverified(jws).masked_name in claims_json


def test_format_page_quotes_the_preset_dictionary_exactly() -> None:
    assert PRESET_DICTIONARY.decode("ascii") in DOC.read_text(encoding="utf-8")
