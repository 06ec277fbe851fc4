"""Frame sources: cameras, network streams, video files, image folders, and a fake.

What it does: every source is an iterator of `Frame`s (an 8-bit BGR or grayscale image
with a timestamp in seconds), behind the `FrameSource` protocol, so the station treats
a USB camera, an RTSP/MJPEG stream, a recorded video and a folder of photos the same
way. Live sources (camera, stream) that fail to open or stop delivering frames are
reported through an event callback and reopened with exponential backoff; after
`RetryPolicy.max_failures` consecutive failures they raise CameraUnavailableError.

What it does not do: decode, verify or display anything. OpenCV's VideoCapture sits
behind the small `Capture` protocol so tests can inject a camera that fails.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
import numpy.typing as npt

from verifier.errors import CameraUnavailableError, FrameSourceError

Image = npt.NDArray[Any]
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})
DEFAULT_FOLDER_FPS = 10.0  # frames per second assigned to a folder of still images


@dataclass(frozen=True)
class Frame:
    """One captured image: `timestamp` is seconds (wall clock for live sources, media
    time for files), `index` counts frames from 0 within the source."""

    image: Image
    timestamp: float
    index: int


class FrameSource(Protocol):
    """Anything that yields frames; `close` releases the device or file."""

    description: str

    def __iter__(self) -> Iterator[Frame]: ...

    def close(self) -> None: ...


class SourceEventKind(StrEnum):
    OPENED = "opened"
    OPEN_FAILED = "open-failed"
    LOST = "lost"  # a live source stopped delivering frames
    RETRYING = "retrying"
    SKIPPED_FILE = "skipped-file"  # an unreadable image in a folder
    GAVE_UP = "gave-up"


@dataclass(frozen=True)
class SourceEvent:
    kind: SourceEventKind
    source: str
    detail: str = ""


EventSink = Callable[[SourceEvent], None]


def _ignore(_: SourceEvent) -> None:
    return None


@dataclass(frozen=True)
class CaptureSettings:
    """Requested capture format; cameras may pick the nearest mode they support."""

    width: int | None = 1280  # pixels
    height: int | None = 720  # pixels
    fps: float | None = 30.0  # frames per second


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff for live sources: first wait, growth factor, ceiling, and how many
    consecutive failures (open or read) are tolerated before giving up (None: never)."""

    initial_s: float = 0.5  # seconds
    factor: float = 2.0
    max_s: float = 8.0  # seconds
    max_failures: int | None = None

    def delay(self, failures: int) -> float:
        return float(min(self.max_s, self.initial_s * self.factor ** max(0, failures - 1)))


class Capture(Protocol):
    """The part of cv2.VideoCapture the sources use."""

    def isOpened(self) -> bool: ...

    def read(self) -> tuple[bool, Any]: ...

    def set(self, prop: int, value: float) -> bool: ...

    def get(self, prop: int) -> float: ...

    def release(self) -> None: ...


CaptureFactory = Callable[[int | str], Capture]


def opencv_capture(target: int | str) -> Capture:
    return cv2.VideoCapture(target)


class LiveSource:
    """A camera by index or a network stream URL, reopened with backoff when it fails.

    A live source never ends by itself: it yields frames until closed, or raises
    CameraUnavailableError once the retry policy gives up.
    """

    def __init__(
        self,
        target: int | str,
        settings: CaptureSettings = CaptureSettings(),
        retry: RetryPolicy = RetryPolicy(),
        on_event: EventSink = _ignore,
        capture_factory: CaptureFactory = opencv_capture,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.target = target
        self.description = f"camera {target}" if isinstance(target, int) else f"stream {target}"
        self.settings = settings
        self.retry = retry
        self.on_event = on_event
        self._factory = capture_factory
        self._clock = clock
        self._sleep = sleep
        self._cap: Capture | None = None
        self._closed = False

    def _open(self) -> Capture | None:
        try:
            cap = self._factory(self.target)
        except Exception as e:  # OpenCV backends raise anything; report, then retry
            self.on_event(SourceEvent(SourceEventKind.OPEN_FAILED, self.description, repr(e)))
            return None
        if not cap.isOpened():
            cap.release()
            self.on_event(SourceEvent(SourceEventKind.OPEN_FAILED, self.description, "not opened"))
            return None
        s = self.settings
        if s.width:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, float(s.width))
        if s.height:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, float(s.height))
        if s.fps:
            cap.set(cv2.CAP_PROP_FPS, float(s.fps))
        # Keep at most one frame queued in the driver: when a scan takes longer than a
        # frame interval, the next read gets the newest frame, not one from the past
        # (backends that cannot do this ignore it).
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1.0)
        self.on_event(SourceEvent(SourceEventKind.OPENED, self.description))
        return cap

    def _fail(self, failures: int) -> None:
        if self.retry.max_failures is not None and failures >= self.retry.max_failures:
            self.on_event(SourceEvent(SourceEventKind.GAVE_UP, self.description))
            raise CameraUnavailableError(
                f"{self.description}: expected frames, found {failures} consecutive "
                "failures to open or read; check the cable, the index or the URL"
            )
        wait = self.retry.delay(failures)
        self.on_event(SourceEvent(SourceEventKind.RETRYING, self.description, f"in {wait:.1f} s"))
        self._sleep(wait)

    def __iter__(self) -> Iterator[Frame]:
        failures = 0
        index = 0
        while not self._closed:
            if self._cap is None:
                self._cap = self._open()
                if self._cap is None:
                    failures += 1
                    self._fail(failures)
                    continue
            ok, image = self._cap.read()
            if not ok or image is None:
                # The device disappeared (unplugged, stream dropped): release and reopen.
                self.on_event(SourceEvent(SourceEventKind.LOST, self.description))
                self._cap.release()
                self._cap = None
                failures += 1
                self._fail(failures)
                continue
            failures = 0
            yield Frame(np.asarray(image), self._clock(), index)
            index += 1

    def close(self) -> None:
        self._closed = True
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class VideoFileSource:
    """A recorded video read through cv2.VideoCapture; timestamps are media time."""

    def __init__(self, path: str | Path, capture_factory: CaptureFactory = opencv_capture) -> None:
        self.path = Path(path)
        self.description = f"video {self.path.name}"
        self._factory = capture_factory
        self._cap: Capture | None = None

    def __iter__(self) -> Iterator[Frame]:
        if not self.path.is_file():
            raise FrameSourceError(f"expected a video file, found nothing at {self.path}")
        cap = self._factory(str(self.path))
        self._cap = cap
        if not cap.isOpened():
            raise FrameSourceError(f"{self.path}: not a video OpenCV can read")
        fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
        index = 0
        try:
            while True:
                ok, image = cap.read()
                if not ok or image is None:
                    return
                ms = cap.get(cv2.CAP_PROP_POS_MSEC)
                ts = ms / 1000.0 if ms > 0 or index == 0 else index / (fps or 30.0)
                yield Frame(np.asarray(image), ts, index)
                index += 1
        finally:
            self.close()

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class ImageFolderSource:
    """Every image in a folder, in name order, at a nominal frame rate.

    Unreadable files are reported (SKIPPED_FILE) and skipped, never fatal: a folder of
    photos from staff may hold anything.
    """

    def __init__(
        self, folder: str | Path, fps: float = DEFAULT_FOLDER_FPS, on_event: EventSink = _ignore
    ) -> None:
        self.folder = Path(folder)
        self.description = f"images {self.folder}"
        self.fps = fps
        self.on_event = on_event

    def __iter__(self) -> Iterator[Frame]:
        if not self.folder.is_dir():
            raise FrameSourceError(f"expected a folder of images, found nothing at {self.folder}")
        files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        index = 0
        for path in files:
            # IGNORE_ORIENTATION: decode the pixel buffer as stored, like a camera would.
            image = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
            if image is None:
                self.on_event(
                    SourceEvent(SourceEventKind.SKIPPED_FILE, self.description, path.name)
                )
                continue
            yield Frame(np.asarray(image), index / self.fps, index)
            index += 1

    def close(self) -> None:
        return None


class InMemoryFrameSource:
    """Frames held in memory: the fake for tests."""

    def __init__(self, images: Iterable[Image], fps: float = 30.0, start: float = 0.0) -> None:
        self.description = "memory"
        self._frames = [Frame(img, start + i / fps, i) for i, img in enumerate(images)]

    def __iter__(self) -> Iterator[Frame]:
        return iter(self._frames)

    def close(self) -> None:
        return None


def open_source(
    camera: int | None = None,
    video: str | Path | None = None,
    images: str | Path | None = None,
    url: str | None = None,
    settings: CaptureSettings = CaptureSettings(),
    retry: RetryPolicy = RetryPolicy(),
    on_event: EventSink = _ignore,
) -> FrameSource:
    """The one source the command line asked for (exactly one must be given)."""
    given = [x for x in (camera, video, images, url) if x is not None]
    if len(given) != 1:
        raise FrameSourceError(f"expected exactly one frame source, found {len(given)}")
    if camera is not None:
        return LiveSource(camera, settings, retry, on_event)
    if url is not None:
        return LiveSource(url, settings, retry, on_event)
    if video is not None:
        return VideoFileSource(video)
    assert images is not None
    return ImageFolderSource(images, on_event=on_event)
