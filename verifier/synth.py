"""Synthetic camera frames of a phone screen showing a QR code, and videos of them.

What it does: renders a presentation's QR text with segno into a phone-like screen
(bezel, coloured status band, white card, the code), then photographs it virtually:
a 3-D tilt of the phone of up to 45 degrees about both axes, roll, glare, low contrast,
screen moiré, sensor noise and a slight blur, composed into 1280x720 BGR frames. It also
writes a video file (MJPG in .avi: no extra codecs needed) of a phone showing several
presentations in turn. Each frame comes with the ground-truth corners of the code.

What it does not do: produce presentations (tests use credential.presentation) or model
optics exactly; it is a repeatable stress generator (seeded numpy Generator) for the
decoder, the end-to-end tests and bench/scan.py.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import segno

Image = npt.NDArray[Any]
FRAME_SIZE = (1280, 720)  # width, height in pixels
MAX_TILT_DEG = 45.0  # degrees of tilt of the phone towards or away from the camera
MODULE_PX = 6  # pixels per QR module on the virtual screen
QUIET_ZONE_MODULES = 4  # ISO/IEC 18004 §6.3.8 asks for 4 modules
SCREEN_ASPECT = 2.1  # phone screen height / width
FOCAL_FACTOR = 1.4  # pinhole focal length as a multiple of the frame width
VIDEO_FOURCC = "MJPG"
BAND_COLOURS = {  # BGR colours of the wallet's status band
    "green": (60, 170, 40),
    "yellow": (30, 200, 230),
    "red": (40, 40, 210),
}


@dataclass(frozen=True)
class Distortion:
    """How one synthetic photo is taken (all zero: a flat, clean, centred phone)."""

    tilt_x_deg: float = 0.0  # rotation about the horizontal axis (top towards camera)
    tilt_y_deg: float = 0.0  # rotation about the vertical axis
    roll_deg: float = 0.0  # rotation in the image plane
    phone_height_frac: float = 1.1  # phone height / frame height (held close: may overflow)
    centre_dx: float = 0.0  # horizontal offset of the phone, fraction of frame width
    centre_dy: float = 0.0  # vertical offset, fraction of frame height
    glare: float = 0.0  # 0..1 strength of a specular highlight
    contrast: float = 1.0  # 1 = full contrast, 0.35 = washed out screen
    moire: float = 0.0  # 0..1 amplitude of the screen/sensor beat pattern
    noise_sigma: float = 0.0  # grey levels of Gaussian sensor noise
    blur_sigma: float = 0.0  # pixels; "slight" means <= 1.0


def random_distortion(rng: np.random.Generator, max_tilt_deg: float = MAX_TILT_DEG) -> Distortion:
    """A random, in-focus distortion with the tilt bounded by `max_tilt_deg`.

    Total tilt is the angle between the screen's normal and the camera axis; it is
    drawn first and then split between the two axes, so the bound holds for the pair.
    """
    total = float(rng.uniform(0.0, max_tilt_deg))
    direction = float(rng.uniform(0.0, 2.0 * math.pi))
    # tan split keeps the combined normal at `total` degrees from the camera axis.
    t = math.tan(math.radians(total))
    tilt_x = math.degrees(math.atan(t * math.cos(direction)))
    tilt_y = math.degrees(math.atan(t * math.sin(direction)))
    return Distortion(
        tilt_x_deg=tilt_x,
        tilt_y_deg=tilt_y,
        roll_deg=float(rng.uniform(-25.0, 25.0)),
        phone_height_frac=float(rng.uniform(1.0, 1.3)),
        centre_dx=float(rng.uniform(-0.2, 0.2)),
        centre_dy=float(rng.uniform(-0.1, 0.1)),
        glare=float(rng.uniform(0.0, 0.6)),
        contrast=float(rng.uniform(0.45, 1.0)),
        moire=float(rng.uniform(0.0, 0.25)),
        noise_sigma=float(rng.uniform(0.0, 8.0)),
        blur_sigma=float(rng.uniform(0.0, 0.9)),
    )


def qr_image(text: str | bytes, module_px: int = MODULE_PX) -> Image:
    """The QR code of `text` (error correction M, byte-exact) as a grayscale image."""
    qr = segno.make_qr(text, error="m", boost_error=False)
    matrix = np.array([list(row) for row in qr.matrix], dtype=np.uint8)
    img = np.where(matrix > 0, 0, 255).astype(np.uint8)
    img = np.pad(img, QUIET_ZONE_MODULES, constant_values=255)
    return np.kron(img, np.ones((module_px, module_px), dtype=np.uint8))


def phone_screen(
    text: str | bytes, colour: str = "green", module_px: int = MODULE_PX
) -> tuple[Image, npt.NDArray[np.float32]]:
    """A phone (bezel + screen) showing the code; returns the BGR image and the code's
    four symbol corners (TL, TR, BR, BL) in that image."""
    code = qr_image(text, module_px)
    side = code.shape[0]
    width = int(side * 1.12)
    height = int(width * SCREEN_ASPECT)
    bezel = max(8, width // 18)
    img = np.full((height + 2 * bezel, width + 2 * bezel, 3), 20, dtype=np.uint8)
    screen = np.full((height, width, 3), 245, dtype=np.uint8)
    band = BAND_COLOURS.get(colour, BAND_COLOURS["green"])
    screen[: height // 5] = band
    cv2.rectangle(
        screen, (width // 10, height // 12), (width * 9 // 10, height // 9), (255, 255, 255), -1
    )
    top = height // 5 + (height - height // 5 - side) // 3
    left = (width - side) // 2
    screen[top : top + side, left : left + side] = code[:, :, None]
    img[bezel : bezel + height, bezel : bezel + width] = screen
    # Corners of the symbol itself (inside the quiet zone), as decoders report them.
    quiet = QUIET_ZONE_MODULES * module_px
    x0, y0 = float(bezel + left + quiet), float(bezel + top + quiet)
    inner = float(side - 2 * quiet)
    corners = np.array(
        [[x0, y0], [x0 + inner, y0], [x0 + inner, y0 + inner], [x0, y0 + inner]],
        dtype=np.float32,
    )
    return img, corners


def _homography(
    src_w: int, src_h: int, anchor: Image, d: Distortion, frame_size: tuple[int, int]
) -> Image:
    # The phone is placed so that `anchor` (the code's centre) lands near the frame's
    # centre: staff aim the camera at the code, not at the phone.
    fw, fh = frame_size
    scale = d.phone_height_frac * fh / src_h
    ax0, ay0 = float(anchor[0]) * scale, float(anchor[1]) * scale
    w, h = src_w * scale, src_h * scale
    pts = np.array([[-ax0, -ay0, 0], [w - ax0, -ay0, 0], [w - ax0, h - ay0, 0], [-ax0, h - ay0, 0]])
    ax, ay, az = (math.radians(v) for v in (d.tilt_x_deg, d.tilt_y_deg, d.roll_deg))
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    rz = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
    rotated = pts @ (rz @ ry @ rx).T
    f = FOCAL_FACTOR * fw
    z = rotated[:, 2] + f  # the code's centre sits at the distance where scale holds
    cx = fw / 2 + d.centre_dx * fw
    cy = fh / 2 + d.centre_dy * fh
    proj = np.stack([cx + f * rotated[:, 0] / z, cy + f * rotated[:, 1] / z], axis=1)
    src = np.array([[0, 0], [src_w, 0], [src_w, src_h], [0, src_h]], dtype=np.float32)
    return np.asarray(cv2.getPerspectiveTransform(src, proj.astype(np.float32)))


def _background(rng: np.random.Generator, frame_size: tuple[int, int]) -> Image:
    fw, fh = frame_size
    small = rng.integers(60, 200, size=(fh // 40 + 1, fw // 40 + 1, 3), dtype=np.uint8)
    return np.asarray(cv2.resize(small, (fw, fh), interpolation=cv2.INTER_CUBIC))


def photograph(
    phone: Image,
    code_corners: npt.NDArray[np.float32],
    d: Distortion,
    rng: np.random.Generator,
    frame_size: tuple[int, int] = FRAME_SIZE,
) -> tuple[Image, npt.NDArray[np.float32]]:
    """Photograph a phone image under distortion `d`; returns the BGR frame and the
    code's corners in frame pixels."""
    fw, fh = frame_size
    screen = phone.astype(np.float32)
    if d.contrast < 1.0:
        screen = 128.0 + (screen - 128.0) * d.contrast
    if d.moire > 0.0:
        # Beat between screen pixel grid and sensor grid: a slanted low-frequency ripple.
        yy, xx = np.mgrid[0 : phone.shape[0], 0 : phone.shape[1]].astype(np.float32)
        period = float(rng.uniform(7.0, 15.0))
        angle = float(rng.uniform(0.0, math.pi))
        ripple = np.sin((xx * math.cos(angle) + yy * math.sin(angle)) * 2 * math.pi / period)
        screen *= (1.0 + d.moire * 0.5 * ripple)[:, :, None]
    h = _homography(phone.shape[1], phone.shape[0], code_corners.mean(axis=0), d, frame_size)
    warped = cv2.warpPerspective(
        np.clip(screen, 0, 255).astype(np.uint8), h, (fw, fh), flags=cv2.INTER_LINEAR
    )
    mask = cv2.warpPerspective(np.full(phone.shape[:2], 255, np.uint8), h, (fw, fh))
    frame = _background(rng, frame_size)
    frame = np.where(mask[:, :, None] > 127, warped, frame).astype(np.float32)
    if d.glare > 0.0:
        gx, gy = float(rng.uniform(0.3, 0.7)) * fw, float(rng.uniform(0.2, 0.8)) * fh
        radius = float(rng.uniform(0.08, 0.2)) * fw
        yy, xx = np.mgrid[0:fh, 0:fw].astype(np.float32)
        blob = np.exp(-((xx - gx) ** 2 + (yy - gy) ** 2) / (2 * radius**2))
        frame += (d.glare * 200.0 * blob)[:, :, None]
    if d.blur_sigma > 0.0:
        frame = cv2.GaussianBlur(frame, (0, 0), d.blur_sigma)
    if d.noise_sigma > 0.0:
        frame += rng.normal(0.0, d.noise_sigma, size=frame.shape).astype(np.float32)
    out = np.clip(frame, 0, 255).astype(np.uint8)
    corners = cv2.perspectiveTransform(code_corners.reshape(-1, 1, 2), h).reshape(-1, 2)
    return out, np.asarray(corners, dtype=np.float32)


def synthetic_frame(
    text: str | bytes,
    rng: np.random.Generator,
    distortion: Distortion | None = None,
    colour: str = "green",
    frame_size: tuple[int, int] = FRAME_SIZE,
) -> tuple[Image, npt.NDArray[np.float32]]:
    """One 1280x720 frame of a phone showing `text` (random distortion unless given)."""
    d = distortion if distortion is not None else random_distortion(rng)
    phone, corners = phone_screen(text, colour)
    return photograph(phone, corners, d, rng, frame_size)


@dataclass(frozen=True)
class Scene:
    """A stretch of video: a phone showing `text` for `seconds`, then `gap_s` without."""

    text: str | bytes
    seconds: float = 1.0
    gap_s: float = 0.5
    colour: str = "green"


def write_video(
    path: str | Path,
    scenes: Sequence[Scene],
    rng: np.random.Generator,
    fps: float = 10.0,
    frame_size: tuple[int, int] = FRAME_SIZE,
    max_tilt_deg: float = 30.0,
) -> Path:
    """Write an MJPG .avi of a phone showing each scene's code in turn; the phone
    drifts a little between frames like a hand-held one. Returns the path."""
    out = Path(path)
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter.fourcc(*VIDEO_FOURCC), fps, frame_size)
    if not writer.isOpened():
        raise OSError(f"OpenCV cannot write an {VIDEO_FOURCC} video at {out}")
    try:
        for scene in scenes:
            phone, corners = phone_screen(scene.text, scene.colour)
            base = random_distortion(rng, max_tilt_deg)
            for i in range(max(1, round(scene.seconds * fps))):
                drift = Distortion(
                    **{
                        **base.__dict__,
                        "centre_dx": base.centre_dx + 0.004 * i,
                        "roll_deg": base.roll_deg + 0.3 * i,
                    }
                )
                frame, _ = photograph(phone, corners, drift, rng, frame_size)
                writer.write(frame)
            for _ in range(round(scene.gap_s * fps)):
                writer.write(_background(rng, frame_size))
    finally:
        writer.release()
    return out
