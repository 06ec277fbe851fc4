"""Who may read a page meant for one device: the staff kiosk and the resident's wallet page.

Both pages carry what must not leave the device they run on: the kiosk shows the last
scan's masked name and document hint and streams the camera; the wallet page hands out
a holder proof that is valid for its whole window. Two guards, checked before any route:

- the client's address (the TCP peer, which a client cannot choose) must be in the
  allowed networks: loopback by default. A page bound to 0.0.0.0 (as in a container)
  is not thereby opened to the whole LAN: whoever publishes it names the networks it
  is published to;
- the Host header must be one of the allowed names: loopback names by default. This
  is the DNS-rebinding guard (a web page elsewhere whose name is re-pointed at
  127.0.0.1 still sends its own name). The Host header alone is no guard against a
  peer on the LAN, which can send any Host: hence the address check.

`LocalGuard.parse(hosts, networks)` builds one from configuration text; `refusal(host,
peer)` returns the typed reason a request is refused, or None.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
LOOPBACK_NETWORKS = ("127.0.0.0/8", "::1/128")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class LocalGuardError(ValueError):
    """A host name or network in the configuration is not one."""


class Refusal(StrEnum):
    FORBIDDEN_PEER = "forbidden_peer"  # the client's address is not allowed
    FORBIDDEN_HOST = "forbidden_host"  # the Host header is not a name this page answers to


def parse_networks(texts: Iterable[str]) -> tuple[Network, ...]:
    out: list[Network] = []
    for text in texts:
        try:
            out.append(ipaddress.ip_network(text.strip(), strict=False))
        except ValueError as e:
            raise LocalGuardError(f"not an address or network: {text!r}") from e
    return tuple(out)


def host_name(host_header: str) -> str:
    """The Host header without its port: `[::1]:80` -> `[::1]`, `a:80` -> `a`."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if ":" in host else host


@dataclass(frozen=True)
class LocalGuard:
    hosts: frozenset[str]
    networks: tuple[Network, ...]

    @classmethod
    def parse(
        cls,
        hosts: Iterable[str] = LOOPBACK_HOSTS,
        networks: Iterable[str] = LOOPBACK_NETWORKS,
    ) -> LocalGuard:
        names = frozenset(h.strip().lower() for h in hosts)
        if not names or any(not n or "/" in n or " " in n for n in names):
            raise LocalGuardError(f"host names must be bare names: {sorted(names)}")
        return cls(names, parse_networks(networks))

    def peer_allowed(self, peer: str | None) -> bool:
        if not peer:
            return False
        try:
            address = ipaddress.ip_address(peer.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # a dual-stack socket reports IPv4 peers so
        return any(address in n for n in self.networks)

    def refusal(self, host_header: str, peer: str | None) -> Refusal | None:
        if not self.peer_allowed(peer):
            return Refusal.FORBIDDEN_PEER
        if host_name(host_header) not in self.hosts:
            return Refusal.FORBIDDEN_HOST
        return None


def networks_option(_ctx: object, _param: object, value: tuple[str, ...]) -> tuple[str, ...]:
    """A click option callback for `--allow-from` / `--kiosk-allow-from`: a network that
    is not one is refused at the command line, not at the first request."""
    import click  # only the command lines that take the option need it

    try:
        parse_networks(value)
    except LocalGuardError as e:
        raise click.BadParameter(str(e)) from e
    return value
