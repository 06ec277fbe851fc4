"""The station over a real synced ledger state (ledger.clients.sync with in-memory log sources):
admit, revoke-then-deny after a sync, and the unseen-key sync prompt online and offline.
Also the command line: init, scan (headless, offline) and export-log."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any

import cv2
import pytest
from click.testing import CliRunner

from credential.claims import HealthClaims, StatusColour
from credential.issue import credential_digest, sign_credential
from credential.keys import SigningAlg, generate_private_key, key_id, public_key_der
from credential.presentation import make_presentation
from credential.reasons import Reason
from credential.verdict import Decision
from ledger.clients.sync import RegionStatus, SyncClient, SyncedTrustState
from ledger.log.consortium import write_consortium
from ledger.log.entries import CredentialAnchored, CredentialRevoked, RevocationReason
from tests.support.ledger_joint import (
    MemoryLog,
    MemorySource,
    consortium_of,
    key_added,
    leaf_of,
    member_keys,
)
from verifier.cli import cli
from verifier.frames import Frame
from verifier.station import Station, presentation_verifier
from verifier.syncing import LedgerSyncer
from verifier.synth import qr_image

COSIGNED_AT = 1_700_000_000  # the memory sources' cosignature time
NOW = COSIGNED_AT + 40.0  # the scans happen 40 s after that checkpoint


class World:
    """Two regions' logs in memory, one GD issuer key, one resident's device."""

    def __init__(self, tmp: Path) -> None:
        self.gd, self.mo = member_keys("GD"), member_keys("MO")
        self.consortium = consortium_of(self.gd, self.mo)
        self.logs = {"GD": MemoryLog(self.gd), "MO": MemoryLog(self.mo)}
        self.sources = {
            r: [MemorySource(self.logs[r], [self.gd, self.mo], name=f"{r}-node")] for r in self.logs
        }
        self.db = tmp / "state.db"
        self.issuer = generate_private_key()
        self.kid = key_id(public_key_der(self.issuer))
        self.device = generate_private_key()
        self.logs["GD"].leaves.append(leaf_of(key_added(self.gd, self.issuer)))

    def client(self, c: Any, path: Path) -> SyncClient:
        return SyncClient(c, path, sources=lambda r: self.sources[r], clock=lambda: NOW)

    def credential(
        self, index: int, issuer: Any = None, issued_at: int = COSIGNED_AT - 3600
    ) -> str:
        key = issuer or self.issuer
        claims = HealthClaims(
            region="GD",
            kid=key_id(public_key_der(key)),
            status_index=index,
            issued_at=issued_at,
            not_before=issued_at,
            expires_at=issued_at + 7 * 86400,
            colour=StatusColour.GREEN,
            masked_name="L** W**",
            document_hint="***0042",
            holder_key=public_key_der(self.device),
        )
        jws = sign_credential(claims, key, SigningAlg.ES256)
        self.logs["GD"].leaves.append(
            leaf_of(
                CredentialAnchored(
                    "GD", credential_digest(jws), index, claims.kid, claims.expires_at
                )
            )
        )
        return jws

    def set_down(self, down: bool) -> None:
        for srcs in self.sources.values():
            for s in srcs:
                s.down = down


@pytest.fixture()
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def init_station(world: World, tmp_path: Path) -> Path:
    """`verifier init` of a station folder from the world's consortium file."""
    consortium_file = tmp_path / "consortium.toml"
    write_consortium(consortium_file, world.consortium)
    d = tmp_path / "station"
    r = CliRunner().invoke(cli, ["init", "--consortium", str(consortium_file), "--dir", str(d)])
    assert r.exit_code == 0, r.output
    return d


def station_over(world: World) -> tuple[Station, LedgerSyncer, SyncedTrustState]:
    syncer = LedgerSyncer(
        world.consortium, world.db, client_factory=world.client, clock=lambda: NOW
    )
    trust = SyncedTrustState(world.db)
    station = Station(verify=presentation_verifier(lambda: trust), syncer=syncer,
                      clock=lambda f: NOW + f.timestamp)  # fmt: skip
    return station, syncer, trust


def show(station: Station, text: str, t: float) -> Any:
    (event,) = station.process(Frame(qr_image(text), t, int(t)))
    return event.verdict


def test_synced_station_admits_then_denies_after_revocation_sync(world: World) -> None:
    jws = world.credential(11)
    station, syncer, _ = station_over(world)
    assert syncer.sync().ok
    assert show(station, make_presentation(jws, world.device, NOW), 0.0).decision is Decision.ADMIT
    world.logs["GD"].leaves.append(
        leaf_of(CredentialRevoked("GD", 11, RevocationReason.FRAUD, COSIGNED_AT))
    )
    assert syncer.sync("GD").ok
    verdict = show(station, make_presentation(jws, world.device, NOW + 31), 31.0)  # next window
    assert (verdict.decision, verdict.reasons) == (Decision.DENY, (Reason.REVOKED,))


def test_key_registered_after_last_sync_prompts_a_sync_online(world: World) -> None:
    station, syncer, _ = station_over(world)
    assert syncer.sync().ok
    new_issuer = generate_private_key()
    world.logs["GD"].leaves.append(leaf_of(key_added(world.gd, new_issuer)))
    for s in world.sources["GD"]:
        s.timestamp = COSIGNED_AT + 30  # a newer cosigned checkpoint holds the key
    jws = world.credential(12, issuer=new_issuer, issued_at=COSIGNED_AT + 20)
    verdict = show(station, make_presentation(jws, world.device, NOW), 0.0)
    assert verdict.decision is Decision.ADMIT
    assert verdict.sync_age_s == 10


def test_key_registered_after_last_sync_offline_says_needs_sync(world: World) -> None:
    station, syncer, _ = station_over(world)
    known = world.credential(14)  # anchored before the station's last sync
    assert syncer.sync().ok
    new_issuer = generate_private_key()
    world.logs["GD"].leaves.append(leaf_of(key_added(world.gd, new_issuer)))
    jws = world.credential(13, issuer=new_issuer, issued_at=COSIGNED_AT + 20)
    world.set_down(True)
    verdict = show(station, make_presentation(jws, world.device, NOW), 0.0)
    assert (verdict.decision, verdict.reasons) == (Decision.DENY, (Reason.STATION_NEEDS_SYNC,))
    assert syncer.online is False
    # the old state still admits what it knows, offline
    assert (
        show(station, make_presentation(known, world.device, NOW), 1.0).decision is Decision.ADMIT
    )


def test_cli_init_scan_headless_offline_and_export(world: World, tmp_path: Path) -> None:
    consortium_file = tmp_path / "consortium.toml"
    write_consortium(consortium_file, world.consortium)
    station_dir = tmp_path / "station"
    runner = CliRunner()
    r = runner.invoke(
        cli, ["init", "--consortium", str(consortium_file), "--dir", str(station_dir)]
    )
    assert r.exit_code == 0, r.output
    assert "regions: GD, MO" in r.output
    again = runner.invoke(
        cli, ["init", "--consortium", str(consortium_file), "--dir", str(station_dir)]
    )
    assert again.exit_code == 1 and "--force" in again.output
    good = world.credential(21)
    world.logs["GD"].leaves.append(
        leaf_of(CredentialRevoked("GD", 22, RevocationReason.FRAUD, COSIGNED_AT))
    )
    revoked = world.credential(22)
    client = world.client(world.consortium, station_dir / "state.db")
    client.sync()  # what `verifier sync` does, over the in-memory sources
    client.close()
    # The station's databases and its scan-log key are owner-only from the start.
    for name in ("scans.db", "scans.key", "state.db"):
        assert (station_dir / name).stat().st_mode & 0o077 == 0, name
    images = tmp_path / "images"
    images.mkdir()
    for i, jws in enumerate((good, revoked)):
        cv2.imwrite(str(images / f"{i}.png"), qr_image(make_presentation(jws, world.device, NOW)))
    (images / "junk.png").write_bytes(b"\x89PNG broken")
    r = runner.invoke(
        cli,
        [
            "scan",
            "--dir",
            str(station_dir),
            "--images",
            str(images),
            "--headless",
            "--no-sync",
            "--at",
            str(NOW),
        ],
    )
    assert r.exit_code == 0, r.output
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    assert [(x["decision"], x["reasons"]) for x in lines] == [
        ("admit", []),
        ("deny", ["revoked"]),
    ]
    assert "L** W**" not in r.stdout
    out = tmp_path / "log.csv"
    r = runner.invoke(cli, ["export-log", "--dir", str(station_dir), "--out", str(out)])
    assert r.exit_code == 0 and "2 scans" in r.output
    with out.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [row["decision"] for row in rows] == ["admit", "deny"]
    assert all(row["region"] == "GD" and len(row["scan_ref"]) == 16 for row in rows)
    # The headless lines and the export carry the station's keyed reference, the same
    # for one credential in both, and never an unkeyed digest prefix.
    assert [x["scan_ref"] for x in lines] == [row["scan_ref"] for row in rows]
    assert all("digest_prefix" not in x for x in lines)


def test_cli_errors_are_one_line_messages(tmp_path: Path, world: World) -> None:
    runner = CliRunner()
    r = runner.invoke(cli, ["scan", "--dir", str(tmp_path / "none"), "--images", str(tmp_path)])
    assert r.exit_code == 1 and "verifier init" in r.output and "Traceback" not in r.output
    consortium_file = tmp_path / "c.toml"
    write_consortium(consortium_file, world.consortium)
    d = tmp_path / "st"
    assert (
        runner.invoke(
            cli, ["init", "--consortium", str(consortium_file), "--dir", str(d)]
        ).exit_code
        == 0
    )
    r = runner.invoke(cli, ["scan", "--dir", str(d), "--video", str(tmp_path / "missing.avi"),
                            "--headless", "--no-sync"])  # fmt: skip
    assert r.exit_code == 1 and "expected a video file" in r.output
    r = runner.invoke(cli, ["scan", "--dir", str(d), "--headless", "--no-sync"])
    assert r.exit_code == 1 and "exactly one frame source" in r.output
    bad = tmp_path / "bad.toml"
    bad.write_text("not = [valid")
    r = runner.invoke(cli, ["init", "--consortium", str(bad), "--dir", str(tmp_path / "x")])
    assert r.exit_code == 1 and "Traceback" not in r.output


def test_cli_sync_offline_keeps_state_and_says_so(world: World, tmp_path: Path) -> None:
    # node URLs in the consortium file: nothing listens there
    d = init_station(world, tmp_path)
    runner = CliRunner()
    r = runner.invoke(cli, ["sync", "--dir", str(d)])
    assert r.exit_code == 1
    assert "GD: failed" in r.output and "old state is kept" in r.output
    assert "Traceback" not in r.output


def test_cli_missing_camera_is_reported_and_retried_then_given_up(
    world: World, tmp_path: Path
) -> None:
    d = init_station(world, tmp_path)
    runner = CliRunner()
    r = runner.invoke(
        cli,
        ["scan", "--dir", str(d), "--camera", "97", "--headless", "--no-sync",
         "--camera-retries", "2"],
    )  # fmt: skip
    assert r.exit_code == 1
    assert "camera 97: open-failed" in r.stderr
    assert "camera 97: retrying in 0.5 s" in r.stderr
    assert "consecutive failures" in r.output and "Traceback" not in r.output


@pytest.mark.slow
def test_cli_scans_a_recorded_video_headless(world: World, tmp_path: Path) -> None:
    import numpy as np

    from verifier.synth import Scene, write_video

    d = init_station(world, tmp_path)
    runner = CliRunner()
    jws = world.credential(31)
    client = world.client(world.consortium, d / "state.db")
    client.sync()
    client.close()
    text = make_presentation(jws, world.device, NOW)
    video = write_video(tmp_path / "gate.avi", [Scene(text, 1.0, 0.2)], np.random.default_rng(2))
    r = runner.invoke(
        cli,
        [
            "scan",
            "--dir",
            str(d),
            "--video",
            str(video),
            "--headless",
            "--no-sync",
            "--at",
            str(NOW),
        ],
    )
    assert r.exit_code == 0, r.output
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    assert [x["decision"] for x in lines] == ["admit"]  # ten frames, one verdict


class MjpegCamera:
    """A network camera on loopback: serves a finite MJPEG stream (multipart JPEG over
    HTTP, as IP cameras do) of phone-screen frames, then ends the stream."""

    def __init__(self, frames: list[Any]) -> None:
        import threading

        from werkzeug.serving import make_server
        from werkzeug.wrappers import Request, Response

        jpegs = [cv2.imencode(".jpg", f)[1].tobytes() for f in frames]

        @Request.application
        def app(request: Request) -> Response:
            def body() -> Any:
                for jpeg in jpegs:
                    yield (
                        b"--frame\r\nContent-Type: image/jpeg\r\n"
                        + f"Content-Length: {len(jpeg)}\r\n\r\n".encode()
                        + jpeg
                        + b"\r\n"
                    )

            return Response(body(), mimetype="multipart/x-mixed-replace; boundary=frame")

        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}/video.mjpg"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.mark.slow
def test_cli_scans_a_network_camera_stream_offline_after_sync(world: World, tmp_path: Path) -> None:
    """`verifier scan --url` reads a camera-like MJPEG stream over real HTTP and gives the
    right verdicts offline (`--no-sync`) against the state synced beforehand: a valid
    code is admitted once (not once per frame), a revoked one is denied."""
    import numpy as np

    from verifier.synth import synthetic_frame

    d = init_station(world, tmp_path)
    runner = CliRunner()
    # A live camera stamps frames with the wall clock, so this world lives in the present.
    now = time.time()
    for sources in world.sources.values():
        for source in sources:
            source.timestamp = int(now) - 60  # cosigned a minute ago
    valid = world.credential(41, issued_at=int(now) - 3600)
    revoked = world.credential(42, issued_at=int(now) - 3600)
    world.logs["GD"].leaves.append(
        leaf_of(CredentialRevoked("GD", 42, RevocationReason.FRAUD, int(now) - 120))
    )
    client = SyncClient(
        world.consortium, d / "state.db", sources=lambda r: world.sources[r], clock=time.time
    )
    report = client.sync()
    client.close()
    assert report.region("GD").status is RegionStatus.UPDATED, report
    rng = np.random.default_rng(7)
    frames = [synthetic_frame(make_presentation(valid, world.device, now), rng)[0]] * 8
    frames += [synthetic_frame(make_presentation(revoked, world.device, now), rng)[0]] * 8
    camera = MjpegCamera(frames)
    try:
        r = runner.invoke(
            cli,
            ["scan", "--dir", str(d), "--url", camera.url, "--headless", "--no-sync",
             "--camera-retries", "1"],
        )  # fmt: skip
    finally:
        camera.close()
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    assert [x["decision"] for x in lines] == ["admit", "deny"], r.output
    assert lines[1]["reasons"] == [Reason.REVOKED.value]
    assert "Traceback" not in r.output


def test_cli_init_sets_the_station_language_and_refuses_unknown_ones(
    world: World, tmp_path: Path
) -> None:
    from credential.languages import Language
    from verifier.config import StationDir

    consortium_file = tmp_path / "consortium.toml"
    write_consortium(consortium_file, world.consortium)
    d = tmp_path / "macau-gate"
    args = ["init", "--consortium", str(consortium_file), "--dir", str(d)]
    r = CliRunner().invoke(cli, [*args, "--language", "zh-Hant"])
    assert r.exit_code == 0, r.output
    assert StationDir(d).load().language is Language.ZH_HANT
    r = CliRunner().invoke(cli, [*args, "--force", "--language", "xx"])
    assert r.exit_code == 2 and "--language" in r.output and "Traceback" not in r.output


def test_thirty_forged_codes_with_unknown_keys_cause_one_sync(world: World) -> None:
    made: list[Any] = []

    def counting(c: Any, path: Path) -> SyncClient:
        made.append(path)
        return world.client(c, path)

    syncer = LedgerSyncer(world.consortium, world.db, client_factory=counting, clock=lambda: NOW)
    trust = SyncedTrustState(world.db)
    station = Station(verify=presentation_verifier(lambda: trust), syncer=syncer,
                      clock=lambda f: NOW + f.timestamp)  # fmt: skip
    assert syncer.sync().ok
    made.clear()
    for i in range(30):
        forger = generate_private_key()  # a key no log registered; nothing anchored
        jws = world.credential(100 + i, issuer=forger, issued_at=int(NOW) + 3600)
        world.logs["GD"].leaves.pop()  # the forger cannot put its anchor on GD's log
        verdict = show(station, make_presentation(jws, world.device, NOW + i * 0.5), i * 0.5)
        assert verdict.decision is Decision.DENY
    assert len(made) == 1  # one scan-prompted sync for GD in the window, not thirty


def test_fork_in_one_region_is_kept_and_the_other_region_still_syncs(
    world: World, tmp_path: Path
) -> None:
    d = init_station(world, tmp_path)
    syncer = LedgerSyncer(world.consortium, d / "state.db", client_factory=world.client,
                          clock=lambda: NOW)  # fmt: skip
    assert syncer.sync().ok
    # GD signs another root for the size the station trusts (a split view) while MO grows.
    world.logs["GD"].leaves[0] = leaf_of(key_added(world.gd, generate_private_key()))
    world.logs["MO"].leaves.append(leaf_of(key_added(world.mo, generate_private_key())))
    outcome = syncer.sync()
    assert outcome.report is not None
    assert outcome.report.region("GD").fork is not None
    assert outcome.report.region("MO").status is RegionStatus.UPDATED
    [alarm] = SyncedTrustState(d / "state.db").fork_alarms()
    assert alarm.region == "GD" and alarm.held_checkpoint and alarm.conflicting_checkpoint
    assert alarm.held_checkpoint != alarm.conflicting_checkpoint
    r = CliRunner().invoke(cli, ["status", "--dir", str(d)])
    assert r.exit_code == 0, r.output
    assert "ALARM: FORK in GD's log at size 1" in r.output
    assert "MO: size 1" in r.output


def test_station_refuses_a_quorum_that_one_region_meets_alone(tmp_path: Path) -> None:
    from ledger.clients.sync import InsecurePolicyError

    gd, mo = member_keys("GD"), member_keys("MO")
    weak = consortium_of(gd, mo, threshold="any")
    outcome = LedgerSyncer(weak, tmp_path / "s.db", max_age_s=60).sync()
    assert not outcome.ok and "insecure_accept_self_cosigned_logs" in (outcome.error or "")
    with pytest.raises(InsecurePolicyError):
        SyncClient(weak, tmp_path / "t.db")
    SyncClient(weak, tmp_path / "u.db", insecure_accept_self_cosigned_logs=True).close()


def test_new_keys_in_a_busy_region_are_synced_on_demand_in_quick_succession(
    world: World,
) -> None:
    clock = [NOW]
    syncer = LedgerSyncer(world.consortium, world.db, client_factory=world.client,
                          clock=lambda: clock[0])  # fmt: skip
    trust = SyncedTrustState(world.db)
    station = Station(verify=presentation_verifier(lambda: trust), syncer=syncer,
                      clock=lambda f: NOW + f.timestamp)  # fmt: skip
    assert syncer.sync().ok
    for i, t in enumerate((0.0, 3.0)):
        clock[0] = NOW + t
        for s in world.sources["GD"]:
            s.timestamp = COSIGNED_AT + 30 + 10 * i  # each key on a newer checkpoint
        issuer = generate_private_key()
        world.logs["GD"].leaves.append(leaf_of(key_added(world.gd, issuer)))
        jws = world.credential(40 + i, issuer=issuer, issued_at=COSIGNED_AT + 25 + 10 * i)
        verdict = show(station, make_presentation(jws, world.device, NOW + t), t)
        assert verdict.decision is Decision.ADMIT, verdict.reasons
