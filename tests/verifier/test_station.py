"""The scan loop end to end: phone-screen video -> VideoCapture -> decode -> verdict.

Each scenario is an attack or a mistake a border station must catch; the video is
generated (verifier.synth), written as MJPG, and read back through OpenCV like a
recording of a real camera.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from credential.keys import SigningAlg, key_id, public_key_der
from credential.reasons import Reason
from credential.trust import RegisteredKey
from credential.verdict import Decision
from tests.verifier.conftest import T0, Mint
from verifier.frames import Frame, InMemoryFrameSource, VideoFileSource
from verifier.scanlog import ScanLog
from verifier.station import Deduper, ScanEvent, Station, presentation_verifier
from verifier.synth import Scene, qr_image, synthetic_frame, write_video

EXPECTED = {
    "valid": (Decision.ADMIT, ()),
    "yellow": (Decision.MANUAL_CHECK, (Reason.STATUS_YELLOW,)),
    "revoked": (Decision.DENY, (Reason.REVOKED,)),
    "expired": (Decision.DENY, (Reason.EXPIRED,)),
    "stale_screenshot": (Decision.DENY, (Reason.PROOF_STALE,)),
    "forged": (Decision.DENY, (Reason.BAD_SIGNATURE,)),
    "unknown_region": (Decision.DENY, (Reason.UNKNOWN_REGION,)),
}


def station_for(mint: Mint, log: ScanLog | None = None) -> Station:
    return Station(
        verify=presentation_verifier(lambda: mint.trust),
        log=log,
        clock=lambda f: T0 + f.timestamp,  # the video was filmed at T0
    )


@pytest.mark.slow
def test_video_of_phone_screens_yields_expected_verdicts(mint: Mint, tmp_path: Path) -> None:
    texts = mint.scenarios()
    names = list(EXPECTED)
    video = write_video(
        tmp_path / "phones.avi",
        [Scene(texts[n], seconds=0.8, gap_s=0.3) for n in names],
        np.random.default_rng(7),
        max_tilt_deg=35.0,
    )
    log = ScanLog(tmp_path / "scans.db")
    events = list(station_for(mint, log).run(VideoFileSource(video)))
    by_text = {e.code.data.decode(): e for e in events}
    # each code reported exactly once although it was in view for 8 frames
    assert len(events) == len(names)
    for name in names:
        verdict = by_text[texts[name]].verdict
        assert (verdict.decision, verdict.reasons) == EXPECTED[name], name
    assert log.count() == len(names)


def test_scan_log_holds_no_personal_data(mint: Mint, tmp_path: Path) -> None:
    texts = mint.scenarios()
    log = ScanLog(tmp_path / "scans.db")
    station = station_for(mint, log)
    frames = [qr_image(texts[n]) for n in ("valid", "revoked")]
    events = list(station.run(InMemoryFrameSource(frames, fps=1.0)))
    assert events[0].verdict.display is not None  # staff do see the masked name
    log.close()
    raw = (tmp_path / "scans.db").read_bytes()
    for secret in (b"C** T** M***", b"***4567", texts["valid"].encode()[:40]):
        assert secret not in raw
    rows = sqlite3.connect(tmp_path / "scans.db").execute("SELECT * FROM scans").fetchall()
    assert [r[2] for r in rows] == ["admit", "deny"]
    assert all(len(r[5]) == 16 for r in rows)  # keyed scan reference only
    # Nothing that joins to the ledger or the issuer: neither the digest nor its prefix.
    for e in events:
        assert e.verdict.digest_prefix is not None
        assert e.verdict.digest_prefix.encode() not in raw
        assert e.scan_ref == log.ref(e.verdict.digest_prefix)
        assert e.verdict.digest_prefix not in json.dumps(e.to_json(include_holder=True))


def test_code_held_in_view_is_reported_once(mint: Mint) -> None:
    text = mint.present(mint.claims())
    frames = [qr_image(text)] * 30  # one second at 30 fps
    events = list(station_for(mint).run(InMemoryFrameSource(frames, fps=30.0)))
    assert len(events) == 1 and events[0].verdict.decision is Decision.ADMIT


def test_replayed_screenshot_is_rejected(mint: Mint) -> None:
    """Shown, taken away, shown again within the proof window: the second is a replay."""
    text = mint.present(mint.claims())
    img = qr_image(text)
    blank = np.full_like(img, 255)
    station = station_for(mint)
    frames = [Frame(img, 0.0, 0), Frame(blank, 1.0, 1), Frame(img, 6.0, 2)]
    events = list(station.run(frames))
    assert [e.verdict.decision for e in events] == [Decision.ADMIT, Decision.DENY]
    assert events[1].verdict.reasons == (Reason.PROOF_REPLAYED,)


def test_dedupe_window_slides_while_the_code_stays() -> None:
    d = Deduper(window_s=4.0)
    assert d.is_new(b"a", 0.0)
    assert not any(d.is_new(b"a", t) for t in (1.0, 3.0, 6.0, 9.0))  # still in view
    assert d.is_new(b"a", 20.0)  # gone for 11 s
    assert d.is_new(b"b", 20.0)


class FakeSyncer:
    """A syncer that is offline, or online and learns `key` for `region` when asked."""

    def __init__(self, mint: Mint, online: bool, region: str = "", key: Any = None) -> None:
        self.mint = mint
        self.online = online
        self.region = region
        self.key = key
        self.calls: list[str | None] = []

    def sync_now(self, region: str | None, vouched: bool = False) -> bool:
        self.calls.append(region)
        if not self.online:
            return False
        der = public_key_der(self.key)
        reg = RegisteredKey(self.region, key_id(der), SigningAlg.ES256, der, int(T0 - 86400))
        self.mint.trust.add_key(reg)
        self.mint.trust.sync_times[self.region] = int(T0)
        return True


def new_region_text(mint: Mint) -> str:
    """A region whose key was registered after the station's last sync."""
    mint.register("NEW", synced=False)
    mint.trust.sync_times["NEW"] = int(T0 - 3600)
    claims = mint.claims(region="NEW", issued_at=int(T0 - 60), not_before=int(T0 - 60))
    return mint.present(claims)


def test_unseen_key_prompts_a_sync_when_online(mint: Mint) -> None:
    text = new_region_text(mint)
    syncer = FakeSyncer(mint, online=True, region="NEW", key=mint.keys["NEW"])
    station = station_for(mint)
    station.syncer = syncer
    (event,) = station.process(Frame(qr_image(text), 0.0, 0))
    assert syncer.calls == ["NEW"]
    assert event.synced and event.verdict.decision is Decision.ADMIT


def test_unseen_key_offline_says_station_needs_sync(mint: Mint) -> None:
    text = new_region_text(mint)
    syncer = FakeSyncer(mint, online=False)
    station = station_for(mint)
    station.syncer = syncer
    (event,) = station.process(Frame(qr_image(text), 0.0, 0))
    assert syncer.calls == ["NEW"]
    assert event.verdict.decision is Decision.DENY
    assert event.verdict.reasons == (Reason.STATION_NEEDS_SYNC,)
    assert not event.synced


def test_headless_json_leaves_out_holder_fields(mint: Mint) -> None:
    text = mint.present(mint.claims())
    (event,) = station_for(mint).process(Frame(qr_image(text), 0.0, 0))
    line = json.dumps(event.to_json())
    assert "C** T**" not in line and json.loads(line)["decision"] == "admit"
    assert event.to_json(include_holder=True)["holder"]["document_hint"] == "***4567"


@pytest.mark.parametrize(
    "payload",
    [b"HB1:", b"HB9:AAAA", b"https://example.org/", bytes(range(256)), b"HB1:" + b"%" * 300],
)
def test_any_bytes_in_a_qr_become_a_deny_verdict(mint: Mint, payload: bytes) -> None:
    (event,) = station_for(mint).process(Frame(qr_image(payload), 0.0, 0))
    assert isinstance(event, ScanEvent)
    assert event.verdict.decision is Decision.DENY
    assert event.verdict.reasons[0] in {
        Reason.MALFORMED,
        Reason.UNSUPPORTED_VERSION,
        Reason.TOO_LARGE,
    }


def test_tilted_phone_with_glare_is_still_admitted(mint: Mint) -> None:
    text = mint.present(mint.claims())
    frame, _ = synthetic_frame(text, np.random.default_rng(11))
    (event,) = station_for(mint).process(Frame(frame, 0.0, 0))
    assert event.verdict.decision is Decision.ADMIT


def test_frame_in_an_unreadable_pixel_format_is_skipped_not_fatal(mint: Mint) -> None:
    station = station_for(mint)
    text = mint.present(mint.claims())
    frames = [
        Frame(np.zeros((720, 1280), np.uint16), 0.0, 0),
        Frame(np.zeros((720, 1280, 2), np.uint8), 0.1, 1),
        Frame(qr_image(text), 0.2, 2),
    ]
    events = list(station.run(frames))
    assert station.skipped_frames == 2
    assert [e.verdict.decision for e in events] == [Decision.ADMIT]
