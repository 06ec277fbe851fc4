"""The wallet's exception tree: one root, one class per failure a resident can meet.

Every class carries a one-line message written for the resident (what was expected,
what was found, what to do next); the command line prints it and exits non-zero, the
web page shows it in a banner. Foreign exceptions (OS, JSON, HTTP, cryptography) are
wrapped at the boundary with `raise ... from e`, so nothing else escapes.
"""

from __future__ import annotations


class WalletError(Exception):
    """Root of every error raised by the wallet."""

    exit_code = 1


class NotEnrolledError(WalletError):
    """The wallet holds no credential (for that region)."""

    exit_code = 3


class DeviceKeyMissingError(WalletError):
    """The device key file is absent although the wallet holds credentials bound to it."""

    exit_code = 4


class DeviceKeyCorruptError(WalletError):
    """The device key file exists but cannot be read as a private key."""

    exit_code = 4


class WrongPassphraseError(DeviceKeyCorruptError):
    """The device key is encrypted and the passphrase is missing or wrong."""


class StoreCorruptError(WalletError):
    """The credential store file is not the JSON document the wallet wrote."""

    exit_code = 5


class InsecurePermissionsError(WalletError):
    """A secret file is readable by other users (expected mode 0600)."""

    exit_code = 5


class CredentialExpiredError(WalletError):
    """The stored credential has expired; it must be refreshed online."""

    exit_code = 6


class IssuerError(WalletError):
    """The issuer could not be reached or answered with something the wallet refuses."""

    exit_code = 7


class IssuerUnreachableError(IssuerError):
    """No HTTP answer from the issuer (connection refused, timeout, DNS)."""


class IssuerUnavailableError(IssuerError):
    """The issuer answered, but with a server failure (HTTP 5xx: its database or a key is
    unavailable, or a gateway in front of it has no backend). Like an unreachable
    issuer, it is worth trying again later, and the stored code keeps working."""


class IssuerRefusedError(IssuerError):
    """The issuer answered with a 4xx JSON error body.

    `code` is the contract's error code (wrong_code, code_expired, rate_limited, ...),
    `reason` the verifier reason the issuer gave when it refused a presentation.
    """

    def __init__(self, code: str, message: str, status: int, reason: str | None = None):
        super().__init__(message)
        self.code = code
        self.status = status
        self.reason = reason


class WrongCodeError(IssuerRefusedError):
    """The one-time enrolment code was wrong or has expired."""


class IssuerProtocolError(IssuerError):
    """The issuer answered, but not with the JSON the contract describes."""
