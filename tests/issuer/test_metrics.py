"""issuer.metrics: the outbox and issuance figures Prometheus scrapes, and the probes."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import generate_latest

from issuer.app import create_app
from issuer.context import ManualClock
from issuer.metrics import METRICS_KEY, issuance_counts, outbox_lag
from issuer.testing import enrol_directly, make_context, new_device


def test_enrolment_refresh_and_revocation_are_counted_from_the_rows_since_start(
    tmp_path: Path,
) -> None:
    from issuer.issuance import issue_credential, revoke_credential_row
    from issuer.models import CredentialRow, Holder

    clock = ManualClock(1_800_000_000)
    ctx = make_context(tmp_path, clock=clock)
    enrol_directly(ctx, "G10000001", new_device())  # before the issuer started counting
    app = create_app(ctx.config, context=ctx, start_workers=False)
    registry = app.extensions[METRICS_KEY]
    text = generate_latest(registry).decode()
    assert 'healthbridge_credentials_issued_total{kind="enrolment",region="GD"} 0.0' in text
    enrol_directly(ctx, "G10000002", new_device())
    with ctx.sessions.begin() as s:  # a refresh (re-issue) and a revocation
        holder = s.query(Holder).order_by(Holder.id).first()
        issue_credential(ctx, s, holder, ctx.now())
        row = s.query(CredentialRow).order_by(CredentialRow.id).first()
        revoke_credential_row(ctx, s, row, "administrative", ctx.now())
    clock.advance(90)
    text = generate_latest(registry).decode()
    assert 'healthbridge_credentials_issued_total{kind="enrolment",region="GD"} 1.0' in text
    assert 'healthbridge_credentials_issued_total{kind="refresh",region="GD"} 1.0' in text
    assert 'healthbridge_credentials_revoked_total{region="GD"} 1.0' in text
    assert 'healthbridge_outbox_oldest_age_seconds{region="GD"} 90.0' in text
    assert "G10000001" not in text and "G10000002" not in text
    # From the beginning of the tables, as a fresh count sees them:
    counts = issuance_counts(ctx)
    assert (counts.enrolment, counts.conversion, counts.refresh, counts.revoked) == (2, 0, 1, 1)
    depth, oldest = outbox_lag(ctx)
    assert depth >= 4 and oldest == 90  # nothing anchors in this test


def test_probes_answer_and_metrics_stay_off_the_public_api(tmp_path: Path) -> None:
    ctx = make_context(tmp_path)
    c = create_app(ctx.config, context=ctx, start_workers=False).test_client()
    assert c.get("/healthz").get_json() == {"status": "alive"}
    r = c.get("/readyz")
    assert r.status_code == 200, r.get_json()
    assert c.get("/metrics").status_code == 404


def test_missing_signing_key_file_makes_the_issuer_not_ready(tmp_path: Path) -> None:
    from issuer.context import IssuerContext

    made = make_context(tmp_path)
    for f in made.config.signing_key_dir.iterdir():
        f.unlink()
    ctx = IssuerContext.open(made.config)  # a fresh process: nothing cached
    r = create_app(ctx.config, context=ctx, start_workers=False).test_client().get("/readyz")
    assert r.status_code == 503
    assert r.get_json()["checks"]["signing_key"] == "the active signing key cannot be read"


@pytest.mark.slow
def test_gunicorn_master_serves_every_workers_requests_on_the_metrics_port(
    tmp_path: Path,
) -> None:
    """`issuer serve --workers 2 --metrics-port`: one listener in the gunicorn master
    whose request counts add up the two workers' (prometheus multiprocess mode)."""
    import socket
    import subprocess
    import sys
    import time

    import requests

    def free_port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    hb = [sys.executable, "-c", "from healthbridge.cli import run; run()"]
    subprocess.run(
        [*hb, "issuer", "init", "--region", "GD", "--data-dir", str(tmp_path / "gd")],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    api, metrics = free_port(), free_port()
    proc = subprocess.Popen(
        [*hb, "issuer", "serve", "--config", str(tmp_path / "gd" / "issuer.toml"),
         "--port", str(api), "--workers", "2", "--metrics-port", str(metrics)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90  # two workers migrate and boot on a busy machine
        for url in (f"http://127.0.0.1:{metrics}/readyz", f"http://127.0.0.1:{api}/healthz"):
            while True:
                try:
                    if requests.get(url, timeout=5).ok:
                        break
                except requests.RequestException:
                    pass
                assert time.monotonic() < deadline, f"{url} never answered"
                time.sleep(0.2)
        for _ in range(10):
            assert requests.get(f"http://127.0.0.1:{api}/v1/status", timeout=30).ok
        text = requests.get(f"http://127.0.0.1:{metrics}/metrics", timeout=5).text
        count = "healthbridge_http_request_duration_seconds_count"
        line = f'{count}{{method="GET",route="/v1/status",status="200"}} 10.0'
        assert line in text, text[-2000:]
        assert 'healthbridge_outbox_depth{region="GD"}' in text
        assert requests.get(f"http://127.0.0.1:{api}/metrics", timeout=5).status_code == 404
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def test_a_refused_outbox_entry_is_counted_as_quarantined_not_as_waiting(
    tmp_path: Path,
) -> None:
    """The alert on quarantined rows has its metric; the outbox depth and age that
    drive the stuck-outbox alert leave the quarantined row out."""
    from issuer.anchor import InMemoryLedger, drain
    from issuer.models import OutboxRow

    ctx = make_context(tmp_path)
    enrol_directly(ctx, "G10000001", new_device())
    with ctx.sessions() as s:
        poisoned = s.query(OutboxRow).order_by(OutboxRow.id.desc()).first().entry
    ledger = InMemoryLedger(refuse={poisoned})
    drain(ctx, ledger)
    registry = create_app(ctx.config, context=ctx, start_workers=False).extensions[METRICS_KEY]
    text = generate_latest(registry).decode()
    assert 'healthbridge_outbox_quarantined{region="GD"} 1.0' in text
    assert 'healthbridge_outbox_depth{region="GD"} 0.0' in text
    assert outbox_lag(ctx) == (0, None)


def test_conversion_is_counted_for_its_channel_as_the_rows_count_it(tmp_path: Path) -> None:
    """A conversion over HTTP counts as the converted holder's first credential
    (kind conversion), the same figure a count over the rows gives."""
    import time

    import requests

    from credential.presentation import make_presentation
    from issuer.conversion import StaticTrustSource
    from issuer.testing import serve
    from tests.issuer.test_conversion import trust_of

    gd, mo = make_context(tmp_path, "GD"), make_context(tmp_path, "MO")
    app = create_app(
        mo.config, context=mo, trust=StaticTrustSource(trust_of(gd)), start_workers=False
    )
    registry = app.extensions[METRICS_KEY]
    assert 'healthbridge_credentials_issued_total{kind="conversion",region="MO"} 0.0' in (
        generate_latest(registry).decode()
    )
    device = new_device()
    enrolled = enrol_directly(gd, "G10000001", device)
    qr = make_presentation(enrolled.issued.credential.jws, device, time.time())
    with serve(app) as served:
        r = requests.post(f"{served.url}/v1/conversion", json={"presentation": qr}, timeout=10)
    assert r.status_code == 201, r.text
    text = generate_latest(registry).decode()
    for kind, n in (("enrolment", 0), ("conversion", 1), ("refresh", 0)):
        assert f'healthbridge_credentials_issued_total{{kind="{kind}",region="MO"}} {n}.0' in text
    counts = issuance_counts(mo)
    assert (counts.enrolment, counts.conversion, counts.refresh) == (0, 1, 0)


def test_a_scrape_never_scans_a_whole_table(tmp_path: Path) -> None:
    """Every statement a scrape sends reads through an index (SQLite's query plan
    names no full SCAN of the outbox, the credentials or the holders): a scrape costs
    the same with 100 million rows as with ten (bench/metrics.py)."""
    from sqlalchemy import event

    ctx = make_context(tmp_path)
    enrol_directly(ctx, "G10000001", new_device())
    registry = create_app(ctx.config, context=ctx, start_workers=False).extensions[METRICS_KEY]
    generate_latest(registry)  # the first scrape: where counting starts
    engine = ctx.sessions.kw["bind"]
    sent: list[tuple[str, object]] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("SELECT"):
            sent.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        generate_latest(registry)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert sent
    with engine.connect() as conn:
        for statement, parameters in sent:
            plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
            for row in plan:
                detail = str(row[-1])
                assert not any(
                    detail.startswith(f"SCAN {t}") and "INDEX" not in detail
                    for t in ("outbox", "credentials", "holders")
                ), (statement, detail)
