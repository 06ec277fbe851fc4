"""Frame sources: a camera that fails, disappears and comes back; files and folders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from verifier.errors import CameraUnavailableError, FrameSourceError
from verifier.frames import (
    ImageFolderSource,
    InMemoryFrameSource,
    LiveSource,
    RetryPolicy,
    SourceEvent,
    SourceEventKind,
    VideoFileSource,
    open_source,
)
from verifier.synth import Scene, write_video


class ScriptedCapture:
    """A fake cv2.VideoCapture: opens or not, then reads a fixed number of frames."""

    def __init__(self, opens: bool, frames: int) -> None:
        self.opens = opens
        self.frames = frames
        self.released = False
        self.props: dict[int, float] = {}

    def isOpened(self) -> bool:
        return self.opens

    def read(self) -> tuple[bool, Any]:
        if self.frames <= 0:
            return False, None
        self.frames -= 1
        return True, np.zeros((4, 4, 3), np.uint8)

    def set(self, prop: int, value: float) -> bool:
        self.props[prop] = value
        return True

    def get(self, prop: int) -> float:
        return self.props.get(prop, 0.0)

    def release(self) -> None:
        self.released = True


def scripted(*captures: ScriptedCapture):  # type: ignore[no-untyped-def]
    queue = list(captures)

    def factory(target: int | str) -> ScriptedCapture:
        if not queue:
            return ScriptedCapture(opens=False, frames=0)
        return queue.pop(0)

    return factory


def test_camera_that_fails_to_open_is_retried_with_backoff() -> None:
    events: list[SourceEvent] = []
    sleeps: list[float] = []
    good = ScriptedCapture(opens=True, frames=3)
    src = LiveSource(
        0,
        on_event=events.append,
        capture_factory=scripted(ScriptedCapture(False, 0), ScriptedCapture(False, 0), good),
        sleep=sleeps.append,
        clock=lambda: 100.0,
    )
    frames = []
    for f in src:
        frames.append(f)
        if len(frames) == 3:
            src.close()
    assert [f.index for f in frames] == [0, 1, 2]
    assert sleeps == [0.5, 1.0]
    kinds = [e.kind for e in events]
    assert kinds[:4] == [
        SourceEventKind.OPEN_FAILED,
        SourceEventKind.RETRYING,
        SourceEventKind.OPEN_FAILED,
        SourceEventKind.RETRYING,
    ]
    assert SourceEventKind.OPENED in kinds
    assert good.props[cv2.CAP_PROP_FRAME_WIDTH] == 1280
    assert good.props[cv2.CAP_PROP_BUFFERSIZE] == 1  # newest frame, not a backlog
    assert good.released


def test_camera_that_disappears_is_reported_and_reopened() -> None:
    events: list[SourceEvent] = []
    first, second = ScriptedCapture(True, 2), ScriptedCapture(True, 2)
    src = LiveSource(
        "rtsp://127.0.0.1:1/cam",
        on_event=events.append,
        capture_factory=scripted(first, second),
        sleep=lambda s: None,
    )
    got = []
    for f in src:
        got.append(f.index)
        if len(got) == 4:
            src.close()
    assert got == [0, 1, 2, 3]
    assert first.released
    assert SourceEventKind.LOST in [e.kind for e in events]


def test_camera_gone_for_good_raises_typed_error_after_retries() -> None:
    events: list[SourceEvent] = []
    src = LiveSource(
        7,
        retry=RetryPolicy(initial_s=0.1, max_s=0.4, max_failures=4),
        on_event=events.append,
        capture_factory=scripted(),
        sleep=lambda s: None,
    )
    with pytest.raises(CameraUnavailableError, match="camera 7"):
        list(src)
    assert events[-1].kind is SourceEventKind.GAVE_UP


def test_backoff_grows_to_its_ceiling() -> None:
    policy = RetryPolicy(initial_s=0.5, factor=2.0, max_s=3.0)
    assert [policy.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_video_file_round_trip_through_videocapture(tmp_path: Path) -> None:
    path = write_video(
        tmp_path / "v.avi", [Scene("HB1:VIDEO", seconds=0.5, gap_s=0.2)], np.random.default_rng(1)
    )
    frames = list(VideoFileSource(path))
    assert len(frames) == 7  # 5 frames of phone + 2 of background at 10 fps
    assert frames[0].image.shape == (720, 1280, 3)
    times = [f.timestamp for f in frames]
    assert times == sorted(times) and times[-1] == pytest.approx(0.6, abs=0.01)


def test_missing_or_bogus_video_is_a_typed_error(tmp_path: Path) -> None:
    with pytest.raises(FrameSourceError, match="expected a video file"):
        list(VideoFileSource(tmp_path / "none.avi"))
    bogus = tmp_path / "bogus.avi"
    bogus.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(FrameSourceError):
        list(VideoFileSource(bogus))


def test_image_folder_skips_unreadable_files(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "b.jpg").write_bytes(b"not a jpeg")
    cv2.imwrite(str(tmp_path / "c.png"), np.full((8, 8, 3), 255, np.uint8))
    (tmp_path / "notes.txt").write_text("ignored")
    events: list[SourceEvent] = []
    frames = list(ImageFolderSource(tmp_path, fps=2.0, on_event=events.append))
    assert [f.timestamp for f in frames] == [0.0, 0.5]
    assert [(e.kind, e.detail) for e in events] == [(SourceEventKind.SKIPPED_FILE, "b.jpg")]


def test_exactly_one_source_is_required(tmp_path: Path) -> None:
    with pytest.raises(FrameSourceError, match="exactly one"):
        open_source()
    with pytest.raises(FrameSourceError, match="exactly one"):
        open_source(camera=0, images=tmp_path)
    assert isinstance(open_source(images=tmp_path), ImageFolderSource)


def test_in_memory_source_assigns_timestamps() -> None:
    src = InMemoryFrameSource([np.zeros((2, 2), np.uint8)] * 3, fps=10.0, start=5.0)
    assert [f.timestamp for f in src] == [5.0, 5.1, 5.2]
