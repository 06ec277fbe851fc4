"""The demo's world: both regions' services brought up on loopback, and torn down again.

What it does: in one work folder, creates each region's issuer (through the real
`healthbridge issuer init` / `seed-demo` commands), its ledger node (`healthbridge
ledger init`), a witness key per region, and the consortium file naming them all; then
serves, as threaded werkzeug servers on 127.0.0.1, both ledger nodes (each also the
other's witness and validating mirror, with cosignature collection hooked up), both
issuers (anchor worker and periodic sync running), the wallets' pages and the station's
kiosk. Admin accounts get random passwords, printed by the demo.

What it does not: any domain logic. Keys, entries, checks and verdicts all come from
the components' own public functions; this module only wires them together. Ports are
fixed defaults when free, else any free port.
"""

from __future__ import annotations

import contextlib
import io
import logging
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import requests
from flask import Flask

from common.serving import ServedApp, serve_in_thread
from healthbridge.commands import main

LOOPBACK = "127.0.0.1"
REGIONS = ("GD", "MO")
REGION_NAMES = {"GD": "Guangdong", "MO": "Macau"}
# Preferred ports (the fixed URLs a presenter can bookmark); any free port otherwise.
DEFAULT_PORTS = {
    "ledger-GD": 8481,
    "ledger-MO": 8482,
    "issuer-GD": 8181,
    "issuer-MO": 8182,
    "wallet-gd-resident": 8191,
    "wallet-mo-resident": 8192,
    "wallet-gd-traveller": 8193,
    "kiosk": 8188,
}
HTTP_TIMEOUT_S = 10.0  # seconds for one demo request to a local service
SETTLE_TIMEOUT_S = 30.0  # seconds to wait for anchoring and cosigning to catch up
POLL_S = 0.1  # seconds between polls while waiting
ADMIN_ROLES = ("operator", "key_admin", "auditor")  # one demo admin per region does all
PASSWORD_BYTES = 12  # random bytes of a demo admin password (16 base64url characters)


class DemoError(Exception):
    """The demo could not set up or run a step; the message says which and why."""


def origin_of(region: str, domain: str = "healthbridge.demo") -> str:
    """The log origin of a region (C2SP tlog-checkpoint: a schema-less URL)."""
    return f"{region.lower()}.{domain}/log"


def run_cli(*args: str) -> str:
    """Run a real `healthbridge ...` command in this process; return what it printed."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            main.main(args=list(args), prog_name="healthbridge", standalone_mode=False)
        except click.ClickException as e:
            raise DemoError(f"`healthbridge {' '.join(args)}` failed: {e.format_message()}") from e
    return out.getvalue()


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def pick_ports(preferred: dict[str, int]) -> dict[str, int]:
    """The preferred port of each service when free, else a free one chosen by the OS."""
    chosen: dict[str, int] = {}
    for name, port in preferred.items():
        if port in chosen.values() or not _port_free(port):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind((LOOPBACK, 0))
                port = s.getsockname()[1]
        chosen[name] = port
    return chosen


Served = ServedApp  # one Flask app served on 127.0.0.1 (common.serving)


def serve(name: str, app: Flask, port: int) -> Served:
    try:
        return serve_in_thread(app, LOOPBACK, port, name=f"demo-{name}")
    except OSError as e:
        raise DemoError(f"cannot serve {name} on {LOOPBACK}:{port}: {e.strerror or e}") from e


@dataclass
class Region:
    """One region's running services and the files behind them."""

    id: str
    folder: Path
    ledger_url: str
    issuer_url: str
    issuer_config_path: Path
    admin_username: str
    admin_password: str
    admin_token: str = ""
    node_app: Flask | None = None
    joint: Any = None
    issuer_app: Flask | None = None

    @property
    def issuer_config(self) -> Any:
        from issuer.config import load_config

        return load_config(self.issuer_config_path, env={})


@dataclass
class World:
    """Everything the story runs against; `close()` stops it all, in reverse order."""

    workdir: Path
    ports: dict[str, int]
    consortium_path: Path
    regions: dict[str, Region] = field(default_factory=dict)
    served: list[Served] = field(default_factory=list)
    closers: list[Callable[[], None]] = field(default_factory=list)

    def url(self, name: str) -> str:
        return f"http://{LOOPBACK}:{self.ports[name]}"

    def add(self, served: Served) -> Served:
        self.served.append(served)
        return served

    def close(self) -> None:
        for s in reversed(self.served):
            with contextlib.suppress(Exception):
                s.stop()
        self.served.clear()
        for closer in reversed(self.closers):
            with contextlib.suppress(Exception):
                closer()
        self.closers.clear()


def _quiet_logs() -> None:
    # One access-log line per poll would drown the story; warnings still show.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)


def _init_region(world: World, region: str) -> Region:
    """Issuer and ledger node folders for one region, made by their own commands."""
    from issuer.config import load_config
    from issuer.keystore import KeyStore
    from ledger.log.entries import root_public_key_bytes
    from ledger.node.config import encode_ed25519_public_key

    folder = world.workdir / region
    ledger_url = world.url(f"ledger-{region}")
    issuer_dir = folder / "issuer"
    run_cli(
        "issuer", "init", "--region", region, "--data-dir", str(issuer_dir),
        "--ledger-url", ledger_url, "--consortium", str(world.consortium_path),
    )  # fmt: skip
    config_path = issuer_dir / "issuer.toml"
    run_cli("issuer", "seed-demo", "--config", str(config_path))
    # The ledger node trusts the issuer's root key (key entries) and writer key.
    keys = KeyStore(load_config(config_path, env={}))
    root = encode_ed25519_public_key(root_public_key_bytes(keys.root_key()))
    writer = encode_ed25519_public_key(root_public_key_bytes(keys.writer_key()))
    run_cli(
        "ledger", "init", "--region", region, "--origin", origin_of(region),
        "--dir", str(folder / "ledger"), "--root-public-key", root,
        "--writer-public-key", writer, "--url", ledger_url,
        "--name", REGION_NAMES.get(region, region), "--consortium", str(world.consortium_path),
    )  # fmt: skip
    return Region(
        id=region,
        folder=folder,
        ledger_url=ledger_url,
        issuer_url=world.url(f"issuer-{region}"),
        issuer_config_path=config_path,
        admin_username=f"{region.lower()}-admin",
        admin_password=secrets.token_urlsafe(PASSWORD_BYTES),
    )


def _open_node(world: World, r: Region) -> Any:
    from ledger.serving import open_node

    # Built stopped: the sequencer signs (and asks the peer witness to cosign) only once
    # every node is listening, so no first checkpoint goes to a witness not yet up.
    node = open_node(r.folder / "ledger" / "node.toml", start=False)
    r.node_app, r.joint = node.app, node.joint
    world.closers.append(node.close)
    world.add(serve(f"ledger-{r.id}", node.app, world.ports[f"ledger-{r.id}"]))
    return node


def _start_issuer(world: World, r: Region) -> None:
    from common.secret_file import write_secret
    from issuer.app import create_app, stop_app

    app = create_app(r.issuer_config)
    r.issuer_app = app
    ctx = app.extensions["issuer"]

    def close() -> None:
        stop_app(app)
        ctx.dispose()

    world.closers.append(close)
    # The region's demo admin, made with the issuer's own account commands.
    password_file = r.folder / "admin-password.txt"
    token_file = r.folder / "admin-api.token"
    write_secret(password_file, r.admin_password.encode(), overwrite=True)
    config = str(r.issuer_config_path)
    roles = [a for role in ADMIN_ROLES for a in ("--role", role)]
    run_cli(
        "issuer", "admin", "create", "--config", config, "--username", r.admin_username,
        *roles, "--password-file", str(password_file),
    )  # fmt: skip
    run_cli(
        "issuer", "admin", "token", "--config", config, "--username", r.admin_username,
        "--label", "demo story", "--output", str(token_file),
    )  # fmt: skip
    r.admin_token = token_file.read_text(encoding="ascii").strip()
    world.add(serve(f"issuer-{r.id}", app, world.ports[f"issuer-{r.id}"]))


def build_world(workdir: Path, progress: Callable[[str], None]) -> World:
    """Create every folder and key, then start both regions' nodes and issuers."""
    _quiet_logs()
    workdir.mkdir(parents=True, exist_ok=True)
    if any(workdir.iterdir()):
        raise DemoError(f"work folder {workdir} is not empty: give a new or empty folder")
    world = World(workdir, pick_ports(DEFAULT_PORTS), workdir / "consortium.toml")
    try:
        for region in REGIONS:
            world.regions[region] = _init_region(world, region)
        run_cli(
            "ledger", "consortium", "init", "--out", str(world.consortium_path),
            *(a for r in world.regions.values()
              for a in ("--member", str(r.folder / "ledger" / "member.toml"))),
        )  # fmt: skip
        progress(
            "consortium GD + MO written (root, log, witness and writer keys; private keys 0600): "
            f"{world.consortium_path}"
        )
        from ledger.node.app import EXTENSION_KEY

        nodes = [_open_node(world, r) for r in world.regions.values()]
        for node in nodes:
            node.app.extensions[EXTENSION_KEY].sequencer.start()
        progress(
            "ledger nodes up, each witnessing and mirroring the other: "
            + ", ".join(f"{r.id} {r.ledger_url}" for r in world.regions.values())
        )
        for r in world.regions.values():
            _start_issuer(world, r)
        progress(
            "issuers up with seeded residents and one admin each: "
            + ", ".join(f"{r.id} {r.issuer_url}" for r in world.regions.values())
        )
    except BaseException:
        world.close()
        raise
    return world


# -- waiting for the ledgers to catch up ----------------------------------------------------


def wait_for(pred: Callable[[], Any], what: str, timeout_s: float = SETTLE_TIMEOUT_S) -> Any:
    deadline = time.monotonic() + timeout_s
    last_error = ""
    while time.monotonic() < deadline:
        try:
            got = pred()
        except (requests.RequestException, ValueError, KeyError) as e:
            got, last_error = None, f" (last error: {type(e).__name__})"
        if got:
            return got
        time.sleep(POLL_S)
    raise DemoError(f"timed out after {timeout_s:.0f} s waiting for {what}{last_error}")


def _json(url: str, token: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    resp = requests.get(url, headers=headers, timeout=HTTP_TIMEOUT_S)
    resp.raise_for_status()
    return resp.json()


def settled(world: World) -> bool:
    """True once every issuer's outbox is empty and every log's newest checkpoint
    is cosigned by every member's witness (the consortium's default policy)."""
    n = len(world.regions)
    for r in world.regions.values():
        if _json(f"{r.issuer_url}/v1/status")["pending_anchors"] != 0:
            return False
        st = _json(f"{r.ledger_url}/v1/status")
        if st["checkpoint_size"] != st["size"] or st["cosignatures"] < n:
            return False
    return True


def wait_settled(world: World) -> None:
    wait_for(lambda: settled(world), "every entry anchored and cosigned by both witnesses")


@contextlib.contextmanager
def running(workdir: Path, progress: Callable[[str], None]) -> Iterator[World]:
    world = build_world(workdir, progress)
    try:
        yield world
    finally:
        world.close()
