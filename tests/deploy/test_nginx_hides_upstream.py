"""No answer through deploy/nginx/issuer.conf.template tells a client where the issuer
replicas live: no IP address and no upstream port in any header or body, on ordinary
answers, refusals and errors alike. Which replica answered is named by the issuer
itself (`X-Issuer-Replica`, issuer.replica), opaquely.

Debian's nginx in front of `healthbridge issuer serve --workers 2` (gunicorn), as in
docker-compose."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from issuer.config import REPLICA_NAME_RE
from tests.deploy.nginx_proxy import gunicorn_issuer, nginx_proxy

pytestmark = pytest.mark.slow

# Runs of the characters an IPv4 or IPv6 address is written with; each is then
# parsed as an address (a time such as 18:08:45 is not one, "::1" is).
ADDRESS_LIKE = re.compile(r"[0-9A-Fa-f:.]{3,}")


def addresses(text: str) -> list[str]:
    found = []
    for run in ADDRESS_LIKE.findall(text):
        for token in {run, run.strip(".:"), run.rsplit(":", 1)[0]}:  # with a :port
            try:
                ipaddress.ip_address(token)
            except ValueError:
                continue
            found.append(token)
            break
    return found


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(the proxy's base URL, the upstream's host:port)."""
    tmp: Path = tmp_path_factory.mktemp("issuer")
    with (
        gunicorn_issuer(tmp, workers=2, trusted_proxies=1) as upstream,
        nginx_proxy(upstream) as base,
    ):
        yield base, upstream


def leaks(r: requests.Response, upstream: str) -> list[str]:
    """Everything in the answer that looks like an address or names the upstream port."""
    port = upstream.rsplit(":", 1)[1]
    text = "\n".join(f"{k}: {v}" for k, v in r.headers.items())
    text += "\n" + r.content.decode("utf-8", "replace")
    found = addresses(text)
    found += re.findall(rf"(?<!\d){port}(?!\d)", text)
    return found


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/status", None),
        ("GET", "/healthz", None),
        ("GET", "/readyz", None),
        ("GET", "/no/such/route", None),  # 404 from the issuer
        ("DELETE", "/v1/status", None),  # 405
        ("POST", "/v1/enrolment", b"{not json"),  # 400
        ("GET", "/v1/credential", None),  # 401: no device signature
    ],
)
def test_answer_through_nginx_reveals_no_upstream_address(
    proxied: tuple[str, str], method: str, path: str, body: bytes | None
) -> None:
    base, upstream = proxied
    r = requests.request(
        method, f"{base}{path}", data=body, timeout=10,
        headers={"Content-Type": "application/json"} if body else {},
    )  # fmt: skip
    assert r.status_code < 500, (r.status_code, r.text)
    assert leaks(r, upstream) == [], (dict(r.headers), r.text[:500])
    name = r.headers["X-Issuer-Replica"]  # which replica answered, by its own name
    assert REPLICA_NAME_RE.fullmatch(name) and name.startswith("r-"), name


def test_the_leak_check_sees_an_address(proxied: tuple[str, str]) -> None:
    # The check above is not blind: the upstream's own address, as the proxy used to
    # send it in X-Issuer-Replica, is found.
    _base, upstream = proxied
    r = requests.Response()
    r.headers["X-Issuer-Replica"] = upstream
    r._content = b"{}"
    assert leaks(r, upstream) != []
    r.headers["X-Issuer-Replica"] = "10.0.3.7:8080"
    assert leaks(r, upstream) != []
    r.headers["X-Issuer-Replica"] = "fd00::17"
    assert leaks(r, upstream) != []
    r.headers["X-Issuer-Replica"] = "[fd00::17]:8080"
    assert leaks(r, upstream) != []
    r.headers["X-Issuer-Replica"] = "r-0123456789ab"
    r.headers["Date"] = "Tue, 01 Dec 2026 18:08:45 GMT"
    assert leaks(r, upstream) == []
