"""Attacks on the staff kiosk from outside the station, over real HTTP.

The kiosk is bound to 0.0.0.0 (as in the container) and reached two ways: from another
address of this machine (192.0.2.2 or whichever non-loopback address it has), standing
for a device on the LAN that sends any Host header it likes; and from loopback under a
foreign name, standing for a web page re-pointed at 127.0.0.1 by DNS rebinding. Neither
may read the verdict (masked name, document hint), the camera or the recent scans, nor
switch the language; the probes stay open; the staff screen (loopback) is unchanged.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
import requests

from common.serving import ServedApp, serve_in_thread
from tests.verifier.conftest import Mint
from tests.verifier.test_kiosk import Kiosk, show
from verifier.kiosk import KioskState, create_app
from verifier.scanlog import ScanLog
from verifier.station import Station, presentation_verifier

ROUTES = (("GET", "/"), ("GET", "/v1/status"), ("GET", "/stream.mjpg"))


def lan_address() -> str | None:
    """A non-loopback address of this machine (the one a default route would use)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent: UDP connect picks a route
        except OSError:
            return None
        address = str(s.getsockname()[0])
    return None if address.startswith("127.") else address


@pytest.fixture()
def open_kiosk(mint: Mint) -> Iterator[tuple[Kiosk, ServedApp]]:
    from tests.verifier.conftest import T0

    log = ScanLog()
    state = KioskState(log=log, sync_ages=lambda: {"GD": 60}, online=lambda: True)
    station = Station(
        verify=presentation_verifier(lambda: mint.trust),
        log=log,
        clock=lambda f: T0 + f.timestamp,
        listeners=[state.on_event],
        frame_listeners=[state.on_frame],
    )
    served = serve_in_thread(create_app({"KIOSK_STATE": state}), "0.0.0.0", 0, "kiosk")
    try:
        k = Kiosk(f"http://127.0.0.1:{served.port}", state, station)
        show(k, mint.scenarios()["revoked"])
        yield k, served
    finally:
        served.stop()


def _request(method: str, url: str, **kw: object) -> requests.Response:
    return requests.request(method, url, timeout=5, stream=True, **kw)  # type: ignore[arg-type]


def test_lan_peer_cannot_read_the_verdict_camera_or_scans_of_the_kiosk(
    open_kiosk: tuple[Kiosk, ServedApp],
) -> None:
    k, served = open_kiosk
    lan = lan_address()
    if lan is None:
        pytest.skip("this machine has no non-loopback address")
    base = f"http://{lan}:{served.port}"
    for method, path in ROUTES:
        # The Host header is the attacker's to choose: it names loopback here.
        r = _request(method, base + path, headers={"Host": f"127.0.0.1:{served.port}"})
        assert r.status_code == 403, path
        assert r.json()["error"] == "forbidden_peer"
        assert "C**" not in r.text
    r = _request("POST", base + "/v1/language", json={"language": "pt"})
    assert r.status_code == 403 and r.json()["error"] == "forbidden_peer"
    assert k.state.language.value == "en"
    # The probes stay answerable (container runtime, load balancer): no personal data.
    assert _request("GET", base + "/healthz").status_code == 200


def test_dns_rebinding_page_cannot_read_the_kiosk_status(
    open_kiosk: tuple[Kiosk, ServedApp],
) -> None:
    k, served = open_kiosk
    for method, path in (*ROUTES, ("POST", "/v1/language")):
        r = _request(method, k.url + path, headers={"Host": f"attacker.example:{served.port}"})
        assert r.status_code == 403, path
        assert r.json()["error"] == "forbidden_host"
    # The staff screen itself still sees everything.
    body = requests.get(k.url + "/v1/status", timeout=5).json()
    assert body["verdict"]["holder"]["masked_name"] == "C** T** M***"


def test_kiosk_allowed_network_is_answered_from_the_lan(mint: Mint) -> None:
    lan = lan_address()
    if lan is None:
        pytest.skip("this machine has no non-loopback address")
    app = create_app(
        {"KIOSK_STATE": KioskState(), "KIOSK_ALLOWED_NETWORKS": ("127.0.0.1/32", f"{lan}/32")}
    )
    with serve_in_thread(app, "0.0.0.0", 0, "kiosk") as served:
        r = requests.get(
            f"http://{lan}:{served.port}/v1/status",
            headers={"Host": f"localhost:{served.port}"},
            timeout=5,
        )
        assert r.status_code == 200 and r.json()["verdict"] is None
