"""The verifier package's exception tree: one root, one class per failure.

Verification failures of a presentation are not exceptions here: `credential.verify`
turns them into a `Verdict`. These errors cover the station's own edges: cameras, video
files, image folders, the scan log and the station configuration.
"""

from __future__ import annotations


class VerifierError(Exception):
    """Root of every error raised by the verifier package."""


class FrameSourceError(VerifierError):
    """A frame source cannot be opened or stopped delivering frames."""


class CameraUnavailableError(FrameSourceError):
    """A camera (or network stream) failed to open or disappeared, after retries."""


class DecodeInputError(VerifierError, ValueError):
    """An image handed to the decoder is not a 2-D or 3-channel 8-bit array."""


class ScanLogError(VerifierError):
    """The scan log cannot be opened, written or exported."""


class StationConfigError(VerifierError):
    """The station folder or its configuration is missing or malformed."""
