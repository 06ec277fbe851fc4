"""The demo's verifier station: a real station folder, its kiosk page, and a camera
that films the residents' phones.

What it does: creates the station with `healthbridge verifier init`, syncs it from the
ledger nodes (`verifier.syncing.LedgerSyncer`), serves its kiosk page, and "films"
phones: `verifier.synth.write_video` renders each shown code on a phone screen as a
hand-held camera sees it (perspective tilt, a little blur, glare, noise) into an MJPG
video, which the station reads back through OpenCV's VideoCapture
(`verifier.frames.VideoFileSource`) and scans frame by frame with its real decoder,
verifier, replay guard and scan log.

The checkpoint has two lanes sharing one replay memory: a throwaway `redis-server`
(Debian's, on a free loopback port in the work folder, no persistence) when one is
installed, else one in-process memory shared by both lanes (said so in the story).

What it does not: decide anything. Verdicts come from `verifier.station.Station`.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from common.private_files import make_private
from healthbridge.demo_world import DemoError, Served, World, run_cli, serve

VIDEO_FPS = 10.0  # frames per second of the filmed video
SHOT_SECONDS = 1.2  # seconds each phone is held up to the camera
GAP_SECONDS = 0.3  # seconds of empty scene between two phones
MAX_TILT_DEG = 25.0  # degrees; a resident holds the phone roughly towards the camera
RETRY_TILT_DEG = 8.0  # degrees; a second, steadier shot when a code was not read at all
VIDEO_SEED = 20_240_601  # fixed seed: the same demo films the same way every run
BACKGROUND_SYNC_S = 60  # seconds between the kiosk's background syncs after the story
REDIS_START_S = 10.0  # seconds a local redis-server may take to answer PING


@dataclass(frozen=True)
class Shot:
    """One phone held up to the camera: the QR text it shows and its colour band."""

    text: str
    colour: str
    label: str  # what the story calls it, e.g. "GD resident"
    window_end: int = 0  # Unix seconds: end of the holder-proof window the code was made in


@dataclass
class DemoStation:
    folder: Path
    syncer: Any
    trust: Any
    station: Any
    kiosk: Served
    log: Any
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(VIDEO_SEED))
    videos: int = 0
    background: Any = None
    replay: Any = None  # the lane's replay guard (verifier.replay)
    replay_where: str = "this station's own memory"

    def sync(self) -> Any:
        """One sync of every region; returns the report (raises when none synced)."""
        outcome = self.syncer.sync(None)
        if outcome.report is None or not outcome.ok:
            raise DemoError(f"the station could not sync: {outcome.error}")
        return outcome.report

    def film(self, shots: list[Shot], max_tilt_deg: float = MAX_TILT_DEG) -> Path:
        from verifier.synth import Scene, write_video

        self.videos += 1
        path = self.folder / f"camera-{self.videos:02d}.avi"
        scenes = [Scene(s.text, SHOT_SECONDS, GAP_SECONDS, s.colour) for s in shots]
        written = write_video(path, scenes, self.rng, fps=VIDEO_FPS, max_tilt_deg=max_tilt_deg)
        # Camera footage of people's phones is the station's own business: owner-only.
        written.chmod(0o600)
        return written

    def scan(self, shots: list[Shot]) -> list[Any]:
        """Film the phones, scan the video; one ScanEvent per shot, in shot order.

        A shot whose code the camera did not read at all is filmed once more, steadier
        (a real officer asks the resident to hold still); a code read is never rescanned.
        """
        from verifier.frames import VideoFileSource

        found: dict[str, Any] = {}
        for tilt in (MAX_TILT_DEG, RETRY_TILT_DEG):
            todo = [s for s in shots if s.text not in found]
            if not todo:
                break
            source = VideoFileSource(self.film(todo, tilt))
            for event in self.station.run(source):
                text = event.code.data.decode("ascii", "replace")
                found.setdefault(text, event)
        missing = [s.label for s in shots if s.text not in found]
        if missing:
            raise DemoError(f"the camera read no code from: {', '.join(missing)}")
        return [found[s.text] for s in shots]

    def start_background_sync(self) -> None:
        from verifier.syncing import BackgroundSync

        self.background = BackgroundSync(self.syncer, BACKGROUND_SYNC_S)
        self.background.start()

    def close(self) -> None:
        if self.background is not None:
            with contextlib.suppress(Exception):
                self.background.stop()
        self.trust.close()
        self.log.close()


def start_redis(world: World) -> str | None:
    """A throwaway redis-server for the checkpoint's lanes; None when not installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        return None
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    folder = world.workdir / "redis"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    # redis appends to an existing log file and keeps its mode: owner-only, like every
    # other file the demo leaves (docs/operations.md, files at rest).
    make_private(folder / "redis.log")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
         "--save", "", "--appendonly", "no", "--logfile", str(folder / "redis.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip

    def stop() -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()

    world.closers.append(stop)
    deadline = time.monotonic() + REDIS_START_S
    while time.monotonic() < deadline and proc.poll() is None:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5) as c:
            c.sendall(b"PING\r\n")
            if c.recv(16).startswith(b"+PONG"):
                return f"redis://127.0.0.1:{port}/0"
        time.sleep(0.05)
    raise DemoError("the checkpoint's redis-server did not start")


def start_lane(world: World, first: DemoStation) -> DemoStation:
    """A second lane at the same checkpoint: its own camera, deduper and scan log, the
    same ledger view and the same replay memory as `first`."""
    from ledger.clients.sync import SyncedTrustState
    from verifier.config import StationDir
    from verifier.replay import replay_guard_for
    from verifier.scanlog import ScanLog
    from verifier.station import Deduper, Station, presentation_verifier

    d = StationDir(first.folder)
    config = d.load()
    trust = SyncedTrustState(d.state_db)
    # One in-process memory when no Redis runs: both lanes hold the same object.
    guard = replay_guard_for(config.replay) if config.replay != "memory" else first.replay
    log = ScanLog(first.folder / "lane-2-scans.db")
    station = Station(
        verify=presentation_verifier(lambda: trust, config.policy, guard),
        log=log,
        deduper=Deduper(config.dedupe_s),
    )
    lane = DemoStation(first.folder, first.syncer, trust, station, first.kiosk, log)
    lane.videos = 100  # its own camera files next to lane 1's
    lane.replay, lane.replay_where = guard, first.replay_where
    world.closers.append(lane.close)
    return lane


def start_station(world: World) -> DemoStation:
    """`verifier init` a station folder, then build and serve it as `verifier scan` does."""
    from ledger.clients.sync import SyncedTrustState
    from ledger.log.consortium import load_consortium
    from verifier.config import StationDir
    from verifier.kiosk import KioskState, create_app
    from verifier.replay import replay_guard_for
    from verifier.scanlog import ScanLog
    from verifier.station import Deduper, Station, presentation_verifier
    from verifier.syncing import LedgerSyncer, sync_ages

    folder = world.workdir / "station"
    redis_url = start_redis(world)
    run_cli(
        "verifier", "init", "--consortium", str(world.consortium_path),
        "--dir", str(folder), "--name", "border-demo", "--replay", redis_url or "memory",
    )  # fmt: skip
    d = StationDir(folder)
    config = d.load()
    consortium = load_consortium(d.consortium)
    trust = SyncedTrustState(d.state_db)
    log = ScanLog(d.scan_log)
    syncer = LedgerSyncer(consortium, d.state_db)
    guard = replay_guard_for(config.replay)
    station = Station(
        verify=presentation_verifier(lambda: trust, config.policy, guard),
        log=log,
        syncer=syncer,
        deduper=Deduper(config.dedupe_s),
    )
    regions = consortium.regions()
    state = KioskState(
        log=log,
        sync_ages=lambda: sync_ages(d.state_db, time.time(), regions),
        online=lambda: syncer.online,
        replay=guard.status,
        alarm=lambda: syncer.fork_alarm,
        max_sync_age_s=config.policy.max_sync_age_s,
        language=config.language,
        on_language=d.save_language,
    )
    station.listeners.append(state.on_event)
    station.frame_listeners.append(state.on_frame)
    kiosk = world.add(serve("kiosk", create_app({"KIOSK_STATE": state}), world.ports["kiosk"]))
    demo_station = DemoStation(folder, syncer, trust, station, kiosk, log)
    demo_station.replay = guard
    demo_station.replay_where = (
        f"Redis at 127.0.0.1:{redis_url.rsplit(':', 1)[1].split('/')[0]}"
        if redis_url
        else "one in-process memory, no redis-server installed"
    )
    world.closers.append(demo_station.close)
    return demo_station
