"""Another device on the network tries to take the resident's code from the wallet page.

The page is served on 0.0.0.0 (as `wallet serve --host 0.0.0.0` and the container do)
over real HTTP. A device on the LAN (this machine's non-loopback address) sends a
loopback Host header, which the DNS-rebinding guard alone accepted: it must get
neither a presentation (valid at a border for its whole window), nor the colour and
masked name, nor the list of regions, nor make the page call the issuer.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from common.serving import serve_in_thread
from mobile_stub.cli import cli
from mobile_stub.wallet import Wallet
from mobile_stub.web import create_app
from tests.support.wallet import FakeIssuer
from tests.verifier.test_kiosk_from_the_lan import lan_address

ROUTES = (
    ("GET", "/"),
    ("GET", "/v1/presentation"),
    ("GET", "/v1/wallet"),
    ("POST", "/v1/refresh"),
)


def _enrolled(folder: Path) -> FakeIssuer:
    now = time.time()
    issuer = FakeIssuer("GD", now)
    wallet = Wallet.open(folder)
    wallet.request_code(issuer, "G12345678")
    wallet.enrol(issuer, "G12345678", "123456", now)
    return issuer


def test_lan_device_spoofing_a_loopback_host_cannot_take_the_residents_code(
    tmp_path: Path,
) -> None:
    lan = lan_address()
    if lan is None:
        pytest.skip("this machine has no non-loopback address")
    issuer = _enrolled(tmp_path / "wallet")
    calls: list[str] = []

    def factory(url: str) -> FakeIssuer:
        calls.append(url)
        return issuer

    app = create_app({"WALLET_DIR": tmp_path / "wallet", "ISSUER_FACTORY": factory})
    with serve_in_thread(app, "0.0.0.0", 0, "wallet") as served:
        for method, path in ROUTES:
            r = requests.request(
                method,
                f"http://{lan}:{served.port}{path}",
                headers={"Host": f"127.0.0.1:{served.port}"},
                timeout=5,
            )
            assert r.status_code == 403, path
            assert r.json()["error"] == "forbidden_peer"
            assert set(r.json()) == {"error", "message"}  # nothing of the wallet in it
        assert calls == []
        # The phone itself (loopback) still gets its code.
        own = requests.get(f"http://127.0.0.1:{served.port}/v1/presentation", timeout=5)
        assert own.status_code == 200 and own.json()["qr_text"]


def test_wallet_page_allowed_network_is_served_and_bad_network_is_refused_at_start(
    tmp_path: Path,
) -> None:
    lan = lan_address()
    if lan is None:
        pytest.skip("this machine has no non-loopback address")
    _enrolled(tmp_path / "wallet")
    app = create_app(
        {"WALLET_DIR": tmp_path / "wallet", "ALLOWED_NETWORKS": ("127.0.0.0/8", f"{lan}/32")}
    )
    with serve_in_thread(app, "0.0.0.0", 0, "wallet") as served:
        r = requests.get(
            f"http://{lan}:{served.port}/v1/wallet",
            headers={"Host": f"localhost:{served.port}"},
            timeout=5,
        )
        assert r.status_code == 200 and r.json()["regions"] == ["GD"]
    result = CliRunner().invoke(
        cli, ["--dir", str(tmp_path / "wallet"), "serve", "--allow-from", "lan"]
    )
    assert result.exit_code == 2 and "not an address or network" in result.output
