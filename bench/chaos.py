"""Chaos campaign: both regions on loopback under steady mixed load, kill -9 at random
moments, one poisoned entry, one region left idle; then count what went wrong.

Setup (real commands, as an operator runs them): per region `issuer init` +
`issuer seed-demo` and `ledger init` naming the issuer's root and writer keys, then
`ledger consortium init`. Every node.toml gets a short `checkpoint_interval_s`.
Processes: `healthbridge ledger serve` per region (node + witness + validating mirror),
and per region one issuer process (this file with `--child-issuer`) that issues new
credentials, refreshes and revokes them for a few load holders while its anchor worker
drains the outbox onto its node.

The campaign:
1. one poisoned outbox row in GD (a revocation of an index never anchored: the ledger
   refuses it with `not_anchored`) and, per region, a station credential anchored first;
2. `--kills` SIGKILLs at random moments (gaps drawn in [--min-gap, --max-gap]) spread
   over the four processes (each gets at least one when kills >= 4), each restarted at
   once; `max_restart_s` is the slowest time from spawn to answering (node: its
   /v1/status; issuer: "ready" once its database is open and its worker runs);
3. MO's issuer stops issuing (its worker keeps anchoring); once a station has synced
   MO's settled state (both witnesses back after the last kill), MO stays idle for
   3 x `--max-sync-age`; the station syncs MO every max-age / 3 and verifies the MO
   station credential with that max age (`idle_region_denials` counts every non-ADMIT);
4. the issuers' outboxes drain (at most `--drain-timeout` s), then everything stops.

A poller reads every node's and every mirror's checkpoint every 0.2 s during the run
(`conflicting_checkpoints`: tree sizes seen with two roots). At the end the logs are
read back over the tlog-tiles API and compared with the issuers' outboxes:
`acknowledged_entries` (outbox rows the node acknowledged with an index),
`lost_entries` (acknowledged rows whose entry is not at that index), `duplicated_entries`
(entries logged twice), `stuck_outbox_rows` (unanchored, not quarantined, older than
60 s), `quarantined_rows` (expected: 1, the poisoned row), `false_alarms` (evidence
kept by either witness plus fork alarms at the station: no log misbehaves here).

The last line printed is one JSON object. Bounded: about kills x mean gap + 3 x max age
+ drain time. `python bench/chaos.py --kills 30` is the full campaign.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Run as `python bench/<name>.py`, sys.path[0] is bench/: put the project root first.
_BENCH = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _BENCH]
sys.path.insert(0, str(ROOT))

REGIONS = ("GD", "MO")
LOAD_HOLDERS = 4  # holders per region the load issues to, refreshes and revokes
STUCK_AFTER_S = 60  # an unanchored outbox row older than this at the end is stuck
READY_TIMEOUT_S = 60.0  # seconds a (re)started process may take to answer
POLL_S = 0.2  # seconds between checkpoint polls
LOAD_PAUSE_S = 0.03  # seconds between two load operations of one issuer process


def log(msg: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def healthbridge() -> list[str]:
    exe = shutil.which("healthbridge", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "healthbridge.cli"]


# -- the issuer child process ------------------------------------------------------------


def _deadline(until_file: Path) -> float:
    try:
        return float(until_file.read_text(encoding="ascii"))
    except (OSError, ValueError):
        return 0.0


def child_issuer(config_path: Path, until_file: Path, seed: int) -> None:
    """Issue, refresh and revoke for the load holders until the time written in
    `until_file` (the parent rewrites it: a region goes idle while its process, and any
    restart of it, keeps anchoring); print "ready" once the anchor worker runs."""
    from sqlalchemy import select

    from issuer.anchor import AnchorWorker, ledger_port_for
    from issuer.config import load_config
    from issuer.context import IssuerContext
    from issuer.issuance import current_credential, issue_credential, revoke_credential_row
    from issuer.models import CredentialRow, Holder

    ctx = IssuerContext.open(load_config(config_path), run_migrations=False)
    AnchorWorker(ctx, ledger_port_for(ctx)).start()
    print("ready", flush=True)
    rng = random.Random(seed)
    while True:
        if time.time() >= _deadline(until_file):
            time.sleep(0.5)  # idle: only the anchor worker runs
            continue
        with ctx.sessions.begin() as s:
            holders = s.scalars(select(Holder).where(Holder.holder_id.like("load-%"))).all()
            holder = rng.choice(holders)
            now = int(time.time())
            op = rng.random()
            if op < 0.6:
                issue_credential(ctx, s, holder, now)
            elif op < 0.8:
                current_credential(ctx, s, holder, now)  # a wallet's refresh
            else:
                row = s.scalars(
                    select(CredentialRow)
                    .where(CredentialRow.holder_pk == holder.id, CredentialRow.state == "active")
                    .order_by(CredentialRow.id.desc())
                ).first()
                if row is not None:
                    revoke_credential_row(ctx, s, row, "superseded", now)
        time.sleep(LOAD_PAUSE_S)


# -- setup -------------------------------------------------------------------------------


@dataclass
class Region:
    id: str
    folder: Path
    node_port: int
    issuer_config: Path
    node_toml: Path
    device: Any = None
    station_jws: str = ""

    @property
    def node_url(self) -> str:
        return f"http://127.0.0.1:{self.node_port}"


def run_cli(*args: str) -> str:
    from healthbridge.demo_world import run_cli as run

    return run(*args)


def setup(work: Path, checkpoint_interval_s: float) -> tuple[dict[str, Region], Path]:
    from issuer.config import load_config
    from issuer.keystore import KeyStore
    from ledger.log.entries import root_public_key_bytes
    from ledger.node.config import encode_ed25519_public_key

    consortium = work / "consortium.toml"
    regions: dict[str, Region] = {}
    for rid in REGIONS:
        folder = work / rid
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        issuer_dir = folder / "issuer"
        run_cli("issuer", "init", "--region", rid, "--data-dir", str(issuer_dir),
                "--ledger-url", url, "--consortium", str(consortium))  # fmt: skip
        config = issuer_dir / "issuer.toml"
        run_cli("issuer", "seed-demo", "--config", str(config))
        keys = KeyStore(load_config(config, env={}))
        root = encode_ed25519_public_key(root_public_key_bytes(keys.root_key()))
        writer = encode_ed25519_public_key(root_public_key_bytes(keys.writer_key()))
        run_cli("ledger", "init", "--region", rid, "--origin", f"{rid.lower()}.chaos.test/log",
                "--dir", str(folder / "ledger"), "--root-public-key", root,
                "--writer-public-key", writer, "--url", url,
                "--consortium", str(consortium))  # fmt: skip
        node_toml = folder / "ledger" / "node.toml"
        # A top-level key: it must come before the file's first [table].
        text = node_toml.read_text(encoding="utf-8")
        node_toml.write_text(f"checkpoint_interval_s = {checkpoint_interval_s}\n" + text)
        regions[rid] = Region(rid, folder, port, config, node_toml)
    run_cli("ledger", "consortium", "init", "--out", str(consortium),
            *(a for r in regions.values()
              for a in ("--member", str(r.folder / "ledger" / "member.toml"))))  # fmt: skip
    return regions, consortium


def add_holders(r: Region, poisoned: bool) -> None:
    """Load holders, the station holder (GREEN, its credential issued now) and, in GD,
    the poisoned outbox row."""
    from sqlalchemy import select

    from credential.claims import StatusColour
    from credential.keys import generate_private_key, public_key_der
    from issuer import log_entries
    from issuer.config import load_config
    from issuer.context import IssuerContext
    from issuer.issuance import add_outbox, holder_status, issue_credential
    from issuer.models import Holder, Resident

    ctx = IssuerContext.open(load_config(r.issuer_config), run_migrations=False)
    try:
        now = int(time.time())
        with ctx.sessions.begin() as s:
            residents = s.scalars(select(Resident).order_by(Resident.id)).all()
            for i in range(LOAD_HOLDERS):
                s.add(Holder(holder_id=f"load-{i}", resident_id=residents[i].id,
                             device_key=public_key_der(generate_private_key()),
                             via="enrolment", created_at=now))  # fmt: skip
            r.device = generate_private_key()
            for res in residents[LOAD_HOLDERS:]:
                h = Holder(holder_id="station", resident_id=res.id, created_at=now,
                           device_key=public_key_der(r.device), via="enrolment")  # fmt: skip
                s.add(h)
                s.flush()
                if holder_status(s, h, now).colour is StatusColour.GREEN:
                    break
                s.delete(h)
                s.flush()
            r.station_jws = issue_credential(ctx, s, h, now).credential.jws
            if poisoned:
                entry = log_entries.credential_revoked(r.id, 999_999_999, now)
                add_outbox(s, "credential_revoked", "999999999", entry, now)
    finally:
        ctx.dispose()


# -- processes ---------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    cmd: list[str]
    ready: Any  # callable(Proc) -> bool
    log_path: Path
    env: dict[str, str]
    popen: subprocess.Popen[bytes] | None = None
    restarts: list[float] = field(default_factory=list)

    def start(self) -> float:
        t0 = time.monotonic()
        out = self.log_path.open("ab")
        self.popen = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=out, env=self.env,
                                      cwd=ROOT)  # fmt: skip
        out.close()
        deadline = t0 + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited: see {self.log_path}")
            if self.ready(self):
                took = time.monotonic() - t0
                self.restarts.append(took)
                return took
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} not ready within {READY_TIMEOUT_S} s")

    def kill(self) -> None:
        assert self.popen is not None
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait()

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def node_ready(url: str) -> Any:
    import requests

    def ready(_p: Proc) -> bool:
        try:
            return requests.get(f"{url}/v1/status", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    return ready


def issuer_ready(p: Proc) -> bool:
    assert p.popen is not None and p.popen.stdout is not None
    line = p.popen.stdout.readline()  # blocks until the child prints (or dies)
    if line.strip() == b"ready":
        # Drain its stdout from now on so the child never blocks on a full pipe.
        stream = p.popen.stdout
        threading.Thread(target=lambda: [None for _ in stream], daemon=True).start()
        return True
    return False


# -- observation -------------------------------------------------------------------------


@dataclass
class Poller:
    urls: list[str]
    seen: dict[tuple[str, int], set[bytes]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        import requests

        from ledger.log.checkpoint import Checkpoint
        from ledger.log.note import SignedNote

        session = requests.Session()
        while not self._stop.wait(POLL_S):
            for url in self.urls:
                try:
                    r = session.get(url, timeout=2)
                    if r.status_code != 200:
                        continue
                    cp = Checkpoint.parse(SignedNote.parse(r.content).text)
                except Exception:  # a node being killed answers nothing or garbage
                    continue
                self.seen.setdefault((cp.origin, cp.size), set()).add(cp.root_hash)

    def conflicts(self) -> int:
        return sum(1 for roots in self.seen.values() if len(roots) > 1)

    def stop(self) -> None:
        self._stop.set()


def log_entries(url: str) -> list[bytes]:
    """Every entry (without its timestamp) of the log at `url`, via tlog-tiles."""
    import requests

    from ledger.clients.sync import HttpLogSource
    from ledger.log.checkpoint import Checkpoint
    from ledger.log.entries import decode_leaf
    from ledger.log.note import SignedNote
    from ledger.log.tiles import TILE_WIDTH, decode_entry_bundle

    note = requests.get(f"{url}/checkpoint", timeout=10).content
    size = Checkpoint.parse(SignedNote.parse(note).text).size
    src = HttpLogSource(url)
    out: list[bytes] = []
    for n in range((size + TILE_WIDTH - 1) // TILE_WIDTH):
        width = min(TILE_WIDTH, size - n * TILE_WIDTH)
        out += [decode_leaf(x).entry_bytes for x in decode_entry_bundle(src.entry_bundle(n, width))]
    return out


def outbox(config: Path) -> list[tuple[int, bytes, int | None, int | None, int]]:
    from sqlalchemy import select

    from issuer.config import load_config
    from issuer.context import IssuerContext
    from issuer.models import OutboxRow

    ctx = IssuerContext.open(load_config(config), run_migrations=False)
    try:
        with ctx.sessions() as s:
            return [
                (r.id, bytes(r.entry), r.log_index, r.quarantined_at, r.created_at)
                for r in s.execute(
                    select(OutboxRow.id, OutboxRow.entry, OutboxRow.log_index,
                           OutboxRow.quarantined_at, OutboxRow.created_at)
                ).all()
            ]  # fmt: skip
    finally:
        ctx.dispose()


# -- the campaign ------------------------------------------------------------------------


def campaign(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import requests

    from credential.presentation import make_presentation
    from credential.verdict import Decision, StationPolicy
    from credential.verify import verify_presentation
    from issuer import anchor
    from ledger.clients.sync import SyncClient, SyncedTrustState
    from ledger.joint.mirror import origin_hash
    from ledger.log.consortium import load_consortium

    rng = random.Random(args.seed)
    regions, consortium_path = setup(work, args.checkpoint_interval)
    for r in regions.values():
        add_holders(r, poisoned=r.id == "GD")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    nodes = {
        rid: Proc(
            f"ledger-{rid}",
            [
                *healthbridge(),
                "ledger",
                "serve",
                "--config",
                str(r.node_toml),
                "--port",
                str(r.node_port),
            ],
            node_ready(r.node_url),
            work / f"ledger-{rid}.log",
            env,
        )
        for rid, r in regions.items()
    }
    load_end = {"GD": time.time() + 10_000.0, "MO": time.time() + 10_000.0}
    procs: list[Proc] = list(nodes.values())
    consortium = load_consortium(consortium_path)
    poll_urls = []
    for r in regions.values():
        origin = consortium.member(r.id).log_origin
        assert origin is not None
        poll_urls.append(f"{r.node_url}/checkpoint")
        for o in regions.values():
            if o.id != r.id:
                poll_urls.append(f"{o.node_url}/mirror/{origin_hash(origin)}/checkpoint")
    poller = Poller(poll_urls)
    station_path = work / "station.db"
    kills: Counter[str] = Counter()
    crashes: Counter[str] = Counter()
    idle_checks = idle_denials = 0
    try:
        for p in nodes.values():
            p.start()
        log("ledger nodes up: " + ", ".join(r.node_url for r in regions.values()))
        threading.Thread(target=poller.run, daemon=True).start()
        # The issuers' first rows (key registration, station credentials) anchored first.
        for r in regions.values():
            from issuer.config import load_config
            from issuer.context import IssuerContext

            ctx = IssuerContext.open(load_config(r.issuer_config), run_migrations=False)
            try:
                anchor.drain(ctx, anchor.ledger_port_for(ctx))
            finally:
                ctx.dispose()
        issuers: dict[str, Proc] = {}
        for rid, r in regions.items():
            until_file = work / f"{rid}.load-until"
            until_file.write_text(str(load_end[rid]))
            issuers[rid] = Proc(
                f"issuer-{rid}",
                [sys.executable, str(Path(__file__).resolve()), "--child-issuer",
                 str(r.issuer_config), "--load-until-file", str(until_file),
                 "--seed", str(rng.randrange(1 << 30))],
                issuer_ready, work / f"issuer-{rid}.log", env,
            )  # fmt: skip
            issuers[rid].start()
        procs += list(issuers.values())
        log(f"issuers up; {args.kills} kills to go")
        targets = [p.name for p in procs]
        plan = (targets * ((args.kills + len(targets) - 1) // len(targets)))[: args.kills]
        rng.shuffle(plan)
        by_name = {p.name: p for p in procs}
        for i, name in enumerate(plan):
            time.sleep(rng.uniform(args.min_gap, args.max_gap))
            for q in procs:
                if q.popen is not None and q.popen.poll() is not None:
                    crashes[q.name] += 1  # died on its own: a bug, not a kill
                    log(f"{q.name} exited by itself ({q.popen.returncode}); restarting")
                    q.start()
            p = by_name[name]
            p.kill()
            kills[name] += 1
            took = p.start()
            log(f"kill {i + 1}/{len(plan)}: {name}, back in {took:.2f} s")
        # MO goes quiet: its issuer stops issuing (the worker still anchors).
        (work / "MO.load-until").write_text(str(time.time()))
        time.sleep(2.0)  # let the last MO rows anchor and be cosigned
        policy = StationPolicy(max_sync_age_s=args.max_sync_age)
        client = SyncClient(consortium, station_path, max_age_s=args.max_sync_age)
        trust = SyncedTrustState(station_path)
        mo = regions["MO"]
        # The idle window starts once the system has settled after the last kill (a
        # witness that was just restarted has cosigned MO's last checkpoint): it measures
        # quietness, not an outage.
        settle_end = time.time() + READY_TIMEOUT_S
        while client.sync("MO").region("MO").synced_at is None and time.time() < settle_end:
            time.sleep(0.5)
        idle_end = time.time() + 3 * args.max_sync_age
        log(f"MO idle for {3 * args.max_sync_age} s; the station checks it every "
            f"{args.max_sync_age / 3:.1f} s")  # fmt: skip
        while time.time() < idle_end:
            report = client.sync("MO")
            now = time.time()
            verdict = verify_presentation(
                make_presentation(mo.station_jws, mo.device, int(now)), trust, now, policy
            )
            idle_checks += 1
            if verdict.decision is not Decision.ADMIT:
                idle_denials += 1
                rep = report.region("MO")
                log(f"idle MO denied: {[str(x) for x in verdict.reasons]}, sync "
                    f"{rep.status}, age {verdict.sync_age_s}: {rep.errors}")  # fmt: skip
            time.sleep(args.max_sync_age / 3)
        station_forks = len(trust.fork_alarms())
        trust.close()
        client.close()
        # Drain: both issuers idle, their workers finish the outbox.
        (work / "GD.load-until").write_text(str(time.time()))
        deadline = time.time() + args.drain_timeout
        while time.time() < deadline:
            pending = 0
            for r in regions.values():
                pending += sum(
                    1 for _, _, idx, q, _ in outbox(r.issuer_config) if idx is None and q is None
                )
            if pending == 0:
                break
            time.sleep(1.0)
        end = time.time()
        acknowledged = lost = duplicated = stuck = quarantined = 0
        alarms = 0
        for r in regions.values():
            entries = log_entries(r.node_url)
            counts = Counter(hashlib.sha256(e).digest() for e in entries)
            duplicated += sum(n - 1 for n in counts.values() if n > 1)
            for _, entry, idx, q, created in outbox(r.issuer_config):
                if q is not None:
                    quarantined += 1
                elif idx is None:
                    stuck += int(end - created > STUCK_AFTER_S)
                else:
                    acknowledged += 1
                    lost += int(idx >= len(entries) or entries[idx] != entry)
            alarms += int(requests.get(f"{r.node_url}/v1/alarms", timeout=10).json()["count"])
        sizes = {r.id: len(log_entries(r.node_url)) for r in regions.values()}
    finally:
        poller.stop()
        for p in procs:
            p.stop()
    restarts = [t for p in procs for t in p.restarts[1:]]
    return {
        "kills": sum(kills.values()),
        "kills_by_process": dict(kills),
        "unexpected_exits": sum(crashes.values()),
        "acknowledged_entries": acknowledged,
        "lost_entries": lost,
        "duplicated_entries": duplicated,
        "conflicting_checkpoints": poller.conflicts(),
        "checkpoints_observed": len(poller.seen),
        "false_alarms": alarms + station_forks,
        "stuck_outbox_rows": stuck,
        "quarantined_rows": quarantined,
        "idle_region_checks": idle_checks,
        "idle_region_denials": idle_denials,
        "max_restart_s": round(max(restarts, default=0.0), 3),
        "log_sizes": sizes,
        "max_sync_age_s": args.max_sync_age,
        "checkpoint_interval_s": args.checkpoint_interval,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=30)
    ap.add_argument("--min-gap", type=float, default=1.0, help="seconds between kills, min")
    ap.add_argument("--max-gap", type=float, default=4.0, help="seconds between kills, max")
    ap.add_argument("--max-sync-age", type=int, default=10, help="station max sync age, s")
    ap.add_argument("--checkpoint-interval", type=float, default=2.0, help="nodes', s")
    ap.add_argument("--drain-timeout", type=float, default=90.0)
    ap.add_argument("--seed", type=int, default=20_261_201)
    ap.add_argument("--workdir", type=Path, default=None, help="kept when given")
    ap.add_argument("--child-issuer", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--load-until-file", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_issuer is not None:
        child_issuer(args.child_issuer, args.load_until_file, args.seed)
        return
    import logging

    logging.basicConfig(level=logging.ERROR)
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        result = campaign(args, args.workdir)
    else:
        with tempfile.TemporaryDirectory(prefix="hb-chaos-") as tmp:
            result = campaign(args, Path(tmp))
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
