"""The guard of the pages meant for one device (kiosk, wallet page): peer and Host."""

from __future__ import annotations

import pytest

from common.local_page import LocalGuard, LocalGuardError, Refusal, host_name


@pytest.mark.parametrize(
    ("header", "name"),
    [("127.0.0.1:8088", "127.0.0.1"), ("LocalHost", "localhost"), ("[::1]:80", "[::1]"),
     ("[::1]", "[::1]"), ("evil.example:1", "evil.example")],
)  # fmt: skip
def test_host_name_drops_the_port(header: str, name: str) -> None:
    assert host_name(header) == name


def test_loopback_peer_under_a_loopback_name_is_served() -> None:
    guard = LocalGuard.parse()
    assert guard.refusal("127.0.0.1:8088", "127.0.0.1") is None
    assert guard.refusal("[::1]:8088", "::1") is None
    assert guard.refusal("localhost", "::ffff:127.0.0.1") is None  # dual-stack socket


def test_lan_peer_is_refused_whatever_host_it_sends() -> None:
    guard = LocalGuard.parse()
    assert guard.refusal("127.0.0.1:8088", "192.0.2.7") is Refusal.FORBIDDEN_PEER
    assert guard.refusal("localhost", "::ffff:192.0.2.7") is Refusal.FORBIDDEN_PEER
    assert guard.refusal("localhost", None) is Refusal.FORBIDDEN_PEER
    assert guard.refusal("localhost", "not an address") is Refusal.FORBIDDEN_PEER


def test_rebound_name_is_refused_from_loopback() -> None:
    assert LocalGuard.parse().refusal("attacker.example", "127.0.0.1") is Refusal.FORBIDDEN_HOST


def test_allowed_network_is_served() -> None:
    guard = LocalGuard.parse(networks=("127.0.0.0/8", "172.16.0.0/12"))
    assert guard.refusal("localhost:8190", "172.18.0.1") is None


@pytest.mark.parametrize("bad", ["lan", "300.1.1.1/8", "10.0.0.0/33", ""])
def test_a_network_that_is_not_one_is_a_typed_error(bad: str) -> None:
    with pytest.raises(LocalGuardError):
        LocalGuard.parse(networks=(bad,))


def test_host_names_must_be_bare_names() -> None:
    with pytest.raises(LocalGuardError):
        LocalGuard.parse(hosts=("http://localhost/",))
    with pytest.raises(LocalGuardError):
        LocalGuard.parse(hosts=())
