"""The credential package's exception tree: one root, one class per failure.

Verification maps each class to a reason code staff can read (`credential.verdict`).
"""

from __future__ import annotations


class CredentialError(Exception):
    """Root of every error raised by the credential package."""


class ClaimsError(CredentialError, ValueError):
    """Claims that cannot be built: a field is missing, malformed or out of range."""
