"""The staff kiosk: a local web page with the live camera view and a big verdict panel.

What it does: `create_app(config)` builds a Flask app over a `KioskState` that the scan
loop feeds. Routes:

- `GET /` — the page (server-rendered; a little JS polls the status endpoint);
- `GET /stream.mjpg` — the annotated camera view as MJPEG (multipart/x-mixed-replace);
- `GET /v1/status` — JSON: the latest verdict (with the masked name and document hint
  staff need to match the person), the last few scans in plain words (no personal
  data), sync ages, whether the camera is live (and since when it is not), alarms;
- `POST /v1/language` — staff switch the station's language (`{"language": "pt"}`);
- `GET /healthz`, `GET /readyz` — probes (ready: every region's view within policy);
- any other `/v1/...` path or method — a JSON error body with a 4xx status.

Every word on the page is in the station's language (`station.toml` `language`,
switchable from the page), through the verifier's gettext catalogs (Flask-Babel,
`verifier/translations`); times are the station's local time on a 24-hour clock.
The JSON keeps the reason codes beside the words, for scripts.

What it does not do: decode or verify (the scan loop does, in another thread), or
listen beyond loopback unless told to. The kiosk is for the staff at this station:
every route but the probes answers only clients in `KIOSK_ALLOWED_NETWORKS` (loopback by
default; bound to 0.0.0.0 it still refuses the rest of the LAN, whatever Host header
they send) under a name in `KIOSK_ALLOWED_HOSTS` (loopback names by default: a web page
re-pointed at 127.0.0.1 by DNS rebinding sends its own name). See common.local_page.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import cv2
import numpy as np
from babel.dates import format_timedelta
from flask import Blueprint, Flask, Response, current_app, jsonify, render_template, request
from flask_babel import Babel, gettext
from werkzeug.exceptions import HTTPException

from common.local_page import LOOPBACK_HOSTS, LOOPBACK_NETWORKS, LocalGuard, Refusal
from common.observability import health_blueprint, instrument
from credential.languages import (
    DEFAULT_LANGUAGE,
    N_,
    Language,
    LanguageError,
    format_time,
    parse_language,
)
from credential.reasons import Reason
from credential.verdict import DEFAULT_MAX_SYNC_AGE_S, Decision, describe
from verifier.decode import DecodedCode
from verifier.frames import Frame, SourceEvent, SourceEventKind
from verifier.metrics import StationMetrics, readiness_checks
from verifier.scanlog import ScanLog
from verifier.station import ScanEvent, decision_label

RECENT_SCANS = 8  # rows shown under the verdict panel
VERDICT_HOLD_S = 12.0  # seconds a verdict stays on screen before "ready" returns
OUTLINE_HOLD_S = 1.5  # seconds an outline keeps its verdict colour after a scan
JPEG_QUALITY = 75  # percent
STREAM_MAX_FPS = 15.0  # frames per second sent to the browser
STREAM_MAX_S = 6 * 3600.0  # seconds one MJPEG response lasts before the browser reconnects
POLL_MS = 300  # milliseconds between status polls of the page
CAMERA_LIVE_S = 2.0  # seconds without a frame after which the camera counts as disconnected
MAX_LANGUAGE_BODY = 256  # bytes of a language switch request
PROBE_PATHS = ("/healthz", "/readyz")  # answered to anyone: no personal data in them
BGR = {  # outline colours on the live view
    Decision.ADMIT: (40, 170, 40),
    Decision.MANUAL_CHECK: (0, 190, 255),
    Decision.DENY: (40, 40, 220),
}
NEUTRAL_BGR = (255, 160, 0)
COLOUR_WORDS = {"green": N_("GREEN"), "yellow": N_("YELLOW"), "red": N_("RED")}


def _no_sync_info() -> Mapping[str, int | None]:
    return {}


def _keep_language(_: Language) -> None:
    return None


def _replay_json(status: Any) -> dict[str, Any] | None:
    if status is None:
        return None
    return {"shared": status.shared, "degraded": status.degraded, "detail": status.detail}


@dataclass
class KioskState:
    """What the page shows, written by the scan loop and read by request threads."""

    log: ScanLog | None = None
    sync_ages: Callable[[], Mapping[str, int | None]] = _no_sync_info
    online: Callable[[], bool | None] = lambda: None
    alarm: Callable[[], str | None] = lambda: None  # e.g. a ledger fork seen by the sync
    replay: Callable[[], Any] = lambda: None  # verifier.replay.ReplayStatus, if any
    max_sync_age_s: int = DEFAULT_MAX_SYNC_AGE_S
    clock: Callable[[], float] = time.time
    language: Language = DEFAULT_LANGUAGE
    on_language: Callable[[Language], None] = _keep_language  # e.g. save to station.toml
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _jpeg: bytes | None = None
    _frame_seq: int = 0
    _verdict_seq: int = 0
    _latest: dict[str, Any] | None = None
    _latest_at: float = 0.0
    _recent: list[dict[str, Any]] = field(default_factory=list)
    _outline: tuple[Decision, float] | None = None
    _encoded_at: float = float("-inf")
    _started_at: float | None = None
    _last_frame_at: float | None = None
    _source_note: str | None = None  # the frame source's last word when it stopped

    def __post_init__(self) -> None:
        self._started_at = self.clock()

    def set_language(self, language: Language) -> None:
        with self._lock:
            self.language = language
        self.on_language(language)

    def on_event(self, event: ScanEvent) -> None:
        """Listener for Station.listeners: shows the newest verdict."""
        summary = event.to_json(include_holder=True)
        with self._lock:
            self._verdict_seq += 1
            summary["seq"] = self._verdict_seq
            self._latest = summary
            self._latest_at = self.clock()
            self._outline = (event.verdict.decision, self._latest_at)
            row = {k: summary[k] for k in ("seq", "at", "decision", "reasons", "region")}
            self._recent = [row, *self._recent][:RECENT_SCANS]

    def on_source(self, event: SourceEvent) -> None:
        """Listener for the frame source's events: remembers why frames stopped."""
        with self._lock:
            if event.kind is SourceEventKind.OPENED:
                self._source_note = None
            elif event.kind in (
                SourceEventKind.LOST,
                SourceEventKind.OPEN_FAILED,
                SourceEventKind.GAVE_UP,
            ):
                self._source_note = event.kind.value

    def on_frame(self, frame: Frame, codes: list[DecodedCode]) -> None:
        """Listener for Station.frame_listeners: keeps the annotated JPEG of the view."""
        with self._lock:
            self._last_frame_at = self.clock()
            outline = self._outline
            # JPEG encoding costs several ms per 1280x720 frame: encode no more often
            # than the stream sends, unless codes are in view (their outline matters).
            now = self.clock()
            if not codes and now - self._encoded_at < 1.0 / STREAM_MAX_FPS:
                return
            self._encoded_at = now
        colour = NEUTRAL_BGR
        if outline is not None and self.clock() - outline[1] <= OUTLINE_HOLD_S:
            colour = BGR[outline[0]]
        jpeg = annotate_jpeg(frame.image, codes, colour)
        with self._lock:
            self._jpeg = jpeg
            self._frame_seq += 1

    def snapshot(self) -> dict[str, Any]:
        now = self.clock()
        with self._lock:
            latest = dict(self._latest) if self._latest else None
            age = now - self._latest_at if latest else None
            recent = list(self._recent)
            last_frame, started, note = self._last_frame_at, self._started_at, self._source_note
        if latest is not None and age is not None and age > VERDICT_HOLD_S:
            latest = None  # an old verdict must not be read as the next person's
        ages = dict(self.sync_ages())
        stale = sorted(r for r, a in ages.items() if a is None or a > self.max_sync_age_s)
        live = last_frame is not None and now - last_frame <= CAMERA_LIVE_S
        return {
            "verdict": latest,
            "verdict_age_s": None if latest is None or age is None else round(age, 1),
            "recent": recent,
            "sync_age_s": ages,
            "sync_stale": bool(stale),
            "stale_regions": stale,
            "online": self.online(),
            "alarm": self.alarm(),
            "replay": _replay_json(self.replay()),
            "camera": {
                "live": live,
                # since when the view is dark: the last frame, or the kiosk's start
                "since": None if live else (last_frame if last_frame is not None else started),
                "source": note,
            },
            "language": self.language.value,
        }

    def frame(self) -> tuple[int, bytes | None]:
        with self._lock:
            return self._frame_seq, self._jpeg


def annotate_jpeg(image: Any, codes: list[DecodedCode], colour: tuple[int, int, int]) -> bytes:
    """The frame as JPEG with each decoded code's outline drawn on it."""
    view = image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if codes:
        view = view.copy()
        for code in codes:
            pts = np.array(code.corners, dtype=np.int32).reshape(-1, 1, 2)
            cv2.polylines(view, [pts], isClosed=True, color=colour, thickness=6)
    ok, buf = cv2.imencode(".jpg", view, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    return bytes(buf) if ok else b""


def _state() -> KioskState:
    state = current_app.config["KIOSK_STATE"]
    assert isinstance(state, KioskState)
    return state


ui = Blueprint("ui", __name__)
api = Blueprint("api", __name__, url_prefix="/v1")


def _age_words(seconds: int | None, language: Language) -> str:
    if seconds is None:
        return gettext("never synced")
    return str(
        format_timedelta(timedelta(seconds=seconds), format="short", locale=language.formats)
    )


def _reason_words(reasons: list[str]) -> str:
    if not reasons:
        return gettext("Valid health code.")
    return " ".join(gettext(describe(Reason(r))) for r in reasons)


def localise(snap: dict[str, Any], language: Language) -> dict[str, Any]:
    """The snapshot with every text staff read, in `language` (inside a request, whose
    locale Flask-Babel took from the station's language)."""
    out = dict(snap)
    v = snap["verdict"]
    if v is not None:
        v = dict(v)
        decision = Decision(v["decision"])
        v["label"] = gettext(decision_label(decision))
        v["messages"] = [gettext(describe(Reason(r))) for r in v["reasons"]]
        v["summary"] = _reason_words(v["reasons"])
        v["time_text"] = format_time(v["at"], language)
        v["colour_text"] = gettext(COLOUR_WORDS[v["colour"]]) if v.get("colour") else ""
        out["verdict"] = v
    rows = []
    for row in snap["recent"]:
        row = dict(row)
        row["label"] = gettext(decision_label(Decision(row["decision"])))
        row["time_text"] = format_time(row["at"], language)
        row["words"] = _reason_words(row["reasons"])
        rows.append(row)
    out["recent"] = rows
    ages = snap["sync_age_s"]
    parts = [f"{r} {_age_words(ages[r], language)}" for r in sorted(ages)]
    out["sync_text"] = ", ".join(parts) if parts else gettext("never synced")
    if snap["online"] is False:
        out["sync_text"] += " · " + gettext("offline")
    if snap["stale_regions"]:
        out["sync_alarm"] = gettext(
            "Ledger data too old for %(regions)s: codes from there cannot be admitted."
            " Sync the station.",
            regions=", ".join(snap["stale_regions"]),
        )
    else:
        out["sync_alarm"] = None
    if snap["alarm"]:
        out["fork_alarm"] = gettext(
            "LEDGER ALARM: a ledger shows two different histories. Stop and call the supervisor."
        )
    else:
        out["fork_alarm"] = None
    replay = snap.get("replay")
    if replay and replay.get("degraded"):
        # Shared replay memory down: this lane alone remembers the codes it saw.
        out["replay_text"] = gettext(
            "Replay check: this lane only (%(detail)s)", detail=replay.get("detail") or ""
        )
    else:
        out["replay_text"] = None
    cam = dict(snap["camera"])
    if cam["live"]:
        cam["text"] = None
    else:
        cam["since_text"] = format_time(cam["since"], language)
        cam["text"] = gettext("Camera disconnected since %(time)s.", time=cam["since_text"])
    out["camera"] = cam
    return out


@ui.get("/")
def page() -> str:
    language = _state().language
    return render_template(
        "kiosk.html",
        poll_ms=POLL_MS,
        hold_s=VERDICT_HOLD_S,
        language=language,
        languages=list(Language),
    )


@ui.get("/stream.mjpg")
def stream() -> Response:
    state = _state()

    def parts() -> Iterator[bytes]:
        started = time.monotonic()
        last = -1
        while time.monotonic() - started < STREAM_MAX_S:
            seq, jpeg = state.frame()
            if jpeg and seq != last:
                last = seq
                yield (
                    b"--frame\r\nContent-Type: image/jpeg\r\n"
                    + f"Content-Length: {len(jpeg)}\r\n\r\n".encode()
                    + jpeg
                    + b"\r\n"
                )
            time.sleep(1.0 / STREAM_MAX_FPS)

    return Response(parts(), mimetype="multipart/x-mixed-replace; boundary=frame")


@api.get("/status")
def status() -> Response:
    state = _state()
    snap = state.snapshot()
    return jsonify(localise(snap, Language(snap["language"])))


@api.post("/language")
def switch_language() -> tuple[Response, int]:
    """Staff switch the page's language. JSON only: a form posted from another site
    cannot send `application/json` without a CORS preflight, which this app refuses."""
    if not request.is_json or (request.content_length or 0) > MAX_LANGUAGE_BODY:
        return jsonify(error="unsupported_media_type", message="expected a small JSON body"), 415
    body = request.get_json(silent=True)
    tag = body.get("language") if isinstance(body, dict) else None
    if not isinstance(tag, str):
        return jsonify(error="bad_request", message='expected {"language": "<tag>"}'), 400
    try:
        language = parse_language(tag)
    except LanguageError as e:
        return jsonify(error="unsupported_language", message=str(e)), 400
    _state().set_language(language)
    return jsonify(language=language.value), 200


def _json_error(e: HTTPException) -> tuple[Response, int]:
    code = e.code or 500
    name = (e.name or "error").lower().replace(" ", "_")
    return jsonify({"error": name, "message": e.description or name}), code


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """The kiosk app; `config["KIOSK_STATE"]` is the state the scan loop feeds."""
    app = Flask(__name__)
    app.config.update(
        KIOSK_STATE=KioskState(),
        KIOSK_ALLOWED_HOSTS=LOOPBACK_HOSTS,
        KIOSK_ALLOWED_NETWORKS=LOOPBACK_NETWORKS,
    )
    if config:
        app.config.update(config)
    guard = LocalGuard.parse(
        app.config["KIOSK_ALLOWED_HOSTS"], app.config["KIOSK_ALLOWED_NETWORKS"]
    )

    @app.before_request
    def _local_only() -> tuple[Response, int] | None:
        # The probes carry no personal data and are asked by the container runtime.
        if request.path in PROBE_PATHS:
            return None
        refusal = guard.refusal(request.host, request.remote_addr)
        if refusal is None:
            return None
        message = (
            "the kiosk answers only the station's own screen"
            if refusal is Refusal.FORBIDDEN_PEER
            else "the kiosk answers only under its own host name"
        )
        return jsonify({"error": refusal.value, "message": message}), 403

    app.register_blueprint(ui)
    app.register_blueprint(api)
    app.register_error_handler(HTTPException, _json_error)
    state: KioskState = app.config["KIOSK_STATE"]
    checks = readiness_checks(lambda: state.sync_ages(), state.max_sync_age_s)
    app.register_blueprint(health_blueprint(lambda: checks))
    metrics: StationMetrics | None = app.config.get("KIOSK_METRICS")
    if metrics is not None:
        instrument(app, metrics.registry)
    # Catalogs in verifier/translations (app.root_path is the verifier package).
    Babel(app, locale_selector=lambda: _state().language.catalog)

    @app.errorhandler(Exception)
    def _unexpected(e: Exception) -> tuple[Response, int]:
        # Never a traceback or a bare 500 page to the kiosk: log it, answer in JSON.
        app.logger.exception("kiosk error")
        return jsonify({"error": "internal", "message": "the kiosk hit an error"}), 503

    @app.after_request
    def _headers(resp: Response) -> Response:
        resp.headers.setdefault("Cache-Control", "no-store")
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'",
        )
        return resp

    return app
