"""The wallet's side of the issuer HTTP API (enrolment, refresh, conversion).

`IssuerApi` is the interface the wallet logic uses; `HttpIssuer` implements it over
`requests` against the issuer's versioned JSON API (`/v1/...`). Every way the exchange
can fail becomes a typed `IssuerError`: no answer (`IssuerUnreachableError`), an HTTP
5xx (`IssuerUnavailableError`), a 4xx JSON error body (`IssuerRefusedError`,
`WrongCodeError`), or an answer that is not what the contract describes
(`IssuerProtocolError`).

Device-authenticated requests carry `Authorization: HB-Device <holder_id>.<ts>.<sig>`
where `sig` is the base64url raw r||s ES256 signature (RFC 7518 §3.4) by the device
key over the ASCII bytes "HB-Device\\n<METHOD>\\n<path>\\n<ts>". The device key signs;
it is never sent.

This module does not store anything and does not read the clock: the caller passes
`now` in.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, Protocol

import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from mobile_stub.errors import (
    IssuerProtocolError,
    IssuerRefusedError,
    IssuerUnavailableError,
    IssuerUnreachableError,
    StoreCorruptError,
    WrongCodeError,
)
from mobile_stub.store import MAX_JWS_CHARS, StatusSummary

DEFAULT_TIMEOUT_S = 10.0  # seconds per request
MAX_RESPONSE_BYTES = 64 * 1024  # bytes; an issuer answer is a credential and a status
AUTH_SCHEME = "HB-Device"
P256_COORD_BYTES = 32  # bytes per r and s in a raw ES256 signature
WRONG_CODE_ERRORS = frozenset({"wrong_code", "code_expired"})


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def device_auth_header(
    holder_id: str, device_key: ec.EllipticCurvePrivateKey, method: str, path: str, now: int
) -> str:
    """The `Authorization` value for a device-signed request, per the issuer contract."""
    message = f"{AUTH_SCHEME}\n{method.upper()}\n{path}\n{now}".encode("ascii")
    der = device_key.sign(message, ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    raw = r.to_bytes(P256_COORD_BYTES, "big") + s.to_bytes(P256_COORD_BYTES, "big")
    return f"{AUTH_SCHEME} {holder_id}.{now}.{b64url(raw)}"


@dataclass(frozen=True)
class CodeDelivery:
    """The issuer's answer to a code request: how the code travels, how long it lives."""

    delivery: str
    expires_in: int


@dataclass(frozen=True)
class IssuedCredential:
    """A credential as the issuer hands it out."""

    holder_id: str
    credential: str
    status: StatusSummary


class IssuerApi(Protocol):
    """What the wallet needs from a region's issuer."""

    base_url: str

    def request_code(self, document_number: str) -> CodeDelivery: ...

    def enrol(
        self, document_number: str, code: str, device_public_der: bytes
    ) -> IssuedCredential: ...

    def fetch_credential(
        self, holder_id: str, device_key: ec.EllipticCurvePrivateKey, now: int
    ) -> IssuedCredential: ...

    def convert(
        self, presentation: str, device_public_der: bytes | None = None
    ) -> IssuedCredential: ...


def _issued(body: dict[str, Any], holder_id: str | None = None) -> IssuedCredential:
    hid = body.get("holder_id", holder_id)
    cred = body.get("credential")
    if not isinstance(hid, str) or not hid:
        raise IssuerProtocolError("issuer answer lacks holder_id")
    if not isinstance(cred, str) or cred.count(".") != 2 or len(cred) > MAX_JWS_CHARS:
        raise IssuerProtocolError("issuer answer lacks a compact JWS credential")
    try:
        status = StatusSummary.from_json(body.get("status"))
    except StoreCorruptError as e:
        raise IssuerProtocolError(f"issuer answer has a malformed status: {e}") from e
    return IssuedCredential(holder_id=hid, credential=cred, status=status)


class HttpIssuer:
    """`IssuerApi` over HTTP with `requests`."""

    def __init__(
        self,
        base_url: str,
        timeout: float = DEFAULT_TIMEOUT_S,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._session = session or requests.Session()

    def _call(
        self,
        method: str,
        path: str,
        expect: int,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        url = self.base_url + path
        try:
            resp = self._session.request(
                method, url, json=body, headers=headers, timeout=self._timeout
            )
        except requests.RequestException as e:
            # Name the kind of failure, not the exception text (it may be long).
            raise IssuerUnreachableError(
                f"issuer unreachable at {self.base_url} ({type(e).__name__}); "
                "check the network and try again"
            ) from e
        if len(resp.content) > MAX_RESPONSE_BYTES:
            raise IssuerProtocolError(f"issuer answer is over {MAX_RESPONSE_BYTES} bytes")
        try:
            data = resp.json()
        except ValueError as e:
            if resp.status_code >= 500:
                raise IssuerUnavailableError(
                    f"issuer failed (HTTP {resp.status_code}); try later"
                ) from e
            raise IssuerProtocolError(
                f"issuer answered HTTP {resp.status_code} without a JSON body"
            ) from e
        if not isinstance(data, dict):
            raise IssuerProtocolError("issuer answered with JSON that is not an object")
        if resp.status_code == expect:
            return data
        if 400 <= resp.status_code < 500:
            code = str(data.get("error", "error"))
            message = str(data.get("message", "")) or code
            reason = data.get("reason")
            cls = WrongCodeError if code in WRONG_CODE_ERRORS else IssuerRefusedError
            raise cls(
                code=code,
                message=f"issuer refused ({code}): {message}",
                status=resp.status_code,
                reason=str(reason) if reason is not None else None,
            )
        if resp.status_code >= 500:
            raise IssuerUnavailableError(f"issuer failed (HTTP {resp.status_code}); try later")
        raise IssuerProtocolError(f"issuer answered HTTP {resp.status_code}, expected {expect}")

    def request_code(self, document_number: str) -> CodeDelivery:
        data = self._call("POST", "/v1/enrolment/code", 202, {"document_number": document_number})
        delivery, expires = data.get("delivery"), data.get("expires_in")
        if (
            not isinstance(delivery, str)
            or isinstance(expires, bool)
            or not isinstance(expires, int)
        ):
            raise IssuerProtocolError("code answer lacks delivery / expires_in")
        return CodeDelivery(delivery=delivery, expires_in=expires)

    def enrol(self, document_number: str, code: str, device_public_der: bytes) -> IssuedCredential:
        body = {
            "document_number": document_number,
            "code": code,
            "device_key": b64url(device_public_der),
        }
        return _issued(self._call("POST", "/v1/enrolment", 201, body))

    def fetch_credential(
        self, holder_id: str, device_key: ec.EllipticCurvePrivateKey, now: int
    ) -> IssuedCredential:
        path = "/v1/credential"
        auth = device_auth_header(holder_id, device_key, "GET", path, now)
        data = self._call("GET", path, 200, headers={"Authorization": auth})
        return _issued(data, holder_id=holder_id)

    def convert(
        self, presentation: str, device_public_der: bytes | None = None
    ) -> IssuedCredential:
        body = {"presentation": presentation}
        if device_public_der is not None:
            # The wallet's key for the new region; the presentation binds its
            # conversion challenge (credential.presentation.conversion_challenge).
            body["device_key"] = b64url(device_public_der)
        return _issued(self._call("POST", "/v1/conversion", 201, body))
