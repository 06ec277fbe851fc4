"""QR decoding of camera frames: zxing-cpp first, then a short, time-bounded retry chain.

What it does: takes one frame (8-bit grayscale, BGR or BGRA numpy array), looks for QR
codes only (never other symbologies: a stray Codabar hit must not become a
"presentation"), and returns each code's exact payload bytes with its corner polygon in
frame pixels.

When the plain pass (zxing-cpp, LocalAverage binarizer) reads nothing, the decoder
first asks whether a retry can pay off at all: if zxing located no candidate symbol
and the frame holds no patch dense in sharp steps of brightness (a QR code's module
edges are; a wall, smooth shading or mild sensor noise are not), it gives up at once,
so frames with no code in view (most live frames) cost one zxing call plus about a
millisecond. Otherwise it tries variants in order of what they rescue per millisecond
(measured on the BoofCV photos at camera size, docs/verifier.md), each of which
rescues a different class of real photographs:

1. each located-but-undecoded region (largest first), cropped and rescaled so the
   code is about `CROP_TARGET_PX` wide, with the GlobalHistogram then the
   LocalAverage binarizer — small, far, or heavily damaged codes;
2. the GlobalHistogram binarizer on the whole frame — bright spots and glare;
3. a darkening gamma — washed-out, over-exposed codes;
4. zxing's "pure" mode — a code filling a clean image whose finder patterns are
   damaged or crowded by dark borders (screenshots, renderings);
5. the frame with its dark background taken away (a black-hat transform: dark areas
   wider than a fifth of the frame become white) — a code whose quiet zone is cut by a
   dark surround touching it, such as a phone's bezel or the dark edge of a card;
6. a brightening gamma — dark, under-exposed codes;
7. a 3x3 median — moire and salt noise on printed or on-screen codes;
8. a 2x upscale of the whole frame when it is small and nothing was located;
9. OpenCV's ArUco-based QR detector on the whole frame scaled down to at most
   `ARUCO_SIDE_PX`, then its plain one at `OPENCV_SIDE_PX` — a second, independently
   written localiser and decoder that reads some codes without a quiet zone or with
   odd finder patterns.

OpenCV's payloads stay byte-exact: its bytes are kept only when they are ASCII (it
transcodes the rest), otherwise zxing decodes the module grid OpenCV sampled.

10. last, OpenCV's plain detector on each located crop — one damaged code, when a
   large frame's budget leaves room.

Pruned because on the BoofCV photos it rescued nothing another pass does not, at
4.8 ms median: contrast-limited histogram equalisation (CLAHE). Tried earlier and dropped
for the same reason: other rescale targets, Otsu and adaptive thresholds, the red or
min/max channel instead of luma, unsharp masking, Gaussian blur, morphological
open/close, a white border around the frame, OpenCV's curved-code decoder; and, for the
shadowed BoofCV photo only OpenCV's plain detector reads at 800 px (50 ms, over the
budget), illumination normalised by a blurred background, adaptive thresholds,
erosion, dilation and medians at several scales, and OpenCV at other sides.

The budget (`DecodeLimits.budget_ms`) is CPU time of the decoding thread
(`time.thread_time`), not wall time: on a busy machine a frame takes longer on the
clock but gets the same work, so what is read does not depend on what else runs.
Each pass carries an estimate of its cost (CPU milliseconds per megapixel of the
image it works on, a p95 measured on this decoder, plus for OpenCV the fixed cost of
a call, which dominates on a crop); a pass starts only when the
budget has room for its estimate, otherwise the chain goes on to cheaper passes. A
frame therefore overruns its budget only by what a pass costs beyond its estimate.

What it does not do: interpret the payload (that is `credential.presentation`), capture
frames (`verifier.frames`) or keep state between frames (`verifier.station`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import zxingcpp

from verifier.errors import DecodeInputError

Image = npt.NDArray[Any]  # 8-bit; checked by to_gray at the boundary
Point = tuple[float, float]
Corners = tuple[Point, Point, Point, Point]

# Early-out: a frame is worth retrying only if some patch of it is dense in sharp steps.
STRUCTURE_SIDE_PX = 640  # frames are scaled down to this long side for the check
STRUCTURE_STEP_MIN = 16  # |4-neighbour Laplacian| in grey levels that counts as a sharp step
STRUCTURE_WINDOW_PX = 16  # side of the patch (in the scaled frame) whose density counts
# Share of sharp-step pixels in the densest patch: every BoofCV photo with a readable code
# measures 0.2 or more, a smooth scene with sensor noise of sigma 4 below 0.08.
STRUCTURE_MIN_DENSITY = 0.15

SMALL_FRAME_SIDE_PX = 1000  # a whole frame this small or smaller is worth a 2x upscale
UPSCALE_FACTOR = 2.0
CROP_MARGIN = 0.35  # fraction of the located code's size added on every side of a crop
CROP_TARGET_PX = 400  # a located code is rescaled to about this many pixels across
CROP_MAX_SCALE = 3.0  # never upscale a crop more than this (interpolation invents detail)
MAX_CROPS = 3  # located-but-undecoded regions retried, largest first
MIN_CROP_PX = 8
GAMMA_DARKEN = 2.0  # output = input ** gamma on [0, 1]: > 1 darkens the mid-tones
GAMMA_BRIGHTEN = 0.5
MEDIAN_KERNEL_PX = 3
CLAHE_CLIP_LIMIT = 2.0
CLAHE_TILE_GRID = (8, 8)
# Dark-surround removal: the background (the frame closed with a square kernel, which
# erases every dark area narrower than the kernel: modules, finder patterns) is
# estimated on the frame scaled down to this long side, then subtracted.
SURROUND_SIDE_PX = 256
# Kernel side as a share of the long side. The BoofCV codes whose quiet zone a dark band
# cuts are read at 0.2 and at no other share tried (0.12-0.3): the kernel must be wider
# than the code's dark clusters, and the band (three modules deep) must survive it.
SURROUND_KERNEL_SHARE = 0.2
SURROUND_MS_PER_MPIX = 4.0  # building that image, beyond the zxing pass on it
OPENCV_SIDE_PX = 800  # OpenCV's plain detector runs on frames scaled down to this long side
ARUCO_SIDE_PX = 640  # its ArUco-based detector reads as much at this side, for less
# Estimated CPU cost of a pass, per megapixel of the image it works on (p95 over the
# BoofCV photos at camera size on one core of the development machine; the zxing
# figure includes building the image: gamma table, median, rescale).
ZXING_MS_PER_MPIX = 8.0
OPENCV_MS_PER_MPIX = 80.0
# ...plus what an OpenCV call costs whatever the image's size: the plain detector takes
# 10 ms (median; 14 ms p95) on crops of 0.05 megapixels or less, most of its cost on a
# crop, and the ArUco-based one 3 ms.
OPENCV_FIXED_MS = 8.0
ARUCO_FIXED_MS = 2.0
MIN_PASS_MS = 0.5  # no pass is estimated below this (call overhead)
GRID_MODULE_PX = 4  # OpenCV's sampled module grid is re-rendered at this many px per module
GRID_QUIET_ZONE_MODULES = 4  # ISO/IEC 18004 quiet zone around the re-rendered symbol


@dataclass(frozen=True)
class DecodeLimits:
    """How much work one frame may cost.

    The budget is checked before each retry against the retry's cost estimate, never
    in the middle of a decoder call: a frame overruns it only by what a pass costs
    beyond its estimate.
    """

    budget_ms: float = 30.0  # CPU milliseconds per frame (thread time), retries included
    max_attempts: int = 20  # plain pass included


DEFAULT_LIMITS = DecodeLimits()


class Attempt(StrEnum):
    """Which pass of the retry chain read the code (for statistics and tuning)."""

    PLAIN = "plain"
    GLOBAL_HISTOGRAM = "global-histogram"
    UPSCALE_CROP = "upscale-crop"
    UPSCALE = "upscale"
    BLUR = "blur"  # no longer tried; kept so stored statistics still parse
    CLAHE = "clahe"
    OTSU = "otsu"  # no longer tried; kept so stored statistics still parse
    ADAPTIVE = "adaptive"  # no longer tried; kept so stored statistics still parse
    GAMMA = "gamma"
    MEDIAN = "median"
    PURE = "pure"
    OPENCV = "opencv"
    OPENCV_ARUCO = "opencv-aruco"
    DARK_SURROUND = "dark-surround"


@dataclass(frozen=True)
class DecodedCode:
    """One QR code read from a frame: its exact payload bytes and where it was."""

    data: bytes
    corners: Corners  # top-left, top-right, bottom-right, bottom-left
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
    scale: float = 1.0  # image pixels per frame pixel
    offset: Point = (0.0, 0.0)  # frame coordinates of the image's (0, 0)
    # The binarizer's name, resolved per call: holding nanobind enum objects in module
    # state makes the extension report leaks at interpreter exit.
    binarizer: str = "LocalAverage"
    pure: bool = False


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


def _corners(pos: zxingcpp.Position) -> Corners:
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
            is_pure=p.pure,
            return_errors=with_errors,
        )
    )


def _to_frame(p: _Pass, corners: Sequence[Point]) -> Corners:
    a, b, c, d = ((x / p.scale + p.offset[0], y / p.scale + p.offset[1]) for x, y in corners)
    return (a, b, c, d)


def _scaled(image: Image, scale: float) -> Image:
    # INTER_AREA averages when shrinking (no aliasing of fine modules); cubic when growing.
    interpolation = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_CUBIC
    return np.asarray(cv2.resize(image, None, fx=scale, fy=scale, interpolation=interpolation))


def _has_structure(gray: Image) -> bool:
    """Whether some patch of the frame is dense in sharp steps, as any readable QR code
    is (module edges); a blank wall, smooth shading or mild sensor noise are not. The
    Laplacian, unlike a gradient, ignores smooth ramps of light."""
    scale = min(1.0, STRUCTURE_SIDE_PX / max(gray.shape))
    small = _scaled(gray, scale) if scale < 1.0 else gray
    steps = np.abs(cv2.Laplacian(small, cv2.CV_16S, ksize=1))
    dense = (steps >= STRUCTURE_STEP_MIN).astype(np.float32)
    density = cv2.boxFilter(dense, -1, (STRUCTURE_WINDOW_PX, STRUCTURE_WINDOW_PX))
    return float(density.max()) >= STRUCTURE_MIN_DENSITY


def _crop_box(corners: Sequence[Point], shape: tuple[int, ...]) -> tuple[int, int, int, int] | None:
    xs = [c[0] for c in corners]
    ys = [c[1] for c in corners]
    side = max(max(xs) - min(xs), max(ys) - min(ys))
    if side <= 0:
        return None
    margin = side * CROP_MARGIN
    x0 = max(0, int(min(xs) - margin))
    y0 = max(0, int(min(ys) - margin))
    x1 = min(shape[1], int(max(xs) + margin) + 1)
    y1 = min(shape[0], int(max(ys) + margin) + 1)
    if x1 - x0 < MIN_CROP_PX or y1 - y0 < MIN_CROP_PX:
        return None
    return (x0, y0, x1, y1)


def _boxes(gray: Image, located: Sequence[Corners]) -> list[tuple[int, int, int, int]]:
    """Crop boxes around the located-but-undecoded codes worth retrying, largest first."""
    boxes = [b for b in (_crop_box(c, gray.shape) for c in located) if b is not None]
    boxes.sort(key=lambda b: (b[2] - b[0]) * (b[3] - b[1]), reverse=True)
    return boxes[:MAX_CROPS]


def _gamma(gray: Image, gamma: float) -> Image:
    table = np.clip(255.0 * (np.arange(256) / 255.0) ** gamma + 0.5, 0, 255).astype(np.uint8)
    return np.asarray(cv2.LUT(gray, table))


def _without_dark_surround(gray: Image) -> Image:
    """`gray` with every dark area wider than the closing kernel turned white, module-
    sized dark detail kept: 255 minus the black-hat transform (closing minus image).
    A dark band touching the code then reads as the light quiet zone ISO/IEC 18004
    asks for around a symbol, and a soft shadow as paper. The closing runs on a small
    copy: the background varies slowly, and a wide kernel at full size would cost more
    than the zxing pass."""
    scale = min(1.0, SURROUND_SIDE_PX / max(gray.shape))
    small = _scaled(gray, scale) if scale < 1.0 else gray
    side = max(3, round(max(small.shape) * SURROUND_KERNEL_SHARE)) | 1
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (side, side))
    background = cv2.morphologyEx(small, cv2.MORPH_CLOSE, kernel)
    if scale < 1.0:
        size = (gray.shape[1], gray.shape[0])
        background = cv2.resize(background, size, interpolation=cv2.INTER_LINEAR)
    # subtract saturates at 0: where the frame is lighter than its background, no change
    return np.asarray(255 - cv2.subtract(background, gray))


def _opencv(
    gray: Image, aruco: bool, side_px: int = OPENCV_SIDE_PX, offset: Point = (0.0, 0.0)
) -> list[DecodedCode]:
    """OpenCV's QR detector (or its ArUco-based variant) on `gray` scaled down to at
    most `side_px`; `offset` is where `gray` sits in the frame (for crops).

    OpenCV transcodes byte-mode payloads (bytes 0x80 and above come back as UTF-8), so
    its bytes are taken only when they are all ASCII: any transcoding would have left a
    byte of 0x80 or above. Otherwise zxing decodes the module grid OpenCV sampled,
    re-rendered as a clean symbol, or the code counts as unread.
    """
    scale = min(1.0, side_px / max(gray.shape))
    small = _scaled(gray, scale) if scale < 1.0 else gray
    detector = cv2.QRCodeDetectorAruco() if aruco else cv2.QRCodeDetector()
    try:
        data, points, grid = detector.detectAndDecodeBytes(small)
    except cv2.error:  # OpenCV raises on degenerate geometry; that is a miss, not a fault
        return []
    if not data or points is None:
        return []
    quad = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if quad.shape[0] != 4:
        return []
    payload = bytes(data)
    if not payload.isascii():
        exact = _read_grid(grid)
        if exact is None:
            return []
        payload = exact
    a, b, c, d = ((float(x) / scale + offset[0], float(y) / scale + offset[1]) for x, y in quad)
    attempt = Attempt.OPENCV_ARUCO if aruco else Attempt.OPENCV
    return [DecodedCode(payload, (a, b, c, d), attempt)]


def _read_grid(grid: Image | None) -> bytes | None:
    """zxing's reading of a sampled module grid (0 = dark), or None."""
    if grid is None or grid.ndim != 2 or grid.size == 0:
        return None
    module = np.ones((GRID_MODULE_PX, GRID_MODULE_PX), np.uint8)
    symbol = np.kron(np.asarray(grid, dtype=np.uint8), module)
    symbol = np.pad(symbol, GRID_QUIET_ZONE_MODULES * GRID_MODULE_PX, constant_values=255)
    hits = [r for r in _read(_Pass(Attempt.PURE, symbol, pure=True)) if r.valid]
    return bytes(hits[0].bytes) if hits else None


@dataclass(frozen=True)
class Retry:
    """One pass of the retry chain: a thunk returning the codes it read (possibly none),
    building its image only when it runs, and what it is expected to cost."""

    run: Callable[[], list[DecodedCode]]
    estimate_ms: float  # CPU milliseconds


def _mpix(shape: tuple[int, ...], scale: float = 1.0) -> float:
    return shape[0] * shape[1] * scale * scale / 1e6


def _zxing_cost(shape: tuple[int, ...], scale: float = 1.0) -> float:
    return max(MIN_PASS_MS, ZXING_MS_PER_MPIX * _mpix(shape, scale))


def _opencv_cost(
    shape: tuple[int, ...], side_px: int = OPENCV_SIDE_PX, aruco: bool = False
) -> float:
    scale = min(1.0, side_px / max(shape))
    fixed = ARUCO_FIXED_MS if aruco else OPENCV_FIXED_MS
    return fixed + OPENCV_MS_PER_MPIX * _mpix(shape, scale)


def _zxing(
    attempt: Attempt, make: Callable[[], Image], binarizer: str = "LocalAverage"
) -> Callable[[], list[DecodedCode]]:
    """A whole-frame zxing pass on the image `make` builds (only when the pass runs)."""

    def run() -> list[DecodedCode]:
        return _codes(_Pass(attempt, make(), binarizer=binarizer))

    return run


def _codes(p: _Pass) -> list[DecodedCode]:
    hits = [r for r in _read(p) if r.valid]
    return [
        DecodedCode(bytes(r.bytes), _to_frame(p, _corners(r.position)), p.attempt) for r in hits
    ]


def _crop_passes(gray: Image, box: tuple[int, int, int, int]) -> Iterator[Retry]:
    x0, y0, x1, y1 = box
    crop = gray[y0:y1, x0:x1]
    offset = (float(x0), float(y0))
    scale = min(CROP_MAX_SCALE, CROP_TARGET_PX / max(crop.shape))
    cost = _zxing_cost(crop.shape, scale)
    resized: list[Image] = []

    def read(binarizer: str) -> list[DecodedCode]:
        if not resized:
            resized.append(_scaled(crop, scale))
        return _codes(_Pass(Attempt.UPSCALE_CROP, resized[0], scale, offset, binarizer))

    # GlobalHistogram first: it rescues twice as many crops per millisecond.
    for binarizer in ("GlobalHistogram", "LocalAverage"):
        yield Retry(partial(read, binarizer), cost)


def _attempts(gray: Image, located: Sequence[Corners]) -> Iterator[Retry]:
    """The retry chain, in order of rescues per millisecond."""
    whole = _zxing_cost(gray.shape)
    boxes = _boxes(gray, located)
    for box in boxes:
        yield from _crop_passes(gray, box)
    yield Retry(_zxing(Attempt.GLOBAL_HISTOGRAM, lambda: gray, "GlobalHistogram"), whole)
    yield Retry(_zxing(Attempt.GAMMA, lambda: _gamma(gray, GAMMA_DARKEN)), whole)
    yield Retry(partial(_codes, _Pass(Attempt.PURE, gray, pure=True)), whole)
    surround = _zxing(Attempt.DARK_SURROUND, lambda: _without_dark_surround(gray))
    yield Retry(surround, whole + SURROUND_MS_PER_MPIX * _mpix(gray.shape))
    yield Retry(_zxing(Attempt.GAMMA, lambda: _gamma(gray, GAMMA_BRIGHTEN)), whole)
    median = _zxing(Attempt.MEDIAN, lambda: np.asarray(cv2.medianBlur(gray, MEDIAN_KERNEL_PX)))
    yield Retry(median, whole)
    if not boxes and max(gray.shape) <= SMALL_FRAME_SIDE_PX:

        def upscaled() -> list[DecodedCode]:
            up = _scaled(gray, UPSCALE_FACTOR)
            return _codes(_Pass(Attempt.UPSCALE, up, UPSCALE_FACTOR))

        yield Retry(upscaled, _zxing_cost(gray.shape, UPSCALE_FACTOR))
    # At 1280x720 the plain detector's estimate (800 px side) exceeds the 30 ms budget:
    # it runs on larger frames with a larger budget, where it still rescues photos
    # (a shadowed code in the BoofCV set) that nothing else reads.
    yield Retry(
        partial(_opencv, gray, True, ARUCO_SIDE_PX),
        _opencv_cost(gray.shape, ARUCO_SIDE_PX, aruco=True),
    )
    yield Retry(partial(_opencv, gray, False), _opencv_cost(gray.shape))
    # Last, lowest rescue per millisecond: OpenCV on each located crop (it reads a
    # damaged code in the BoofCV set that nothing else does, when the budget allows).
    for x0, y0, x1, y1 in boxes:
        crop = gray[y0:y1, x0:x1]
        yield Retry(
            partial(_opencv, crop, False, CROP_TARGET_PX, (float(x0), float(y0))),
            _opencv_cost(crop.shape, CROP_TARGET_PX),
        )


def decode_frame(
    frame: Image,
    limits: DecodeLimits = DEFAULT_LIMITS,
    clock: Callable[[], float] = time.thread_time,
) -> list[DecodedCode]:
    """Every QR code readable in `frame`, as exact bytes with corners in frame pixels.

    Returns an empty list when nothing is readable within the budget; raises
    DecodeInputError only when `frame` is not an image at all. `clock` measures the
    budget: this thread's CPU time, so load from other processes does not change
    what is read.
    """
    started = clock()
    gray = to_gray(frame)
    plain = _Pass(Attempt.PLAIN, gray)
    # With return_errors zxing also reports codes it located but could not decode:
    # their position tells the retry chain where to look closer.
    results = _read(plain, with_errors=True)
    found = [
        DecodedCode(bytes(r.bytes), _corners(r.position), Attempt.PLAIN) for r in results if r.valid
    ]
    if found:
        return found
    located = [_corners(r.position) for r in results]
    if not located and not _has_structure(gray):
        return []
    codes, _ = run_chain(_attempts(gray, located), limits, clock, started)
    return codes


def run_chain(
    retries: Iterable[Retry],
    limits: DecodeLimits,
    clock: Callable[[], float],
    started: float,
) -> tuple[list[DecodedCode], int]:
    """Run `retries` in order until one reads a code, each only when the budget left
    has room for its estimate; returns the codes and how many passes ran (the plain
    pass counts as the first)."""
    attempts = 1
    for retry in retries:
        if attempts >= limits.max_attempts:
            break
        spent_ms = (clock() - started) * 1000.0
        if spent_ms + MIN_PASS_MS > limits.budget_ms:
            break  # not even the cheapest pass fits
        if spent_ms + retry.estimate_ms > limits.budget_ms:
            continue  # no room for this pass; a cheaper one further on may still fit
        attempts += 1
        codes = retry.run()
        if codes:
            return codes, attempts
    return [], attempts
