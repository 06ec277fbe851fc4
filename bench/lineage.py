"""Benchmark: how fast the ledger's guarantees take effect across regions.

Both regions run on loopback as `healthbridge demo` runs them (ledger nodes witnessing
each other, issuers with their anchor workers, real HTTP, SQLite). Measured:

- fresh_admit_s: from a GD credential's issuance (its transaction committed) to the
  first ADMIT at an online full-mode station that started with an older view: the
  station sees `not_yet_anchored`, syncs on demand (at most once a second per region,
  verifier.syncing) and verifies again every 50 ms, as a camera rescans;
- conversion_revoked_s: from GD's admin revoking a GD credential to MO's issuer having
  revoked the MO credential converted from it, with MO's issuer syncing GD's log and
  sweeping its conversions every `--interval` seconds (its `sync_interval_s`); and
  `conversion_after_cosigned_s`, the same measured from the moment GD's revocation was
  in a checkpoint cosigned by both witnesses: the sweep's own share, bounded by one
  interval.

Usage: .venv/bin/python bench/lineage.py [--fresh N] [--conversions M] [--interval S]
The last output line is one JSON object (p50 / p99 / max per figure).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
_BENCH = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _BENCH]
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
from sqlalchemy import select  # noqa: E402

from credential.keys import b64url, generate_private_key, public_key_der  # noqa: E402
from credential.presentation import make_presentation  # noqa: E402
from credential.reasons import Reason  # noqa: E402
from credential.verify import verify_presentation  # noqa: E402
from healthbridge.demo_world import build_world, wait_settled  # noqa: E402
from issuer import enrolment  # noqa: E402
from issuer.app import sweep_conversions  # noqa: E402
from issuer.delivery import read_delivered_code  # noqa: E402
from issuer.issuance import IssuedCredential, issue_credential  # noqa: E402
from issuer.models import CredentialRow, Holder  # noqa: E402
from ledger.clients.sync import SyncedTrustState  # noqa: E402
from ledger.log.consortium import Consortium  # noqa: E402
from verifier.syncing import LedgerSyncer  # noqa: E402

POLL_S = 0.02  # seconds between polls of a condition
RESCAN_S = 0.05  # seconds between two station verifications (a camera rescanning)
TIMEOUT_S = 60.0  # seconds before one sample is given up as failed


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def summary(xs: list[float]) -> dict[str, float]:
    ordered = sorted(xs)
    p99 = ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]  # nearest rank
    return {
        "n": len(xs),
        "p50": round(statistics.median(ordered), 3),
        "p99": round(p99, 3),
        "max": round(ordered[-1], 3),
    }


def wait(pred: Any, what: str) -> float:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        if pred():
            return time.monotonic()
        time.sleep(POLL_S)
    raise RuntimeError(f"timed out waiting for {what}")


def enrol_gd(world: Any, doc: str) -> tuple[Any, int]:
    """A GD resident's device and holder row, enrolled in-process."""
    r = world.regions["GD"]
    ctx = r.issuer_app.extensions["issuer"]
    device = generate_private_key()
    enrolment.request_code(ctx, doc, "127.0.0.1")
    code = read_delivered_code(r.issuer_config.delivery_file, doc)
    assert code is not None
    done = enrolment.enrol(ctx, doc, code, b64url(public_key_der(device)), "127.0.0.1")
    with ctx.sessions() as s:
        holder = s.scalars(select(Holder).where(Holder.holder_id == done.holder_id)).one()
        return device, holder.id


def fresh_credential(world: Any, holder_pk: int) -> IssuedCredential:
    r = world.regions["GD"]
    ctx = r.issuer_app.extensions["issuer"]
    with ctx.sessions.begin() as s:
        issued = issue_credential(ctx, s, s.get_one(Holder, holder_pk), int(time.time()))
        row = issued.credential
    r.issuer_app.extensions["issuer.worker"].wake()
    return row


def fresh_admit(world: Any, tmp: Path, count: int) -> list[float]:
    device, holder_pk = enrol_gd(world, "G10000002")
    wait_settled(world)
    syncer = LedgerSyncer(Consortium.load(world.consortium_path), tmp / "station.db")
    assert syncer.sync().ok
    trust = SyncedTrustState(tmp / "station.db")
    out: list[float] = []
    for i in range(count):
        time.sleep(1.0)  # the station's view is older than the credential
        row = fresh_credential(world, holder_pk)
        t0 = time.monotonic()
        while True:
            now = time.time()
            v = verify_presentation(make_presentation(row.jws, device, now), trust, now)
            if v.admitted:
                break
            if v.reasons != (Reason.NOT_YET_ANCHORED,):
                raise RuntimeError(f"unexpected verdict {v.reasons}")
            syncer.sync_now("GD")
            if time.monotonic() - t0 > TIMEOUT_S:
                raise RuntimeError("fresh credential never admitted")
            time.sleep(RESCAN_S)
        out.append(time.monotonic() - t0)
        say(f"fresh credential {i + 1}/{count} admitted after {out[-1]:.2f} s")
    trust.close()
    return out


def conversion_revoked(world: Any, count: int, interval: float) -> tuple[list[float], list[float]]:
    gd, mo = world.regions["GD"], world.regions["MO"]
    mo_ctx = mo.issuer_app.extensions["issuer"]
    device, holder_pk = enrol_gd(world, "G10000004")
    auth = {"Authorization": f"Bearer {gd.admin_token}"}
    stop = threading.Event()

    def mo_periodic() -> None:  # MO's issuer with sync_interval_s = interval
        while not stop.wait(interval):
            source = mo.issuer_app.extensions.get("issuer.trust")
            if source is None:
                continue
            try:
                source.refresh(force=True)
            except Exception as e:  # a peer busy: the next round retries
                say(f"MO sync failed: {type(e).__name__}")
                continue
            sweep_conversions(mo.issuer_app, source)

    thread = threading.Thread(target=mo_periodic, daemon=True)
    thread.start()
    total: list[float] = []
    after_cosigned: list[float] = []
    try:
        for i in range(count):
            row = fresh_credential(world, holder_pk)
            wait_settled(world)
            qr = make_presentation(row.jws, device, time.time())
            r = requests.post(
                f"{mo.issuer_url}/v1/conversion", json={"presentation": qr}, timeout=30
            )
            if r.status_code != 201:
                raise RuntimeError(f"conversion refused: {r.text}")
            mo_jws = r.json()["credential"]
            t0 = time.monotonic()
            resp = requests.post(
                f"{gd.issuer_url}/v1/admin/regions/GD/credentials/{row.status_index}/revoke",
                json={"reason": "administrative", "note": "bench"},
                headers=auth,
                timeout=30,
            )
            if resp.status_code != 202:
                raise RuntimeError(f"revocation refused: {resp.text}")
            outbox_id = resp.json()["entry"]["outbox_id"]
            url = f"{gd.issuer_url}/v1/admin/log-entries/{outbox_id}"
            t_cosigned = wait(
                lambda u=url: (
                    requests.get(u, headers=auth, timeout=10).json().get("state") == "cosigned"
                ),
                "GD's revocation to be cosigned",
            )

            def revoked_at_mo(jws: str = mo_jws) -> bool:
                with mo_ctx.sessions() as s:
                    state = s.scalars(
                        select(CredentialRow.state).where(CredentialRow.jws == jws)
                    ).one()
                return bool(state == "revoked")

            t1 = wait(revoked_at_mo, "MO to revoke the conversion")
            total.append(t1 - t0)
            after_cosigned.append(max(0.0, t1 - t_cosigned))
            say(
                f"conversion {i + 1}/{count}: revoked at MO {total[-1]:.2f} s after GD's "
                f"revocation ({after_cosigned[-1]:.2f} s after it was cosigned)"
            )
    finally:
        stop.set()
        thread.join(5)
    return total, after_cosigned


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fresh", type=int, default=20)
    ap.add_argument("--conversions", type=int, default=8)
    ap.add_argument("--interval", type=float, default=2.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="hb-bench-lineage-") as d:
        tmp = Path(d)
        world = build_world(tmp / "world", say)
        try:
            wait_settled(world)
            fresh = fresh_admit(world, tmp, args.fresh)
            total, after = conversion_revoked(world, args.conversions, args.interval)
        finally:
            world.close()
    print(
        json.dumps(
            {
                "fresh_admit_s": summary(fresh),
                "conversion_revoked_s": summary(total),
                "conversion_after_cosigned_s": summary(after),
                "sweep_interval_s": args.interval,
                "goals": {
                    "fresh_admit_p99_s": 3.0,
                    "conversion_after_cosigned_p99_s": args.interval,
                },
            }
        )
    )


if __name__ == "__main__":
    main()
