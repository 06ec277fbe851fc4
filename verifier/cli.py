"""Command-line group for `healthbridge verifier`: init, sync, scan, export-log.

`scan` runs the station: frames from a camera, a stream, a video or a folder; verdicts
on the kiosk page (default) or as one JSON line each on stdout (`--headless`); a
background sync while online. Everything keeps working offline on the last synced
state. Every failure the user can cause ends in a one-line message, not a traceback.
"""

from __future__ import annotations

import json
import shutil
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from common.local_page import networks_option

DEFAULT_DIR = "verifier-station"
dir_option = click.option(
    "--dir",
    "station_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DIR,
    show_default=True,
    envvar="HEALTHBRIDGE_VERIFIER_DIR",
    help="The station folder.",
)


def _fail(e: Exception) -> click.ClickException:
    return click.ClickException(f"{type(e).__name__}: {e}")


@click.group()
def cli() -> None:
    """Verifier station commands."""


@cli.command()
@click.option(
    "--consortium",
    "consortium_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The consortium file (trust root), handed over out of band.",
)
@dir_option
@click.option("--name", default="station", show_default=True, help="Station name.")
@click.option(
    "--language",
    default="en",
    show_default=True,
    help="The kiosk's language: en, zh-Hans, zh-Hant or pt (staff can switch it later).",
)
@click.option("--force", is_flag=True, help="Overwrite an existing station configuration.")
@click.option(
    "--replay",
    default="memory",
    show_default=True,
    help='Replay memory: "memory" (this station alone) or a redis:// URL shared by the '
    "checkpoint's lanes.",
)
def init(
    consortium_file: Path, station_dir: Path, name: str, language: str, force: bool, replay: str
) -> None:
    """Create a station folder: trust root, configuration, empty state and scan log."""
    from credential.languages import LanguageError, parse_language
    from ledger.log.consortium import load_consortium
    from verifier.config import StationConfig, StationDir, render_config
    from verifier.errors import VerifierError
    from verifier.scanlog import ScanLog

    d = StationDir(station_dir)
    try:
        lang = parse_language(language)
    except LanguageError as e:
        raise click.BadParameter(str(e), param_hint="--language") from e
    try:
        consortium = load_consortium(consortium_file)  # validate before copying
        if d.config.exists() and not force:
            raise click.ClickException(f"{d.config} exists; pass --force to overwrite")
        d.root.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(consortium_file, d.consortium)
        d.config.write_text(render_config(StationConfig(name=name, replay=replay, language=lang)))
        ScanLog(d.scan_log).close()
    except (VerifierError, ValueError, OSError) as e:
        raise _fail(e) from e
    regions = ", ".join(consortium.regions())
    click.echo(f"station {name!r} ready in {d.root} (regions: {regions})")
    click.echo("next: healthbridge verifier sync")


def _load(station_dir: Path) -> tuple[Any, Any, Any]:
    from ledger.log.consortium import load_consortium
    from verifier.config import StationDir
    from verifier.errors import VerifierError

    d = StationDir(station_dir)
    try:
        config = d.load()
        consortium = load_consortium(d.consortium)
    except (VerifierError, ValueError, OSError) as e:
        raise _fail(e) from e
    return d, config, consortium


@cli.command()
@dir_option
@click.option("--region", default=None, help="Sync only this region.")
def sync(station_dir: Path, region: str | None) -> None:
    """Sync every region's log state (quorum-cosigned checkpoints) into the station."""
    from verifier.syncing import LedgerSyncer

    d, config, consortium = _load(station_dir)
    syncer = LedgerSyncer(
        consortium, d.state_db, max_age_s=config.policy.max_sync_age_s,
        insecure_accept_self_cosigned_logs=config.insecure_accept_self_cosigned_logs,
        pace=config.sync_pace,
    )  # fmt: skip
    bars: dict[str, Any] = {}

    def progress(p: Any) -> None:
        bar = bars.get(p.region)
        if bar is None:
            bar = click.progressbar(length=max(1, p.total), label=f"{p.region} entries")
            bar.__enter__()
            bars[p.region] = bar
        bar.update(p.done - bar.pos)

    try:
        outcome = syncer.sync(region, progress=progress)
    finally:
        for bar in bars.values():
            bar.__exit__(None, None, None)
    if outcome.report is None:
        raise click.ClickException(f"sync failed: {outcome.error}")
    for r in outcome.report.regions:
        age = outcome.report.staleness_s(r.region)
        line = f"{r.region}: {r.status.value}, size {r.old_size} -> {r.new_size}"
        line += f", checkpoint age {age} s" if age is not None else ", never synced"
        click.echo(line + (f" (from {r.source})" if r.source else ""))
        for err in r.errors:
            click.echo(f"  {err}", err=True)
        if r.fork:
            click.echo(f"  ALARM: fork of {r.region}'s log: {r.fork}", err=True)
    if not outcome.ok:
        raise click.ClickException("no region could be synced (offline?); the old state is kept")


@cli.command()
@dir_option
@click.option("--camera", type=int, default=None, help="Camera index (OpenCV).")
@click.option("--video", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--images", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--url", default=None, help="Network stream (MJPEG over HTTP, RTSP).")
@click.option("--headless", is_flag=True, help="No kiosk: one JSON line per verdict.")
@click.option("--kiosk-port", type=int, default=None, help="Kiosk port (default: config).")
@click.option(
    "--kiosk-host",
    default="127.0.0.1",
    show_default=True,
    help="Address the kiosk listens on (0.0.0.0 inside a container; it shows masked names).",
)
@click.option(
    "--kiosk-allow-from",
    multiple=True,
    metavar="CIDR",
    callback=networks_option,
    help="Client network the kiosk also answers (repeatable; default: loopback only).",
)
@click.option("--width", type=int, default=1280, show_default=True)
@click.option("--height", type=int, default=720, show_default=True)
@click.option("--fps", type=float, default=30.0, show_default=True)
@click.option("--no-sync", is_flag=True, help="Never touch the network (offline station).")
@click.option(
    "--camera-retries",
    type=click.IntRange(min=1),
    default=None,
    help="Give up after this many consecutive camera/stream failures (default: never).",
)
@click.option(
    "--at",
    "at",
    type=float,
    default=None,
    help="Verify as of this Unix time plus the media time (re-checking a recording).",
)
@click.option(
    "--metrics-port",
    default=None,
    type=click.IntRange(0, 65535),
    help="Serve /metrics, /healthz and /readyz on this separate port (keep it private).",
)
@click.option("--metrics-host", default="127.0.0.1", show_default=True)
def scan(
    station_dir: Path,
    camera: int | None,
    video: Path | None,
    images: Path | None,
    url: str | None,
    headless: bool,
    kiosk_port: int | None,
    kiosk_host: str,
    kiosk_allow_from: tuple[str, ...],
    width: int,
    height: int,
    fps: float,
    no_sync: bool,
    camera_retries: int | None,
    at: float | None,
    metrics_port: int | None,
    metrics_host: str,
) -> None:
    """Scan codes from a camera, stream, video or image folder and show verdicts."""
    from common.local_page import LOOPBACK_NETWORKS
    from common.serving import serve_in_thread
    from ledger.clients.sync import SyncedTrustState
    from verifier.errors import VerifierError
    from verifier.frames import CaptureSettings, RetryPolicy, SourceEvent, open_source
    from verifier.kiosk import KioskState, create_app
    from verifier.scanlog import ScanLog, ScanLogWriter
    from verifier.station import Deduper, ScanEvent, Station, presentation_verifier
    from verifier.syncing import BackgroundSync, LedgerSyncer, fork_alarms, sync_ages

    d, config, consortium = _load(station_dir)
    # OpenCV's own diagnostics (e.g. "QR: ECI is not supported properly") are not for
    # staff or gate scripts reading this process's output; keep only its errors.
    import cv2

    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

    source_listeners: list[Any] = []

    def on_source(e: SourceEvent) -> None:
        click.echo(f"{e.source}: {e.kind.value} {e.detail}".rstrip(), err=True)
        for listener in source_listeners:
            listener(e)

    try:
        source = open_source(
            camera=camera,
            video=video,
            images=images,
            url=url,
            settings=CaptureSettings(width, height, fps),
            retry=RetryPolicy(max_failures=camera_retries),
            on_event=on_source,
        )
        log = ScanLog(d.scan_log)
    except VerifierError as e:
        raise _fail(e) from e
    trust = SyncedTrustState(d.state_db)
    syncer = None
    if not no_sync:
        syncer = LedgerSyncer(
            consortium, d.state_db, max_age_s=config.policy.max_sync_age_s,
            insecure_accept_self_cosigned_logs=config.insecure_accept_self_cosigned_logs,
            pace=config.sync_pace,
        )  # fmt: skip
    background = None
    if syncer is not None:
        background = BackgroundSync(syncer, config.sync_interval_s)
        background.start()
    from verifier.replay import replay_guard_for

    guard = replay_guard_for(config.replay)
    # The scan loop hands records over; a thread of their own commits them.
    writer = ScanLogWriter(log)
    station = Station(
        verify=presentation_verifier(lambda: trust, config.policy, guard),
        log=writer,
        syncer=syncer,
        deduper=Deduper(config.dedupe_s),
    )
    if at is not None:
        start = at
        station.clock = lambda f: start + f.timestamp
    regions = consortium.regions()
    from common.observability import start_ops_server
    from verifier.metrics import StationMetrics

    def ages() -> Mapping[str, int | None]:
        return sync_ages(d.state_db, time.time(), regions)

    metrics = StationMetrics.create(
        ages,
        config.policy.max_sync_age_s,
        station,
        alarm=lambda: None if syncer is None else syncer.fork_alarm,
    )
    metrics.attach(station)
    ops = None
    if metrics_port is not None:
        checks = metrics.checks
        ops = start_ops_server(metrics.registry, lambda: checks, metrics_host, metrics_port)
        click.echo(f"metrics and probes on {ops.url}/metrics", err=True)
    server = None
    if headless:

        def emit(ev: ScanEvent) -> None:
            sys.stdout.write(json.dumps(ev.to_json(), sort_keys=True) + "\n")
            sys.stdout.flush()

        station.listeners.append(emit)
    else:
        state = KioskState(
            log=log,
            sync_ages=ages,
            online=lambda: None if syncer is None else syncer.online,
            alarm=lambda: "; ".join(fork_alarms(d.state_db)) or None,
            replay=guard.status,
            max_sync_age_s=config.policy.max_sync_age_s,
            language=config.language,
            on_language=lambda lang: save_language(d, lang),
        )
        source_listeners.append(state.on_source)
        station.listeners.append(state.on_event)
        station.frame_listeners.append(state.on_frame)
        port = kiosk_port or config.kiosk_port
        server = serve_in_thread(
            create_app(
                {
                    "KIOSK_STATE": state,
                    "KIOSK_METRICS": metrics,
                    "KIOSK_ALLOWED_NETWORKS": (*LOOPBACK_NETWORKS, *kiosk_allow_from),
                }
            ),
            kiosk_host,
            port,
            name="kiosk",
        )
        click.echo(f"kiosk: http://{kiosk_host}:{port}/", err=True)
        station.listeners.append(
            lambda ev: click.echo(
                f"{ev.verdict.decision.value} {','.join(r.value for r in ev.verdict.reasons)}",
                err=True,
            )
        )
    try:
        for _ in station.run(source):
            pass
        if server is not None:
            click.echo("source ended; kiosk stays up until Ctrl-C", err=True)
            threading.Event().wait()
    except KeyboardInterrupt:
        pass
    except VerifierError as e:
        raise _fail(e) from e
    finally:
        source.close()
        if background is not None:
            background.stop()
        if server is not None:
            server.stop()
        if ops is not None:
            ops.stop()
        trust.close()
        # Write what the scan loop queued before closing the file under the writer:
        # closing it first lost the last scans of a run when the writer lagged.
        writer.close()
        log.close()


def save_language(d: Any, language: Any) -> None:
    """Keep the language staff chose in station.toml, so a restart keeps it too."""
    from verifier.errors import VerifierError

    try:
        d.save_language(language)
    except VerifierError as e:
        click.echo(f"could not save the language: {e}", err=True)


@cli.command()
@dir_option
def status(station_dir: Path) -> None:
    """Show each region's synced view (tree size, age) and every fork alarm kept."""
    from ledger.clients.sync import SyncedTrustState
    from verifier.syncing import fork_alarms, sync_ages

    d, config, consortium = _load(station_dir)
    ages = sync_ages(d.state_db, time.time(), consortium.regions())
    sizes: dict[str, int] = {}
    if d.state_db.exists():
        state = SyncedTrustState(d.state_db)
        try:
            sizes = {r: state.tree_size(r) for r in consortium.regions()}
        finally:
            state.close()
    for region, age in ages.items():
        if age is None:
            click.echo(f"{region}: never synced")
            continue
        stale = " (older than the policy allows)" if age > config.policy.max_sync_age_s else ""
        click.echo(f"{region}: size {sizes.get(region, 0)}, view age {age} s{stale}")
    alarms = fork_alarms(d.state_db)
    for line in alarms:
        click.echo(f"ALARM: {line}")
    if not alarms:
        click.echo("no fork alarms")


@cli.command("export-log")
@dir_option
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
def export_log(station_dir: Path, out: Path) -> None:
    """Export the scan log (no personal data) as CSV for re-checking after a sync."""
    from verifier.config import StationDir
    from verifier.errors import VerifierError
    from verifier.scanlog import ScanLog

    d = StationDir(station_dir)
    if not d.scan_log.exists():
        raise click.ClickException(f"no scan log at {d.scan_log}: run `verifier init` first")
    try:
        log = ScanLog(d.scan_log)
        try:
            n = log.export_csv(out)
        finally:
            log.close()
    except VerifierError as e:
        raise _fail(e) from e
    click.echo(f"{n} scans written to {out}")
