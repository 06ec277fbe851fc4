"""The issuer package's exception tree: one root, one class per failure the API reports.

Every error carries the stable `code` the JSON API puts in `{"error": code}` and the
HTTP status it maps to, so the web layer never guesses. Messages say what was expected
and what was found, and never contain a document number or a name.
"""

from __future__ import annotations


class IssuerError(Exception):
    """Root of every error raised by the issuer package."""

    code = "issuer_error"
    http_status = 400

    def __init__(self, message: str, **extra: str) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra


class ConfigError(IssuerError):
    """A configuration file or variable is missing or malformed."""

    code = "config_error"
    http_status = 500


class BadRequestError(IssuerError):
    """The request body or parameters are malformed."""

    code = "bad_request"


class WrongCodeError(IssuerError):
    """The one-time enrolment code does not match."""

    code = "wrong_code"
    http_status = 401


class CodeExpiredError(IssuerError):
    """The one-time enrolment code expired or was already used."""

    code = "code_expired"
    http_status = 401


class RateLimitedError(IssuerError):
    """Too many attempts for this document number or client address."""

    code = "rate_limited"
    http_status = 429


class UnknownResidentError(IssuerError):
    """No resident of this region has that document number."""

    code = "unknown_resident"
    http_status = 404


class UnauthorizedError(IssuerError):
    """Missing or invalid credentials on an authenticated endpoint."""

    code = "unauthorized"
    http_status = 401


class PermissionDeniedError(IssuerError):
    """The actor's region or role does not allow the operation."""

    code = "permission_denied"
    http_status = 403


# The service-layer contract names this error `PermissionDenied`.
PermissionDenied = PermissionDeniedError


class NotFoundError(IssuerError):
    """The credential, key or record asked for does not exist."""

    code = "not_found"
    http_status = 404


class ConflictError(IssuerError):
    """The operation does not fit the current state (e.g. reinstating an active credential)."""

    code = "conflict"
    http_status = 409


class ConversionSourceRevokedError(ConflictError):
    """A converted holder's source credential was revoked in its home region: no
    credential is issued here any more (the holder converts a valid one again)."""

    code = "source_revoked"


class PresentationRefusedError(IssuerError):
    """A cross-region presentation failed verification; `reason` names the check."""

    code = "presentation_refused"
    http_status = 422

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message, reason=reason)
        self.reason = reason


class ShardUnavailableError(IssuerError):
    """A credential would expire in no shard the region's log can take now (before the
    plan's epoch, or beyond its max_validity_s): refused before signing, never filed in
    a shard it does not belong to (ledger.log.shards)."""

    code = "shard_unavailable"
    http_status = 503


class SigningKeyError(IssuerError):
    """No usable signing key, or a key operation that the key's state forbids."""

    code = "key_unavailable"
    http_status = 503


class LedgerUnavailableError(IssuerError):
    """The region's ledger node could not be reached or refused a submission."""

    code = "ledger_unavailable"
    http_status = 503


class RecordError(IssuerError):
    """A health record or resident row is malformed (CSV import or API)."""

    code = "bad_record"
