"""Render a presentation's QR text as a QR code: SVG data URL, PNG file or terminal text.

Uses segno. Error correction M is the design's target (a holder-bound presentation
fits version 15 at level M); segno may raise the level when the symbol has room to
spare at the same version, which only makes scanning easier. The quiet zone is the
4 modules ISO/IEC 18004 §6.3.8 asks for: phones and station cameras need it.

This module does not make presentations (see `mobile_stub.wallet`) and does not
decide when to refresh them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

import segno

from mobile_stub.errors import WalletError

ERROR_LEVEL = "m"  # ISO/IEC 18004 level M, the design's target
QUIET_ZONE_MODULES = 4  # ISO/IEC 18004 §6.3.8
PNG_SCALE = 8  # pixels per module in saved PNG files
SVG_SCALE = 6  # user units per module; the page scales the SVG to the screen anyway
DARK = "#000000"
LIGHT = "#ffffff"


class QrRenderError(WalletError):
    """The text does not fit a QR code (it is far above any presentation)."""


def make_qr(text: str) -> segno.QRCode:
    try:
        return segno.make(text, error=ERROR_LEVEL, micro=False)
    except segno.DataOverflowError as e:
        raise QrRenderError(f"presentation of {len(text)} characters does not fit a QR code") from e


def svg_data_url(text: str) -> str:
    qr = make_qr(text)
    url: str = qr.svg_data_uri(
        scale=SVG_SCALE, border=QUIET_ZONE_MODULES, dark=DARK, light=LIGHT, omitsize=True
    )
    return url


def qr_version(text: str) -> int:
    version = make_qr(text).version
    assert isinstance(version, int)  # never a Micro QR: micro=False above
    return version


def save_png(text: str, path: Path, scale: int = PNG_SCALE) -> None:
    try:
        make_qr(text).save(str(path), kind="png", scale=scale, border=QUIET_ZONE_MODULES)
    except OSError as e:
        raise WalletError(f"cannot write {path}: {e.strerror}") from e


def print_terminal(text: str, out: TextIO) -> None:
    """Print the QR with ANSI blocks (segno's terminal writer), quiet zone included."""
    make_qr(text).terminal(out=out, border=QUIET_ZONE_MODULES, compact=True)
