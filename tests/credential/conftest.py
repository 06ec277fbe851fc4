"""Fixtures for the credential tests: two regions' issuer keys, a device, a trust state."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import pytest

from credential.claims import HealthClaims, StatusColour
from credential.issue import sign_credential
from credential.keys import PrivateKey, SigningAlg, generate_private_key, key_id, public_key_der
from credential.trust import InMemoryTrustState, RegisteredKey

NOW = 1_760_000_000  # fixed reference time (Unix seconds), mid-window
DAY = 86_400  # seconds


@dataclass
class World:
    gd_key: PrivateKey
    mo_key: PrivateKey
    device: PrivateKey
    trust: InMemoryTrustState
    now: int = NOW
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def gd_kid(self) -> str:
        return key_id(public_key_der(self.gd_key))

    @property
    def mo_kid(self) -> str:
        return key_id(public_key_der(self.mo_key))

    def claims(self, **changes: Any) -> HealthClaims:
        base = HealthClaims(
            region="GD",
            kid=self.gd_kid,
            status_index=424_242,
            issued_at=self.now - DAY,
            not_before=self.now - DAY,
            expires_at=self.now + 29 * DAY,
            colour=StatusColour.GREEN,
            masked_name="张*明",
            document_hint="H****5678",
            holder_key=public_key_der(self.device),
        )
        return dataclasses.replace(base, **changes)

    def credential(self, key: PrivateKey | None = None, **changes: Any) -> str:
        key = key or self.gd_key
        alg = SigningAlg.EDDSA if "Ed25519" in type(key).__name__ else SigningAlg.ES256
        return sign_credential(self.claims(**changes), key, alg)


def make_world(now: int = NOW) -> World:
    gd = generate_private_key(SigningAlg.ES256)
    mo = generate_private_key(SigningAlg.EDDSA)
    trust = InMemoryTrustState()
    for region, key, alg in (("GD", gd, SigningAlg.ES256), ("MO", mo, SigningAlg.EDDSA)):
        der = public_key_der(key)
        trust.add_key(RegisteredKey(region, key_id(der), alg, der, not_before=now - 365 * DAY))
        trust.sync_times[region] = now - 60
    return World(gd, mo, generate_private_key(), trust, now)


@pytest.fixture()
def world() -> World:
    return make_world()
