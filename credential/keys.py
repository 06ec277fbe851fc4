"""Signing algorithms and key helpers for credentials and device proofs."""

from __future__ import annotations

from enum import StrEnum


class SigningAlg(StrEnum):
    """JWS algorithms a region may register for a key (RFC 7518 §3.4, RFC 8037 §3.1)."""

    ES256 = "ES256"
    EDDSA = "EdDSA"
