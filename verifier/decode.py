"""QR decoding of camera frames: zxing-cpp first, then a short, time-bounded retry chain.

What it does: takes one frame (8-bit grayscale or BGR numpy array), looks for QR codes
only (never other symbologies: a stray Codabar hit must not become a "presentation"),
and returns each code's exact payload bytes with its corner polygon in frame pixels.
When the plain pass finds nothing, it tries a few cheap variants, each of which rescues
a different class of real photographs (glare, small codes, moiré, print bleed):

1. the other zxing binarizer (GlobalHistogram) — bright spots and glare;
2. a 2x upscale — of the region zxing located but could not decode when there is one,
   otherwise of the whole frame when the frame is small;
3. a slight Gaussian blur — moiré of a phone screen and over-sharpened codes;
4. contrast-limited histogram equalisation (CLAHE), with either binarizer — low
   contrast, shadows, damage;
5. Otsu thresholding — washed-out codes;
6. a wide Gaussian adaptive threshold — a bright spot across part of the code.

Every attempt checks the elapsed time against `DecodeLimits.budget_ms` first, so one
frame stays within its time budget and the live view does not stall.

What it does not do: interpret the payload (that is `credential.presentation`), capture
frames (`verifier.frames`) or keep state between frames (`verifier.station`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import zxingcpp

from verifier.errors import DecodeInputError

Image = npt.NDArray[Any]  # 8-bit; checked by to_gray at the boundary
Point = tuple[float, float]

SMALL_FRAME_SIDE_PX = 1000  # a whole frame this small or smaller is worth a 2x upscale
SMALL_CODE_SIDE_PX = 220  # a located-but-undecoded code smaller than this is upscaled
CROP_MARGIN = 0.35  # fraction of the located code's size added on every side of a crop
UPSCALE_FACTOR = 2.0
BLUR_KERNEL_PX = 3  # "slight" blur: a 3x3 Gaussian
CLAHE_CLIP_LIMIT = 2.0
CLAHE_TILE_GRID = (8, 8)
ADAPTIVE_BLOCK_PX = 51  # neighbourhood of the adaptive threshold; wider than a module
ADAPTIVE_OFFSET = 2  # grey levels subtracted from the local mean


@dataclass(frozen=True)
class DecodeLimits:
    """How much work one frame may cost.

    The budget is checked before each retry, never in the middle of a zxing call, so a
    frame can overrun it by at most one attempt.
    """

    budget_ms: float = 30.0  # milliseconds per frame, retries included
    max_attempts: int = 10  # plain pass included


DEFAULT_LIMITS = DecodeLimits()


class Attempt(StrEnum):
    """Which pass of the retry chain read the code (for statistics and tuning)."""

    PLAIN = "plain"
    GLOBAL_HISTOGRAM = "global-histogram"
    UPSCALE_CROP = "upscale-crop"
    UPSCALE = "upscale"
    BLUR = "blur"
    CLAHE = "clahe"
    OTSU = "otsu"
    ADAPTIVE = "adaptive"


@dataclass(frozen=True)
class DecodedCode:
    """One QR code read from a frame: its exact payload bytes and where it was."""

    data: bytes
    corners: tuple[Point, Point, Point, Point]  # top-left, top-right, bottom-right, bottom-left
    attempt: Attempt

    @property
    def centre(self) -> Point:
        xs = [p[0] for p in self.corners]
        ys = [p[1] for p in self.corners]
        return (sum(xs) / 4.0, sum(ys) / 4.0)


@dataclass(frozen=True)
class _Pass:
    attempt: Attempt
    image: Image
    scale: float  # image pixels per frame pixel
    offset: Point  # frame coordinates of the image's (0, 0)
    # The binarizer's name, resolved per call: holding nanobind enum objects in module
    # state makes the extension report leaks at interpreter exit.
    binarizer: str = "LocalAverage"


def to_gray(frame: Image) -> Image:
    """A grayscale view of a frame; raises DecodeInputError on anything but 8-bit images."""
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
        found = getattr(frame, "dtype", type(frame).__name__)
        raise DecodeInputError(f"expected an 8-bit numpy image, found {found}")
    if frame.ndim == 2:
        return frame
    if frame.ndim == 3 and frame.shape[2] == 3:
        return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    if frame.ndim == 3 and frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2GRAY)
    raise DecodeInputError(f"expected a grayscale or BGR image, found shape {frame.shape}")


def _corners(pos: zxingcpp.Position) -> tuple[Point, Point, Point, Point]:
    return (
        (float(pos.top_left.x), float(pos.top_left.y)),
        (float(pos.top_right.x), float(pos.top_right.y)),
        (float(pos.bottom_right.x), float(pos.bottom_right.y)),
        (float(pos.bottom_left.x), float(pos.bottom_left.y)),
    )


def _read(p: _Pass, with_errors: bool = False) -> list[zxingcpp.Barcode]:
    return list(
        zxingcpp.read_barcodes(
            p.image,
            formats=zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode),  # QR only
            binarizer=getattr(zxingcpp.Binarizer, p.binarizer),
            return_errors=with_errors,
        )
    )


def _to_frame(p: _Pass, corners: tuple[Point, ...]) -> tuple[Point, Point, Point, Point]:
    a, b, c, d = ((x / p.scale + p.offset[0], y / p.scale + p.offset[1]) for x, y in corners)
    return (a, b, c, d)


def _crop_box(
    corners: tuple[Point, ...], shape: tuple[int, ...]
) -> tuple[int, int, int, int] | None:
    xs = [c[0] for c in corners]
    ys = [c[1] for c in corners]
    side = max(max(xs) - min(xs), max(ys) - min(ys))
    if side <= 0 or side >= SMALL_CODE_SIDE_PX:
        return None
    margin = side * CROP_MARGIN
    x0 = max(0, int(min(xs) - margin))
    y0 = max(0, int(min(ys) - margin))
    x1 = min(shape[1], int(max(xs) + margin) + 1)
    y1 = min(shape[0], int(max(ys) + margin) + 1)
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None
    return (x0, y0, x1, y1)


def _retries(gray: Image, located: Sequence[tuple[Point, ...]]) -> Iterator[_Pass]:
    """The retry chain, built lazily so a pass costs nothing until it is tried."""
    yield _Pass(Attempt.GLOBAL_HISTOGRAM, gray, 1.0, (0.0, 0.0), "GlobalHistogram")
    boxes = [b for b in (_crop_box(c, gray.shape) for c in located) if b is not None]
    for x0, y0, x1, y1 in boxes:
        crop = gray[y0:y1, x0:x1]
        up = cv2.resize(
            crop, None, fx=UPSCALE_FACTOR, fy=UPSCALE_FACTOR, interpolation=cv2.INTER_CUBIC
        )
        yield _Pass(Attempt.UPSCALE_CROP, up, UPSCALE_FACTOR, (float(x0), float(y0)))
    if not boxes and max(gray.shape) <= SMALL_FRAME_SIDE_PX:
        up = cv2.resize(
            gray, None, fx=UPSCALE_FACTOR, fy=UPSCALE_FACTOR, interpolation=cv2.INTER_CUBIC
        )
        yield _Pass(Attempt.UPSCALE, up, UPSCALE_FACTOR, (0.0, 0.0))
    blurred = cv2.GaussianBlur(gray, (BLUR_KERNEL_PX, BLUR_KERNEL_PX), 0)
    yield _Pass(Attempt.BLUR, blurred, 1.0, (0.0, 0.0))
    clahe = cv2.createCLAHE(clipLimit=CLAHE_CLIP_LIMIT, tileGridSize=CLAHE_TILE_GRID)
    equalised = clahe.apply(gray)
    yield _Pass(Attempt.CLAHE, equalised, 1.0, (0.0, 0.0))
    yield _Pass(Attempt.CLAHE, equalised, 1.0, (0.0, 0.0), "GlobalHistogram")
    _, otsu = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    yield _Pass(Attempt.OTSU, np.asarray(otsu), 1.0, (0.0, 0.0))
    adaptive = cv2.adaptiveThreshold(
        gray,
        255,
        cv2.ADAPTIVE_THRESH_GAUSSIAN_C,
        cv2.THRESH_BINARY,
        ADAPTIVE_BLOCK_PX,
        ADAPTIVE_OFFSET,
    )
    yield _Pass(Attempt.ADAPTIVE, np.asarray(adaptive), 1.0, (0.0, 0.0))


def decode_frame(
    frame: Image,
    limits: DecodeLimits = DEFAULT_LIMITS,
    clock: Callable[[], float] = time.perf_counter,
) -> list[DecodedCode]:
    """Every QR code readable in `frame`, as exact bytes with corners in frame pixels.

    Returns an empty list when nothing is readable within the budget; raises
    DecodeInputError only when `frame` is not an image at all.
    """
    started = clock()
    gray = to_gray(frame)
    plain = _Pass(Attempt.PLAIN, gray, 1.0, (0.0, 0.0))
    # With return_errors zxing also reports codes it located but could not decode:
    # their position tells the retry chain where to look closer.
    results = _read(plain, with_errors=True)
    found = [
        DecodedCode(bytes(r.bytes), _corners(r.position), Attempt.PLAIN) for r in results if r.valid
    ]
    if found:
        return found
    located = [_corners(r.position) for r in results]
    attempts = 1
    for p in _retries(gray, located):
        if attempts >= limits.max_attempts or (clock() - started) * 1000.0 >= limits.budget_ms:
            break
        attempts += 1
        hits = [r for r in _read(p) if r.valid]
        if hits:
            return [
                DecodedCode(bytes(r.bytes), _to_frame(p, _corners(r.position)), p.attempt)
                for r in hits
            ]
    return []
