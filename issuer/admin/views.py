"""The console's web pages: a Flask blueprint under /console, server-rendered with
Jinja, every form CSRF-protected, every page usable without JavaScript.

Views only translate between HTTP and `AdminOps` (issuer.admin.ops): they parse form
fields, call one operation, and render or redirect (post/redirect/get). Errors become
a plain page with the reason and a 4xx status - never a traceback.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext, ngettext
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException

from credential.claims import StatusColour
from credential.languages import (
    N_,
    Language,
    LanguageError,
    format_datetime,
    format_hour,
    language_of,
    negotiate,
    parse_language,
)
from issuer.admin import accounts_db
from issuer.admin.accounts import Permission
from issuer.admin.charts import Bar, bar_chart, duration_text, meter
from issuer.admin.ops import AdminOps, Who
from issuer.admin.services import REVOCATION_REASONS
from issuer.audit import Channel
from issuer.errors import BadRequestError, IssuerError, RateLimitedError, UnauthorizedError
from issuer.ledger_state import AlarmKind, LedgerAlarm

console = Blueprint(
    "console", __name__, url_prefix="/console", template_folder="templates", static_folder="static"
)
csrf = CSRFProtect()  # initialised on the issuer's app by issuer.admin.wiring
AUDIT_PAGE_ROWS = 100
MAX_FORM_CHARS = 500
MAX_NEXT_CHARS = 512  # characters of a `next` path after login or a language switch


def ops() -> AdminOps:
    o: AdminOps = current_app.extensions["issuer.admin_ops"]
    return o


def address() -> str:
    return (request.remote_addr or "unknown")[:64]


def field(name: str, max_chars: int = MAX_FORM_CHARS, required: bool = True) -> str:
    value = request.form.get(name, "").strip()
    if required and not value:
        raise BadRequestError(gettext("the field %(name)s is required", name=repr(name)))
    if len(value) > max_chars:
        raise BadRequestError(
            gettext(
                "the field %(name)s is longer than %(num)s characters",
                name=repr(name),
                num=max_chars,
            )
        )
    return value


def parse_time(text: str) -> int:
    """Unix seconds or an ISO 8601 time (UTC unless it says otherwise)."""
    text = text.strip()
    if text.isdigit() and len(text) <= 12:
        return int(text)
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as e:
        raise BadRequestError(f"expected a time like 2026-01-31T08:00, found {text[:32]!r}") from e
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return int(t.timestamp())


def console_language() -> Language:
    """The admin's chosen language; before login (or with none chosen), the browser's."""
    chosen = g.get("console_language")
    return chosen if isinstance(chosen, Language) else negotiate(request.accept_languages)


@console.app_template_filter("when")
def when(ts: int | None) -> str:
    """A time in the admin's language, 24-hour, in UTC (both regions read one clock)."""
    if ts is None:
        return "—"
    return f"{format_datetime(ts, console_language(), UTC)} UTC"


# Values of the credential and key models shown as words; anything else shows as is.
WORDS = {
    "green": N_("green"),
    "yellow": N_("yellow"),
    "red": N_("red"),
    "active": N_("active"),
    "revoked": N_("revoked"),
    "expired": N_("expired"),
    "retired": N_("retired"),
    "compromised": N_("compromised"),
    "issued": N_("issued"),
    "reinstated": N_("reinstated"),
    "vaccination": N_("vaccination"),
    "test": N_("test"),
    "recovery": N_("recovery"),
    "admin": N_("admin decision"),
    # the kinds of evidence a ledger node's witness keeps (ledger.joint.witness.EvidenceKind)
    "same_size_other_root": N_("two roots for one tree size"),
    "inconsistent_proof": N_("inconsistent consistency proof"),
    "rule_violation": N_("log rule broken"),
}


@console.app_template_filter("word")
def word(value: object) -> str:
    text = str(value)
    return gettext(WORDS[text]) if text in WORDS else text


@console.app_template_filter("alarm")
def alarm_text(alarm: LedgerAlarm) -> str:
    """What the console noticed about a region's log, in the admin's language."""
    if alarm.kind is AlarmKind.FORK:
        return gettext("fork: two different roots for tree size %(size)s", size=alarm.size)
    if alarm.kind is AlarmKind.ROLLBACK:
        return gettext(
            "rollback: the tree went from size %(seen)s down to %(size)s",
            seen=alarm.seen_size,
            size=alarm.size,
        )
    return gettext("the checkpoint's signature was refused")


def ago(seconds: int | None) -> str:
    """An age in the admin's language ("3 h 05 min", "3 小时 05 分钟")."""
    return duration_text(seconds, gettext)


@console.context_processor
def inject() -> dict[str, Any]:
    who = g.get("who")
    return {
        "console_language": console_language(),
        "console_languages": list(Language),
        "who": who,
        "region": current_app.extensions["issuer"].region,
        "may": (lambda p: who is not None and who.principal.may(Permission(p))),
        "reasons": sorted(REVOCATION_REASONS),
    }


@console.before_request
def authenticate() -> ResponseReturnValue | None:
    if request.method == "POST":
        csrf.protect()
    if request.endpoint in ("console.login", "console.static"):
        return None
    sid = session.get("sid")
    if not isinstance(sid, str):
        return redirect(url_for("console.login", next=request.full_path))
    c = ops().ctx
    try:
        info = accounts_db.resume_session(c.sessions, sid, c.now())
    except UnauthorizedError as e:
        session.clear()
        again = gettext("Please log in again.")
        flash(f"{e.message} — {again}", "warn")
        return redirect(url_for("console.login"))
    g.who = Who(info.principal, address(), Channel.CONSOLE)
    # A value this version does not speak (None from language_of): follow the browser.
    g.console_language = language_of(info.language) if info.language else None
    return None


@console.after_request
def headers(resp: Response) -> Response:
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["X-Frame-Options"] = "DENY"
    resp.headers["Referrer-Policy"] = "same-origin"
    resp.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'"
    )
    return resp


@console.errorhandler(IssuerError)
def issuer_error(e: IssuerError) -> tuple[str, int]:
    status = 503 if e.http_status >= 500 else e.http_status
    return render_template("console/error.html", code=e.code, message=e.message), status


@console.errorhandler(CSRFError)
def csrf_error(e: CSRFError) -> tuple[str, int]:
    msg = gettext(
        "The form was not sent by this console or has expired. Reload the page and retry."
    )
    return render_template("console/error.html", code="csrf", message=msg), 400


@console.errorhandler(HTTPException)
def http_error(e: HTTPException) -> tuple[str, int]:
    return render_template(
        "console/error.html", code=str(e.code), message=e.description or e.name
    ), e.code or 400


def who() -> Who:
    w: Who = g.who
    return w


# -- login ----------
@console.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    if request.method == "GET":
        return render_template("console/login.html")
    c = ops().ctx
    username = request.form.get("username", "").strip()[:64]
    try:
        p = accounts_db.login(
            c.sessions, username, request.form.get("password", ""), address(), c.now(), c.region
        )
    except (UnauthorizedError, RateLimitedError) as e:
        status = 429 if isinstance(e, RateLimitedError) else 401
        return render_template("console/login.html", error=e.message, username=username), status
    session.clear()
    session["sid"] = accounts_db.start_session(c.sessions, p.username, address(), c.now())
    return redirect(console_target(request.args.get("next", ""), "console.overview"))


def console_target(target: str, fallback: str) -> str:
    """Where to go after a login or a language switch: `target` if it is a plain path
    under /console/, else the `fallback` endpoint. No open redirect through `next`
    (no scheme, no `//host`, no backslash that a browser reads as a slash), and no
    control character, which a Location header cannot carry: a CR LF in `next` was an
    unhandled error after the login had already succeeded."""
    if (
        len(target) <= MAX_NEXT_CHARS
        and target.startswith("/console/")
        and "\\" not in target
        and target.isprintable()
        and target.isascii()
        and posixpath.normpath(target).startswith("/console/")
    ):
        return target
    return url_for(fallback)


@console.post("/logout")
def logout() -> ResponseReturnValue:
    sid = session.get("sid")
    if isinstance(sid, str):
        accounts_db.end_session(ops().ctx.sessions, sid)
    session.clear()
    flash(gettext("Logged out."), "ok")
    return redirect(url_for("console.login"))


@console.post("/language")
def set_language() -> ResponseReturnValue:
    """The admin picks the console's language; it is kept with the account."""
    try:
        language = parse_language(field("language", 16))
    except LanguageError as e:
        raise BadRequestError(str(e)) from e
    accounts_db.set_language(ops().ctx.sessions, who().principal.username, language.value)
    return redirect(console_target(request.form.get("next", ""), "console.credentials"))


@console.get("/")
def home() -> ResponseReturnValue:
    return redirect(url_for("console.overview"))


# -- overview (the landing page) ----------
OUTBOX_ALERT_S = 60  # seconds: deploy/prometheus's HealthBridgeOutboxStuck threshold


@console.get("/overview")
def overview() -> ResponseReturnValue:
    from credential.verdict import DEFAULT_MAX_SYNC_AGE_S

    o = ops().overview(who())
    a = o.activity
    language = console_language()

    def bars(values: tuple[int, ...], title: Callable[[int, str], str]) -> list[Bar]:
        return [
            Bar(
                format_hour(h, language, UTC),
                v,
                title(v, f"{format_datetime(h, language, UTC)} UTC"),
            )
            for h, v in zip(a.hours, values, strict=True)
        ]

    # ngettext is called with its literal texts so extraction finds the plural pairs.
    issued = bars(
        a.issued,
        lambda n, when: ngettext(
            "%(when)s: %(num)s credential issued",
            "%(when)s: %(num)s credentials issued",
            n,
            when=when,
        ),
    )
    revoked = bars(
        a.revoked,
        lambda n, when: ngettext(
            "%(when)s: %(num)s credential revoked",
            "%(when)s: %(num)s credentials revoked",
            n,
            when=when,
        ),
    )
    charts = {
        "issued": bar_chart(
            issued, gettext("Credentials issued per hour, last 24 h (UTC)"), "#0b57d0"
        ),
        "revoked": bar_chart(revoked, gettext("Revocations per hour, last 24 h (UTC)"), "#b3121b"),
        "outbox": meter(
            o.outbox_oldest_s or 0,
            OUTBOX_ALERT_S,
            gettext("Oldest entry waiting"),
            ago(o.outbox_oldest_s) if o.outbox_pending else "0",
        ),
        "regions": {
            r.region: meter(
                r.age_s,
                DEFAULT_MAX_SYNC_AGE_S,
                gettext("Newest cosignature on the %(region)s log", region=r.region),
                ago(r.age_s),
            )
            for r in o.regions
        },
    }
    return render_template(
        "console/overview.html",
        o=o,
        charts=charts,
        ago=ago,
        max_age=ago(DEFAULT_MAX_SYNC_AGE_S),
        outbox_alert=ago(OUTBOX_ALERT_S),
    )


# -- credentials ----------
# A document number is personal data: it is searched for with a POST body, never a
# query string, so it cannot land in access logs, proxies or the browser's history.
PERSONAL_SEARCH_KEYS = frozenset({"document_number"})


@console.route("/credentials", methods=["GET", "POST"])
def credentials() -> ResponseReturnValue:
    args = request.form if request.method == "POST" else request.args
    by = args.get("by", "status_index")
    q = args.get("q", "").strip()[:64]
    if request.method == "GET" and by in PERSONAL_SEARCH_KEYS and q:
        raise BadRequestError(
            gettext(
                "search by document number with the form (POST), not in the address: "
                "the number must not be written to access logs"
            )
        )
    found = ops().find(who(), who().principal.region, by, q) if q else None
    return render_template("console/credentials.html", by=by, q=q, found=found)


@console.get("/credentials/<region>/<int:idx>")
def credential(region: str, idx: int) -> ResponseReturnValue:
    d = ops().detail(who(), region, idx)
    return render_template("console/credential.html", c=d)


@console.post("/credentials/<region>/<int:idx>/revoke")
def revoke(region: str, idx: int) -> ResponseReturnValue:
    p = ops().revoke(who(), region, idx, field("reason", 32), field("note", required=False))
    flash(
        gettext(
            "Revocation queued as log entry #%(entry)s: pending until cosigned.",
            entry=p.outbox_id,
        ),
        "ok",
    )
    return redirect(url_for("console.credential", region=region, idx=idx))


@console.post("/credentials/<region>/<int:idx>/reinstate")
def reinstate(region: str, idx: int) -> ResponseReturnValue:
    p = ops().reinstate(who(), region, idx, field("reason", 32), field("note", required=False))
    flash(gettext("Reinstatement queued as log entry #%(entry)s.", entry=p.outbox_id), "ok")
    return redirect(url_for("console.credential", region=region, idx=idx))


@console.post("/override")
def override() -> ResponseReturnValue:
    raw = field("colour", 8)
    try:
        colour = None if raw == "lift" else StatusColour(raw)
    except ValueError as e:
        raise BadRequestError(gettext("colour must be green, yellow, red or lift")) from e
    until_text = field("until", 40, required=False)
    until = parse_time(until_text) if until_text else None
    entries = ops().override(
        who(), field("region", 8), field("document_number", 32), colour, field("reason"), until
    )
    flash(
        gettext(
            "Status override recorded; %(num)s credential(s) revoked for re-issue.",
            num=len(entries),
        ),
        "ok",
    )
    return redirect(url_for("console.credentials"))


@console.get("/entries/<int:outbox_id>.json")
def entry_state(outbox_id: int) -> ResponseReturnValue:
    st = ops().entry(who(), outbox_id)
    return {
        "outbox_id": outbox_id,
        "state": st.state.value,
        "log_index": st.log_index,
        "witnesses": list(st.witnesses),
    }


# -- bulk ----------
@console.get("/bulk")
def bulk() -> ResponseReturnValue:
    return render_template("console/bulk.html", preview=None)


@console.post("/bulk")
def bulk_upload() -> ResponseReturnValue:
    upload = request.files.get("file")
    if upload is None:
        raise BadRequestError(gettext("choose a CSV file of status indices"))
    # The upload was spooled to a temporary file by the form parser; it is parsed from
    # there row by row.
    try:
        preview = ops().bulk_preview(
            who(),
            field("region", 8),
            upload.stream,
            field("reason", 32),
            field("note", required=False),
        )
    finally:
        upload.close()
    return render_template("console/bulk.html", preview=preview)


@console.post("/bulk/<job_id>/confirm")
def bulk_confirm(job_id: str) -> ResponseReturnValue:
    if request.form.get("confirm") != "yes":
        raise BadRequestError(gettext("tick the confirmation box to start the revocation"))
    ops().bulk_confirm(who(), job_id)
    return redirect(url_for("console.bulk_job", job_id=job_id))


@console.get("/bulk/<job_id>")
def bulk_job(job_id: str) -> ResponseReturnValue:
    return render_template("console/bulk_job.html", job=ops().bulk_status(who(), job_id))


@console.get("/bulk/<job_id>/progress.json")
def bulk_progress(job_id: str) -> ResponseReturnValue:
    s = ops().bulk_status(who(), job_id)
    return {
        "state": s.state,
        "total": s.total,
        "done": s.done,
        "percent": s.percent,
        "message": s.message,
    }


# -- keys ----------
@console.get("/keys")
def keys() -> ResponseReturnValue:
    return render_template("console/keys.html", keys=ops().keys(who()))


@console.post("/keys/rotate")
def rotate_key() -> ResponseReturnValue:
    if request.form.get("confirm") != "yes":
        raise BadRequestError(gettext("tick the confirmation box to rotate the key"))
    entries = ops().rotate_key(who(), field("region", 8))
    flash(
        gettext("New signing key registered; %(num)s log entries queued.", num=len(entries)),
        "ok",
    )
    return redirect(url_for("console.keys"))


@console.post("/keys/<kid>/revoke")
def revoke_key(kid: str) -> ResponseReturnValue:
    region = field("region", 8)
    compromised = field("compromised_at", 40, required=False)
    reason = field("reason")
    step = request.form.get("step", "1")
    compromised_at = parse_time(compromised) if compromised else None
    if step != "2":
        # Step 1 of 2: show exactly what will happen and ask again.
        return render_template(
            "console/key_revoke_confirm.html",
            kid=kid,
            region=region,
            compromised_at=compromised_at,
            reason=reason,
        )
    if field("confirm_kid", 64) != kid:
        raise BadRequestError(gettext("type the key id exactly to confirm its revocation"))
    ops().revoke_key(who(), region, kid, compromised_at, reason)
    flash(gettext("Key %(kid)s revoked.", kid=kid), "ok")
    return redirect(url_for("console.keys"))


# -- ledger and audit ----------
@console.get("/ledger")
def ledger() -> ResponseReturnValue:
    pending, oldest = ops().outbox_lag(who())
    return render_template(
        "console/ledger.html",
        regions=ops().ledger_regions(who()),
        pending=pending,
        oldest=oldest,
        quarantined=ops().quarantined(who()),
    )


@console.get("/audit")
def audit_log() -> ResponseReturnValue:
    page = request.args.get("page", "0")
    n = int(page) if page.isdigit() and len(page) < 7 else 0
    rows = ops().audit_rows(who(), AUDIT_PAGE_ROWS, n * AUDIT_PAGE_ROWS)
    count, head = ops().audit_verify(who())
    return render_template(
        "console/audit.html",
        rows=rows,
        page=n,
        count=count,
        head=head.hex(),
        per_page=AUDIT_PAGE_ROWS,
    )


@console.get("/audit.csv")
def audit_csv() -> ResponseReturnValue:
    data = ops().audit_export(who())
    return Response(
        data,
        mimetype="text/csv",
        headers={"Content-Disposition": f"attachment; filename=audit-{who().principal.region}.csv"},
    )
