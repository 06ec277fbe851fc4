"""The staff kiosk: a local web page with the live camera view and a big verdict panel.

What it does: `create_app(config)` builds a Flask app over a `KioskState` that the scan
loop feeds. Routes:

- `GET /` — the page (server-rendered; a little JS polls the status endpoint);
- `GET /stream.mjpg` — the annotated camera view as MJPEG (multipart/x-mixed-replace);
- `GET /v1/status` — JSON: the latest verdict (with the masked name and document hint
  staff need to match the person), the last few scans (no personal data), sync ages;
- `GET /healthz`, `GET /readyz` — probes (ready: every region's view within policy);
- any other `/v1/...` path or method — a JSON error body with a 4xx status.

What it does not do: decode or verify (the scan loop does, in another thread), or
listen beyond loopback unless told to. The kiosk is for the staff at this station.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from flask import Blueprint, Flask, Response, current_app, jsonify, render_template
from werkzeug.exceptions import HTTPException

from common.observability import health_blueprint, instrument
from credential.verdict import DEFAULT_MAX_SYNC_AGE_S, Decision, describe
from verifier.decode import DecodedCode
from verifier.frames import Frame
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
BGR = {  # outline colours on the live view
    Decision.ADMIT: (40, 170, 40),
    Decision.MANUAL_CHECK: (0, 190, 255),
    Decision.DENY: (40, 40, 220),
}
NEUTRAL_BGR = (255, 160, 0)


def _no_sync_info() -> Mapping[str, int | None]:
    return {}


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
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _jpeg: bytes | None = None
    _frame_seq: int = 0
    _latest: dict[str, Any] | None = None
    _latest_at: float = 0.0
    _recent: list[dict[str, Any]] = field(default_factory=list)
    _outline: tuple[Decision, float] | None = None
    _encoded_at: float = float("-inf")

    def on_event(self, event: ScanEvent) -> None:
        """Listener for Station.listeners: shows the newest verdict."""
        summary = event.to_json(include_holder=True)
        summary["label"] = decision_label(event.verdict.decision)
        summary["messages"] = [describe(r) for r in event.verdict.reasons]
        with self._lock:
            self._latest = summary
            self._latest_at = self.clock()
            self._outline = (event.verdict.decision, self._latest_at)
            row = {k: summary[k] for k in ("at", "decision", "label", "reasons", "region")}
            self._recent = [row, *self._recent][:RECENT_SCANS]

    def on_frame(self, frame: Frame, codes: list[DecodedCode]) -> None:
        """Listener for Station.frame_listeners: keeps the annotated JPEG of the view."""
        with self._lock:
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
        if latest is not None and age is not None and age > VERDICT_HOLD_S:
            latest = None  # an old verdict must not be read as the next person's
        ages = dict(self.sync_ages())
        stale = any(a is None or a > self.max_sync_age_s for a in ages.values())
        return {
            "verdict": latest,
            "verdict_age_s": None if latest is None or age is None else round(age, 1),
            "recent": recent,
            "sync_age_s": ages,
            "sync_stale": stale,
            "online": self.online(),
            "alarm": self.alarm(),
            "replay": _replay_json(self.replay()),
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


@ui.get("/")
def page() -> str:
    return render_template("kiosk.html", poll_ms=POLL_MS, hold_s=VERDICT_HOLD_S)


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
    return jsonify(_state().snapshot())


def _json_error(e: HTTPException) -> tuple[Response, int]:
    code = e.code or 500
    name = (e.name or "error").lower().replace(" ", "_")
    return jsonify({"error": name, "message": e.description or name}), code


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """The kiosk app; `config["KIOSK_STATE"]` is the state the scan loop feeds."""
    app = Flask(__name__)
    app.config.update(KIOSK_STATE=KioskState())
    if config:
        app.config.update(config)
    app.register_blueprint(ui)
    app.register_blueprint(api)
    app.register_error_handler(HTTPException, _json_error)
    state: KioskState = app.config["KIOSK_STATE"]
    checks = readiness_checks(lambda: state.sync_ages(), state.max_sync_age_s)
    app.register_blueprint(health_blueprint(lambda: checks))
    metrics: StationMetrics | None = app.config.get("KIOSK_METRICS")
    if metrics is not None:
        instrument(app, metrics.registry)

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
