"""The wallet page's JSON API through Flask's test client, with an injected clock."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from credential.claims import StatusColour
from credential.presentation import WINDOW_SECONDS
from credential.trust import InMemoryTrustState
from credential.verify import verify_presentation
from mobile_stub.device import DEVICE_KEY_FILE
from mobile_stub.wallet import Wallet
from mobile_stub.web import create_app
from tests.support.wallet import FakeIssuer

NOW = 1_800_000_010.0


@dataclass
class Clock:
    now: float

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def setup(tmp_path: Path):  # type: ignore[no-untyped-def]
    folder = tmp_path / "wallet"
    issuer = FakeIssuer("GD", NOW)
    wallet = Wallet.open(folder)
    wallet.request_code(issuer, "G12345678")
    holder = wallet.enrol(issuer, "G12345678", "123456", NOW).holder_id
    clock = Clock(NOW)
    app = create_app({"WALLET_DIR": folder, "CLOCK": clock, "ISSUER_FACTORY": lambda url: issuer})
    return app.test_client(), clock, issuer, holder, folder


def test_presentation_endpoint_returns_a_verifying_code(setup) -> None:  # type: ignore[no-untyped-def]
    client, _clock, issuer, _holder, _folder = setup
    resp = client.get("/v1/presentation")
    assert resp.status_code == 200
    data = resp.get_json()
    assert data["colour"] == "green"
    assert data["masked_name"] == "C** T** M**"
    assert data["qr_svg"].startswith("data:image/svg+xml")
    assert data["window_end"] - data["window_start"] == WINDOW_SECONDS
    assert 0 < data["refresh_in"] <= WINDOW_SECONDS
    trust = InMemoryTrustState()
    issuer.register(trust)
    assert verify_presentation(data["qr_text"], trust, NOW).decision == "admit"
    assert resp.headers["Cache-Control"] == "no-store"


def test_next_window_gives_a_new_code(setup) -> None:  # type: ignore[no-untyped-def]
    client, clock, *_ = setup
    first = client.get("/v1/presentation").get_json()
    clock.now += WINDOW_SECONDS
    second = client.get("/v1/presentation").get_json()
    assert second["window_start"] == first["window_end"]
    assert second["qr_text"] != first["qr_text"]


def test_page_shows_colour_and_masked_name(setup) -> None:  # type: ignore[no-untyped-def]
    client, *_ = setup
    html = client.get("/").get_data(as_text=True)
    assert 'data-colour="green"' in html
    assert "C** T** M**" in html
    assert "G12345678" not in html


def test_refresh_reports_offline_and_keeps_the_code(setup) -> None:  # type: ignore[no-untyped-def]
    client, _clock, issuer, _holder, _folder = setup
    issuer.online = False
    data = client.post("/v1/refresh").get_json()
    assert data["online"] is False
    assert data["error"] == "issuer_unreachable"
    assert client.get("/v1/presentation").status_code == 200


def test_refresh_picks_up_a_status_change(setup) -> None:  # type: ignore[no-untyped-def]
    client, _clock, issuer, holder, _folder = setup
    issuer.set_colour(holder, StatusColour.YELLOW)
    data = client.post("/v1/refresh").get_json()
    assert data == {"online": True, "changed": True, "error": None, "message": None}
    assert client.get("/v1/presentation").get_json()["colour"] == "yellow"


@pytest.mark.parametrize(
    ("damage", "status", "code"),
    [
        (lambda folder: (folder / DEVICE_KEY_FILE).unlink(), 409, "device_key_missing"),
        (lambda folder: (folder / DEVICE_KEY_FILE).write_bytes(b"x"), 409, "device_key_corrupt"),
        (lambda folder: (folder / "credentials.json").write_bytes(b"{"), 409, "store_corrupt"),
        (lambda folder: (folder / "credentials.json").unlink(), 404, "not_enrolled"),
    ],
)
def test_damaged_wallet_gets_a_json_error_not_a_500(setup, damage, status, code) -> None:  # type: ignore[no-untyped-def]
    client, _clock, _issuer, _holder, folder = setup
    damage(folder)
    resp = client.get("/v1/presentation")
    assert resp.status_code == status
    assert resp.get_json()["error"] == code
    assert client.get("/").status_code == 200  # the page still loads and shows the problem


def test_expired_credential_gets_410(setup) -> None:  # type: ignore[no-untyped-def]
    client, clock, *_ = setup
    clock.now += 2 * 24 * 3600
    resp = client.get("/v1/presentation")
    assert resp.status_code == 410
    assert resp.get_json()["error"] == "credential_expired"


def test_foreign_host_name_is_refused(setup) -> None:  # type: ignore[no-untyped-def]
    client, *_ = setup
    resp = client.get("/v1/presentation", headers={"Host": "evil.example:8480"})
    assert resp.status_code == 403
    assert resp.get_json()["error"] == "forbidden_host"


def test_unknown_route_is_json_404(setup) -> None:  # type: ignore[no-untyped-def]
    client, *_ = setup
    resp = client.get("/v1/nope")
    assert resp.status_code == 404
    assert resp.get_json()["error"] == "not_found"


def test_unreachable_issuer_over_http_raises_the_offline_banner(tmp_path: Path) -> None:
    """The default issuer client against a closed loopback port: offline, code still shown."""
    from common.serving import free_port
    from mobile_stub.store import StoreFile

    folder = tmp_path / "wallet"
    issuer = FakeIssuer("GD", NOW, base_url=f"http://127.0.0.1:{free_port()}")
    wallet = Wallet.open(folder)
    wallet.request_code(issuer, "G12345678")
    wallet.enrol(issuer, "G12345678", "123456", NOW)
    assert StoreFile(folder).load().entries["GD"].issuer_url == issuer.base_url
    client = create_app({"WALLET_DIR": folder, "CLOCK": Clock(NOW)}).test_client()
    data = client.post("/v1/refresh").get_json()
    assert (data["online"], data["error"]) == (False, "issuer_unreachable")
    assert client.get("/v1/presentation").status_code == 200


def test_wallet_serve_command_serves_the_page(tmp_path: Path) -> None:
    """`healthbridge wallet serve` as a real process on a loopback port."""
    import os
    import subprocess
    import sys
    import time

    import requests

    from common.serving import free_port

    folder = tmp_path / "wallet"
    issuer = FakeIssuer("GD", time.time())
    wallet = Wallet.open(folder)
    wallet.request_code(issuer, "G12345678")
    wallet.enrol(issuer, "G12345678", "123456", time.time())
    port = free_port()
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "healthbridge"),
            "wallet",
            "--dir",
            str(folder),
            "serve",
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                resp = requests.get(f"http://127.0.0.1:{port}/v1/presentation", timeout=2)
                break
            except requests.ConnectionError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "wallet page did not come up"
                time.sleep(0.1)
        assert resp.status_code == 200
        assert resp.json()["colour"] == "green"
        page = requests.get(f"http://127.0.0.1:{port}/", timeout=2)
        assert 'data-colour="green"' in page.text
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()


@pytest.mark.parametrize(
    ("accept", "lang", "green"),
    [
        ("zh-TW;q=0.5, pt-BR;q=0.9", "pt", "VERDE"),
        ("zh-Hant-MO, en;q=0.8", "zh-Hant", "綠碼"),
        ("zh-CN,zh;q=0.9", "zh-Hans", "绿码"),
        ("de-DE, fr;q=0.9", "en", "GREEN"),  # nothing we speak: English
        ("", "en", "GREEN"),
    ],
)
def test_page_and_texts_follow_accept_language(setup, accept, lang, green) -> None:  # type: ignore[no-untyped-def]
    client, *_ = setup
    headers = {"Accept-Language": accept} if accept else {}
    html = client.get("/", headers=headers).get_data(as_text=True)
    assert f'<html lang="{lang}">' in html
    data = client.get("/v1/presentation", headers=headers).get_json()
    assert data["colour"] == "green" and data["colour_text"] == green


def test_wallet_error_is_worded_for_the_resident_with_the_detail_kept(setup) -> None:  # type: ignore[no-untyped-def]
    client, _clock, _issuer, _holder, folder = setup
    (folder / "credentials.json").unlink()
    resp = client.get("/v1/presentation", headers={"Accept-Language": "pt-PT"})
    body = resp.get_json()
    assert resp.status_code == 404 and body["error"] == "not_enrolled"
    assert body["message"] == "Este telemóvel ainda não tem código de saúde: faça a inscrição."
    assert body["detail"]  # the technical text, for whoever reads logs
    page = client.get("/", headers={"Accept-Language": "zh-MO"}).get_data(as_text=True)
    assert "本手機還沒有健康碼：請先申領。" in page
