"""The credential package's exception tree: one root, one class per failure.

Every failure of the verification checklist is a `VerificationError` subclass that
carries the `Reason` staff will read (`credential.verdict.describe`). Errors of the
issuing and presenting side (bad claims, keys, a credential the wallet cannot frame)
sit beside them under the same root.
"""

from __future__ import annotations

from typing import ClassVar

from credential.reasons import Reason


class CredentialError(Exception):
    """Root of every error raised by the credential package."""


class ClaimsError(CredentialError, ValueError):
    """Claims that cannot be built: a field is missing, malformed or out of range."""


class KeyFormatError(CredentialError, ValueError):
    """A key (PEM, DER, JWK) that cannot be loaded or has the wrong type or curve."""


class PresentationFormatError(CredentialError, ValueError):
    """A credential the wallet cannot frame as a presentation (non-canonical header)."""


class VerificationError(CredentialError):
    """A checklist step refused the presentation; `reason` names the step's outcome."""

    reason: ClassVar[Reason] = Reason.MALFORMED


class MalformedError(VerificationError):
    reason = Reason.MALFORMED


class UnsupportedVersionError(VerificationError):
    reason = Reason.UNSUPPORTED_VERSION


class TooLargeError(VerificationError):
    reason = Reason.TOO_LARGE


class ForeignCodeError(VerificationError):
    """The QR holds a health code of another scheme (`credential.foreign`): readable,
    but not a HealthBridge presentation and not accepted at a HealthBridge checkpoint."""


class EuDccCodeError(ForeignCodeError):
    reason = Reason.FOREIGN_EU_DCC


class SmartHealthCardCodeError(ForeignCodeError):
    reason = Reason.FOREIGN_SHC


class UnknownRegionError(VerificationError):
    reason = Reason.UNKNOWN_REGION


class UnknownKeyError(VerificationError):
    reason = Reason.UNKNOWN_KEY


class StationNeedsSyncError(VerificationError):
    reason = Reason.STATION_NEEDS_SYNC


class KeyRegionMismatchError(VerificationError):
    reason = Reason.KEY_REGION_MISMATCH


class KeyCompromisedError(VerificationError):
    reason = Reason.KEY_COMPROMISED


class KeyRetiredError(VerificationError):
    reason = Reason.KEY_RETIRED


class KeyNotActiveError(VerificationError):
    reason = Reason.KEY_NOT_ACTIVE


class AlgorithmMismatchError(VerificationError):
    reason = Reason.ALG_MISMATCH


class BadSignatureError(VerificationError):
    reason = Reason.BAD_SIGNATURE


class ExpiredError(VerificationError):
    reason = Reason.EXPIRED


class NotYetValidError(VerificationError):
    reason = Reason.NOT_YET_VALID


class HolderProofInvalidError(VerificationError):
    reason = Reason.HOLDER_PROOF_INVALID


class ProofStaleError(VerificationError):
    reason = Reason.PROOF_STALE


class ProofReplayedError(VerificationError):
    reason = Reason.PROOF_REPLAYED


class ChallengeMismatchError(VerificationError):
    reason = Reason.CHALLENGE_MISMATCH


class RevokedError(VerificationError):
    reason = Reason.REVOKED


class RevocationUnknownError(VerificationError):
    reason = Reason.REVOCATION_UNKNOWN


class SourceRevokedError(VerificationError):
    reason = Reason.SOURCE_REVOKED


class NotAnchoredError(VerificationError):
    reason = Reason.NOT_ANCHORED


class NotYetAnchoredError(VerificationError):
    reason = Reason.NOT_YET_ANCHORED
