"""An in-memory issuer for the wallet's logic tests: real credentials, no sockets.

It signs real credentials (credential.issue) with a real ES256 key and follows the
contract's behaviour: codes per document, a new credential when the status changes,
conversion of a presentation from another region bound to the same device key.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import ec

from credential.claims import HealthClaims, StatusColour
from credential.issue import read_claims_unverified, sign_credential
from credential.keys import SigningAlg, generate_private_key, key_id, public_key_der
from credential.presentation import parse_presentation
from credential.trust import InMemoryTrustState, RegisteredKey
from mobile_stub.client import CodeDelivery, IssuedCredential
from mobile_stub.errors import IssuerRefusedError, IssuerUnreachableError, WrongCodeError
from mobile_stub.store import StatusSummary

VALIDITY_S = 24 * 3600


@dataclass
class Holder:
    device_der: bytes
    status_index: int
    colour: StatusColour
    credential: str = ""


@dataclass
class FakeIssuer:
    region: str
    now: float
    base_url: str = ""
    online: bool = True
    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: generate_private_key())
    holders: dict[str, Holder] = field(default_factory=dict)
    codes: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.base_url = self.base_url or f"http://issuer.{self.region.lower()}.invalid"

    @property
    def kid(self) -> str:
        return key_id(public_key_der(self.key))

    def register(self, trust: InMemoryTrustState) -> None:
        trust.add_key(
            RegisteredKey(self.region, self.kid, SigningAlg.ES256, public_key_der(self.key), 0)
        )
        trust.sync_times[self.region] = int(self.now)

    def _check_online(self) -> None:
        if not self.online:
            raise IssuerUnreachableError(f"issuer unreachable at {self.base_url}")

    def _issue(self, holder_id: str) -> IssuedCredential:
        h = self.holders[holder_id]
        now = int(self.now)
        claims = HealthClaims(
            region=self.region,
            kid=self.kid,
            status_index=h.status_index,
            issued_at=now,
            not_before=now,
            expires_at=now + VALIDITY_S,
            colour=h.colour,
            masked_name="C** T** M**",
            document_hint="**34",
            holder_key=h.device_der,
        )
        h.credential = sign_credential(claims, self.key, SigningAlg.ES256)
        return IssuedCredential(
            holder_id,
            h.credential,
            StatusSummary(str(h.colour), "vaccination", claims.expires_at),
        )

    def request_code(self, document_number: str) -> CodeDelivery:
        self._check_online()
        self.codes[document_number] = "123456"
        return CodeDelivery("dev file", 600)

    def enrol(self, document_number: str, code: str, device_public_der: bytes) -> IssuedCredential:
        self._check_online()
        if self.codes.get(document_number) != code:
            raise WrongCodeError("wrong_code", "issuer refused (wrong_code): wrong code", 400)
        holder_id = f"{self.region.lower()}-holder-{len(self.holders):04d}"
        self.holders[holder_id] = Holder(device_public_der, len(self.holders), StatusColour.GREEN)
        return self._issue(holder_id)

    def fetch_credential(
        self, holder_id: str, device_key: ec.EllipticCurvePrivateKey, now: int
    ) -> IssuedCredential:
        self._check_online()
        h = self.holders[holder_id]
        if public_key_der(device_key) != h.device_der:
            raise IssuerRefusedError("unauthorized", "issuer refused (unauthorized)", 401)
        current = read_claims_unverified(h.credential)
        if current.colour != h.colour:
            return self._issue(holder_id)
        return IssuedCredential(
            holder_id, h.credential, StatusSummary(str(h.colour), "vaccination", current.expires_at)
        )

    def convert(
        self, presentation: str, device_public_der: bytes | None = None
    ) -> IssuedCredential:
        self._check_online()
        claims = read_claims_unverified(parse_presentation(presentation).credential_jws)
        holder_id = f"{self.region.lower()}-conv-{len(self.holders):04d}"
        key = device_public_der or claims.holder_key
        self.holders[holder_id] = Holder(key, len(self.holders), claims.colour)
        return self._issue(holder_id)

    def set_colour(self, holder_id: str, colour: StatusColour) -> None:
        self.holders[holder_id].colour = colour
