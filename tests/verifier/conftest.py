"""Credentials, presentations and trust states for the verifier's tests.

A small in-test issuer: one registered ES256 key per region, a device key, and helpers
to mint the presentations the scenarios need (valid, revoked, expired, stale, forged,
from an unknown region). Everything is computed at a fixed reference time T0.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from credential.claims import HealthClaims, StatusColour
from credential.issue import sign_credential
from credential.keys import SigningAlg, generate_private_key, key_id, public_key_der
from credential.presentation import make_presentation
from credential.trust import InMemoryTrustState, RegisteredKey

T0 = 1_800_000_001.0  # one second into a 30-second holder-proof window
DAY = 86_400  # seconds


@dataclass
class Mint:
    """Issues credentials for GD (registered) and for a region outside the trust state."""

    trust: InMemoryTrustState = field(default_factory=InMemoryTrustState)
    keys: dict[str, Any] = field(default_factory=dict)
    kids: dict[str, str] = field(default_factory=dict)
    device: Any = field(default_factory=lambda: generate_private_key(SigningAlg.ES256))
    next_index: int = 1

    def register(self, region: str, synced: bool = True) -> None:
        key = generate_private_key(SigningAlg.ES256)
        der = public_key_der(key)
        self.keys[region] = key
        self.kids[region] = key_id(der)
        if synced:
            self.trust.add_key(
                RegisteredKey(region, key_id(der), SigningAlg.ES256, der, int(T0 - 30 * DAY))
            )
            self.trust.sync_times[region] = int(T0 - 60)

    def claims(self, region: str = "GD", **over: Any) -> HealthClaims:
        index = self.next_index
        self.next_index += 1
        base = HealthClaims(
            region=region,
            kid=self.kids[region],
            status_index=index,
            issued_at=int(T0 - DAY),
            not_before=int(T0 - DAY),
            expires_at=int(T0 + 7 * DAY),
            colour=StatusColour.GREEN,
            masked_name="C** T** M***",
            document_hint="***4567",
            holder_key=public_key_der(self.device),
        )
        return replace(base, **over)

    def present(self, claims: HealthClaims, at: float = T0, signer: Any = None) -> str:
        key = signer if signer is not None else self.keys[claims.region]
        jws = sign_credential(claims, key, SigningAlg.ES256)
        return make_presentation(jws, self.device, at)

    def forge(self) -> str:
        """A credential whose payload was altered after signing (red made green)."""
        red = self.claims(colour=StatusColour.RED)
        genuine = sign_credential(red, self.keys["GD"], SigningAlg.ES256)
        wanted = sign_credential(
            replace(red, colour=StatusColour.GREEN), self.keys["GD"], SigningAlg.ES256
        )
        header, payload, _ = wanted.split(".")
        forged = f"{header}.{payload}.{genuine.split('.')[2]}"
        return make_presentation(forged, self.device, T0)

    def scenarios(self) -> dict[str, str]:
        """One presentation per scenario of the end-to-end tests."""
        revoked = self.claims()
        self.trust.revoked.add(("GD", revoked.status_index))
        return {
            "valid": self.present(self.claims()),
            "yellow": self.present(self.claims(colour=StatusColour.YELLOW)),
            "revoked": self.present(revoked),
            "expired": self.present(
                self.claims(
                    issued_at=int(T0 - 9 * DAY),
                    not_before=int(T0 - 9 * DAY),
                    expires_at=int(T0 - 2 * DAY),
                )
            ),
            # a screenshot taken two minutes earlier, shown again now
            "stale_screenshot": self.present(self.claims(), at=T0 - 120),
            # a red credential turned green: the genuine signature over other claims
            "forged": self.forge(),
            "unknown_region": self.present(self.claims(region="XX")),
        }


@pytest.fixture()
def mint() -> Mint:
    m = Mint()
    m.register("GD")
    m.register("MO")
    m.register("XX", synced=False)
    return m
