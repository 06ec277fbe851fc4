"""`healthbridge demo`: both regions on loopback with SQLite, and the whole story told.

What it does: brings up the world (healthbridge.demo_world: GD and MO ledger nodes
witnessing each other, GD and MO issuers) and a verifier station
(healthbridge.demo_station), then plays six steps, one line each, every verdict in
words and checked against what the story expects:

  1. a GD and an MO resident enrol over HTTP; their wallets show codes
  2. the station scans both phones through a camera → ADMIT, ADMIT
  3. GD's admin revokes the GD resident's credential → GD's log → MO's witness cosigns
  4. the station syncs and scans the GD resident again → DENY (revoked)
  5. a screenshot of the MO resident's code, two minutes old → DENY (stale proof)
  6. another GD resident converts to an MO credential at MO's issuer → ADMIT
  7. GD's health authority records a positive test for that traveller: GD revokes
     the GD code; the station scans the MO code → DENY (source_revoked)
  8. the MO resident's live code passes lane 1; a photo of it shown at lane 2 a
     second later → DENY (proof_replayed): the lanes share one replay memory (Redis)

Then it prints the admin consoles (with the demo credentials), the wallet pages and
the kiosk page, and serves until Ctrl-C; with `--once` it stops after the story and
exits 0 only when every step went as expected. What it does not: any domain logic;
it only drives the components' public interfaces, as their users would.
"""

from __future__ import annotations

import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import requests

from healthbridge.demo_station import DemoStation, Shot, start_lane, start_station
from healthbridge.demo_world import (
    HTTP_TIMEOUT_S,
    DemoError,
    Served,
    World,
    build_world,
    serve,
    wait_for,
    wait_settled,
)

OK, FAIL = "✓", "✗"
STALE_SCREENSHOT_AGE_S = 120  # seconds: the replayed screenshot was taken this long ago
WINDOW_MARGIN_S = 0.3  # seconds past a window boundary before showing the next code
REVOCATION_REASON = "administrative"  # ledger.log.entries.RevocationReason value
# Seeded residents (issuer.residents.SEED): who plays which part in the story.
GD_RESIDENT = "G10000001"
MO_RESIDENT = "M1000001"
GD_TRAVELLER = "G10000004"


class StepFailed(DemoError):
    """A verdict or outcome differed from what the story expects."""

    def __init__(self, step: int, message: str) -> None:
        super().__init__(f"step {step}: {message}")
        self.step = step
        self.detail = message


@dataclass
class DemoWallet:
    """A resident's wallet folder, its Wallet object and its served page."""

    label: str
    folder: Path
    wallet: Any
    page: Served | None = None


def say(line: str) -> None:
    print(line, flush=True)


def verdict_words(event: Any) -> str:
    """ADMIT / DENY / CHECK, and the first reason in plain words."""
    from credential.verdict import describe
    from verifier.station import decision_label

    v = event.verdict
    word = decision_label(v.decision)
    if not v.reasons:
        return f"{word} ({v.region}, {v.colour.value if v.colour else 'no colour'})"
    return f"{word} ({v.reasons[0].value}: {describe(v.reasons[0])})"


def expect(step: int, event: Any, decision: str, reason: str | None = None) -> str:
    v = event.verdict
    words = verdict_words(event)
    reasons = {r.value for r in v.reasons}
    if v.decision.value != decision or (reason is not None and reason not in reasons):
        want = decision + (f" ({reason})" if reason else "")
        raise StepFailed(step, f"expected {want}, the station said {words}")
    return words


# -- wallets --------------------------------------------------------------------------------


def enrol(world: World, region: str, document: str, label: str) -> DemoWallet:
    """Enrol a fresh wallet over HTTP; the code comes through the dev delivery file."""
    from issuer.delivery import read_delivered_code
    from issuer.keystore import KeyStore
    from mobile_stub.client import HttpIssuer
    from mobile_stub.wallet import Wallet

    folder = world.workdir / "wallets" / label
    wallet = Wallet.open(folder)
    r = world.regions[region]
    issuer = HttpIssuer(r.issuer_url)
    wallet.request_code(issuer, document)
    # The delivery file names recipients by the issuer's keyed reference, never by
    # document number: the demo (standing in for the resident's phone) asks the
    # issuer's key store for the reference, as the issuer itself does.
    ref = KeyStore(r.issuer_config).delivery_ref(document)
    code = read_delivered_code(r.issuer_config.delivery_file, ref)
    if code is None:
        raise DemoError(f"{region}'s issuer delivered no enrolment code for the {label}")
    wallet.enrol(issuer, document, code, time.time())
    return DemoWallet(label, folder, wallet)


def serve_wallet_page(world: World, w: DemoWallet, port_name: str, region: str) -> None:
    from mobile_stub.web import create_app

    app = create_app({"WALLET_DIR": w.folder, "WALLET_REGION": region})
    w.page = world.add(serve(port_name, app, world.ports[port_name]))


def shot(w: DemoWallet, region: str, now: float | None = None) -> Shot:
    shown = w.wallet.show(time.time() if now is None else now, region)
    return Shot(shown.qr_text, shown.view.colour, w.label, shown.window_end)


def code_line(w: DemoWallet, region: str) -> str:
    from mobile_stub.qr import qr_version

    shown = w.wallet.show(time.time(), region)
    v = shown.view
    return (
        f"{w.label}'s wallet shows a {v.colour} {v.region} code "
        f"(QR version {qr_version(shown.qr_text)})"
    )


def next_window(window_end: int) -> None:
    """Sleep until the wallet's next 30-s proof window once `window_end` is passed."""
    left = window_end - time.time()
    if left > -WINDOW_MARGIN_S:
        wait = max(0.0, left) + WINDOW_MARGIN_S
        say(
            f"     (waiting {wait:.0f} s for the wallet's next code: "
            "a station accepts each holder proof once per window)"
        )
        time.sleep(wait)


# -- the story --------------------------------------------------------------------------------


@dataclass
class Story:
    world: World
    station: DemoStation
    wallets: dict[str, DemoWallet]
    gd_window_end: int = 0  # end of the proof window of the GD code scanned in step 2
    mo_window_end: int = 0  # end of the proof window of the MO code scanned in step 2
    traveller_window_end: int = 0  # likewise for the traveller's MO code of step 6

    def step1_enrol(self) -> None:
        w = self.world
        gd = enrol(w, "GD", GD_RESIDENT, "GD resident")
        mo = enrol(w, "MO", MO_RESIDENT, "MO resident")
        self.wallets.update({"gd": gd, "mo": mo})
        serve_wallet_page(w, gd, "wallet-gd-resident", "GD")
        serve_wallet_page(w, mo, "wallet-mo-resident", "MO")
        say(f"  {OK} 1. GD resident enrols → {code_line(gd, 'GD')}")
        say(f"       MO resident enrols → {code_line(mo, 'MO')}")

    def step2_scan_both(self) -> None:
        wait_settled(self.world)
        self.sync_line("station syncs both logs")
        gd, mo = self.wallets["gd"], self.wallets["mo"]
        gd_code, mo_code = shot(gd, "GD"), shot(mo, "MO")
        self.gd_window_end, self.mo_window_end = gd_code.window_end, mo_code.window_end
        events = self.station.scan([gd_code, mo_code])
        words = [expect(2, e, "admit") for e in events]
        say(f"  {OK} 2. station scans both phones through its camera → {words[0]}, {words[1]}")
        say("       (both regions' codes accepted at one station)")

    def step3_revoke(self) -> None:
        from credential.issue import read_claims_unverified

        r = self.world.regions["GD"]
        entry = self.wallets["gd"].wallet.entry("GD")
        index = read_claims_unverified(entry.credential).status_index
        auth = {"Authorization": f"Bearer {r.admin_token}"}
        resp = requests.post(
            f"{r.issuer_url}/v1/admin/regions/GD/credentials/{index}/revoke",
            json={"reason": REVOCATION_REASON, "note": "demo: revoked by the regional admin"},
            headers=auth,
            timeout=HTTP_TIMEOUT_S,
        )
        if resp.status_code != 202:
            raise StepFailed(3, f"the revocation was refused: {resp.status_code} {resp.text}")
        outbox_id = resp.json()["entry"]["outbox_id"]

        last: dict[str, Any] = {}

        def state() -> bool:
            url = f"{r.issuer_url}/v1/admin/log-entries/{outbox_id}"
            last.update(requests.get(url, headers=auth, timeout=HTTP_TIMEOUT_S).json())
            return bool(last.get("state") == "cosigned")

        try:
            wait_for(state, "the revocation to be cosigned on GD's log")
        except DemoError as e:
            raise StepFailed(3, f"{e}; the issuer last said {last}") from e
        ledger = requests.get(f"{r.issuer_url}/v1/admin/ledger", headers=auth, timeout=10).json()
        view = next(x for x in ledger["regions"] if x["region"] == "GD")
        cosigners = [w["member"] for w in view["witnesses"] if w["cosigned"]]
        if "MO" not in cosigners:
            raise StepFailed(3, f"MO's witness has not cosigned GD's checkpoint: {view}")
        say(
            f"  {OK} 3. GD admin {r.admin_username} revokes the GD resident's credential "
            f"(status index {index}) → appended to GD's log → checkpoint size {view['size']} "
            f"cosigned by {' and '.join(cosigners)} (MO's witness validated the entry first)"
        )

    def step4_rescan_revoked(self) -> None:
        self.sync_line("station syncs")
        next_window(self.gd_window_end)
        [event] = self.station.scan([shot(self.wallets["gd"], "GD")])
        words = expect(4, event, "deny", "revoked")
        say(f"  {OK} 4. station scans the GD resident again → {words}")

    def step5_stale_screenshot(self) -> None:
        taken = time.time() - STALE_SCREENSHOT_AGE_S
        [event] = self.station.scan([shot(self.wallets["mo"], "MO", now=taken)])
        words = expect(5, event, "deny", "proof_stale")
        say(
            f"  {OK} 5. a screenshot of the MO resident's code taken "
            f"{STALE_SCREENSHOT_AGE_S // 60} minutes earlier is replayed → {words}"
        )

    def step6_convert(self) -> None:
        from mobile_stub.client import HttpIssuer

        w = self.world
        t = enrol(w, "GD", GD_TRAVELLER, "GD traveller")
        self.wallets["traveller"] = t
        colour = t.wallet.view(time.time(), "GD").colour
        if colour != "green":
            raise StepFailed(6, f"expected the traveller's GD code to be green, found {colour}")
        wait_settled(w)  # MO's issuer checks the GD code against GD's cosigned log
        t.wallet.convert(HttpIssuer(w.regions["MO"].issuer_url), time.time(), "MO", "GD")
        serve_wallet_page(w, t, "wallet-gd-traveller", "MO")
        wait_settled(w)  # the MO code is on MO's cosigned log before it is shown
        code = shot(t, "MO")
        self.traveller_window_end = code.window_end
        [event] = self.station.scan([code])
        words = expect(6, event, "admit")
        say(
            f"  {OK} 6. another GD resident (green) converts GD→MO at MO's issuer "
            f"→ {code_line(t, 'MO')} → scan → {words}"
        )

    def step7_source_revoked(self) -> None:
        r = self.world.regions["GD"]
        token = r.issuer_config.authority_token_path.read_text(encoding="utf-8").strip()
        record = {
            "document_number": GD_TRAVELLER,
            "kind": "test",
            "result": "positive",
            "at": str(int(time.time()) - 60),
        }
        resp = requests.post(
            f"{r.issuer_url}/v1/records",
            json={"records": [record]},
            headers={"Authorization": f"Bearer {token}"},
            timeout=HTTP_TIMEOUT_S,
        )
        if resp.status_code != 200 or not resp.json().get("revoked"):
            raise StepFailed(7, f"GD did not revoke on the positive test: {resp.text}")
        wait_settled(self.world)  # GD's revocation is on GD's cosigned log
        self.sync_line("station syncs")
        t = self.wallets["traveller"]
        next_window(self.traveller_window_end)
        [event] = self.station.scan([shot(t, "MO")])
        words = expect(7, event, "deny", "source_revoked")
        say(
            f"  {OK} 7. GD's health authority records a positive test for the traveller → "
            f"GD revokes the GD code → the station scans the traveller's MO code → {words}"
        )

    def step8_second_lane(self) -> None:
        lane2 = start_lane(self.world, self.station)
        next_window(self.mo_window_end)
        code = shot(self.wallets["mo"], "MO")
        [first] = self.station.scan([code])
        expect(8, first, "admit")
        [second] = lane2.scan([code])
        words = expect(8, second, "deny", "proof_replayed")
        say(
            f"  {OK} 8. the MO resident's live code passes lane 1 (ADMIT); a photo of it "
            f"shown at lane 2 → {words} (one replay memory for the checkpoint: "
            f"{self.station.replay_where})"
        )

    def sync_line(self, what: str) -> None:
        report = self.station.sync()
        sizes = ", ".join(f"{r.region} size {r.new_size}" for r in report.regions)
        say(f"     ({what}: {sizes}; quorum-cosigned checkpoints)")

    def steps(self) -> list[Callable[[], None]]:
        return [
            self.step1_enrol,
            self.step2_scan_both,
            self.step3_revoke,
            self.step4_rescan_revoked,
            self.step5_stale_screenshot,
            self.step6_convert,
            self.step7_source_revoked,
            self.step8_second_lane,
        ]


def print_urls(world: World, wallets: dict[str, DemoWallet], station: DemoStation) -> None:
    say("")
    say("Admin consoles (demo credentials, this run only):")
    for r in world.regions.values():
        say(
            f"  {r.id}: {r.issuer_url}/console/login  "
            f"user {r.admin_username}  password {r.admin_password}"
        )
    say("Wallet pages:")
    for w in wallets.values():
        if w.page is not None:
            say(f"  {w.label}: {w.page.url}/")
    say(f"Verifier station kiosk: {station.kiosk.url}/")
    say(
        "Ledger nodes: "
        + ", ".join(f"{r.id} {r.ledger_url}/checkpoint" for r in world.regions.values())
    )


def _wait_for_interrupt() -> None:
    stop = threading.Event()

    def handler(_sig: int, _frame: FrameType | None) -> None:
        stop.set()

    old_int = signal.signal(signal.SIGINT, handler)
    old_term = signal.signal(signal.SIGTERM, handler)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)


def run_demo(once: bool, workdir: str | None) -> int:
    """Play the story; with `once`, return 0 only if every step went as expected."""
    folder = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="healthbridge-demo-"))
    started = time.monotonic()
    say(f"HealthBridge demo: GD and MO on 127.0.0.1, SQLite, work folder {folder}")
    world: World | None = None
    failed: StepFailed | DemoError | None = None
    try:
        world = build_world(folder, lambda line: say(f"  {OK} {line}"))
        station = start_station(world)
        say(f"  {OK} verifier station ready, camera = generated video read through OpenCV")
        story = Story(world, station, {})
        for number, step in enumerate(story.steps(), start=1):
            try:
                step()
            except StepFailed as e:
                failed = e
            except Exception as e:  # any component's typed error ends the story, named
                failed = StepFailed(number, f"{type(e).__name__}: {e}")
            if failed is not None:
                say(f"  {FAIL} {failed}")
                break
        else:
            say(f"Story complete in {time.monotonic() - started:.0f} s: every verdict as expected.")
        if failed is None and not once:
            station.start_background_sync()
        if not once:
            print_urls(world, story.wallets, station)
            say("Serving until Ctrl-C.")
            _wait_for_interrupt()
    except DemoError as e:
        failed = e
        say(f"  {FAIL} {e}")
    except Exception as e:  # a component failing to start: one line, not a traceback
        failed = DemoError(f"{type(e).__name__}: {e}")
        say(f"  {FAIL} {failed}")
    finally:
        if world is not None:
            world.close()
        # A temporary work folder goes when the demo went well; it stays for a look
        # after a failure, and a folder given with --workdir always stays.
        if workdir is None and failed is None:
            shutil.rmtree(folder, ignore_errors=True)
    if failed is not None:
        if isinstance(failed, StepFailed):
            where, why = f"step {failed.step}", failed.detail
        else:
            where, why = "setup", str(failed)
        print(f"demo FAILED at {where}: {why}", file=sys.stderr, flush=True)
        print(f"(work folder kept for inspection: {folder})", file=sys.stderr, flush=True)
        return 1
    say("Stopped cleanly." + ("" if workdir else " (temporary work folder removed)"))
    return 0
