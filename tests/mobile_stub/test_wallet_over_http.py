"""The wallet's command line against the real issuer service over HTTP on loopback.

Two issuers (GD and MO, `issuer.app.create_app`) are served by werkzeug on 127.0.0.1;
the wallet enrols with GD, shows a code that verifies, picks up a status change made
through GD's admin API, and converts into an MO credential that verifies too. No
ledger node is needed: the wallet never reads a log, and anchoring is the issuer's
business (its own tests cover it).
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from credential.claims import StatusColour
from credential.issue import read_claims_unverified
from credential.keys import SigningAlg
from credential.trust import InMemoryTrustState, RegisteredKey
from credential.verify import verify_presentation
from issuer.app import create_app
from issuer.context import IssuerContext
from issuer.conversion import StaticTrustSource
from issuer.delivery import InMemoryDelivery
from issuer.models import SigningKeyRow
from issuer.testing import make_context, serve
from mobile_stub.cli import cli
from mobile_stub.client import HttpIssuer
from mobile_stub.wallet import Wallet

GD_DOC = "G10000001"  # a seeded GD resident (fully vaccinated: green)


def registered_keys(ctx: IssuerContext, trust: InMemoryTrustState) -> None:
    """What a synced view of the region's log holds: its keys, synced just now."""
    with ctx.sessions() as s:
        for k in s.query(SigningKeyRow).all():
            trust.add_key(
                RegisteredKey(
                    ctx.region,
                    k.kid,
                    SigningAlg(k.alg),
                    k.public_key_der,
                    k.not_before - 60,
                    k.not_after,
                )
            )
    trust.sync_times[ctx.region] = int(time.time())


@dataclass
class Regions:
    gd: IssuerContext
    gd_url: str
    mo_url: str
    trust: InMemoryTrustState


@pytest.fixture()
def regions(tmp_path: Path) -> Iterator[Regions]:
    gd = make_context(tmp_path, "GD")
    mo = make_context(tmp_path, "MO")
    trust = InMemoryTrustState()
    registered_keys(gd, trust)
    registered_keys(mo, trust)
    gd_app = create_app(gd.config, context=gd, start_workers=False)
    mo_app = create_app(mo.config, context=mo, trust=StaticTrustSource(trust), start_workers=False)
    with serve(gd_app) as g, serve(mo_app) as m:
        yield Regions(gd, g.url, m.url, trust)
    gd.dispose()
    mo.dispose()


def wallet_cmd(folder: Path, *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, ["--dir", str(folder), *args])


def delivered_code(r: Regions, doc: str) -> str:
    assert isinstance(r.gd.delivery, InMemoryDelivery)
    return r.gd.delivery.sent[doc]


def enrol(r: Regions, folder: Path) -> None:
    HttpIssuer(r.gd_url).request_code(GD_DOC)
    result = wallet_cmd(
        folder,
        "enroll",
        "--issuer",
        r.gd_url,
        "--document",
        GD_DOC,
        "--code",
        delivered_code(r, GD_DOC),
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Enrolled. GD:")
    assert GD_DOC not in result.output


def operator_token(ctx: IssuerContext) -> str:
    """An API token of a GD operator account: admins act as themselves, never shared."""
    from issuer.admin import accounts_db
    from issuer.admin.accounts import Role

    roles = frozenset({Role.OPERATOR})
    accounts_db.create_account(ctx.sessions, "gd-ops", ctx.region, roles, "a long pass phrase", 0)
    return accounts_db.issue_token(ctx.sessions, "gd-ops", "wallet test", ctx.now())


def shown_code(folder: Path, *extra: str) -> str:
    result = wallet_cmd(folder, "show", "--once", "--text", *extra)
    assert result.exit_code == 0, result.output
    return result.output.strip()


def test_enrol_show_refresh_and_convert_over_http(regions: Regions, tmp_path: Path) -> None:
    folder = tmp_path / "wallet"
    enrol(regions, folder)

    # Show: the code verifies at a station that synced GD's keys.
    verdict = verify_presentation(shown_code(folder), regions.trust, time.time())
    assert verdict.decision == "admit", verdict.reasons
    assert verdict.colour == StatusColour.GREEN

    # Refresh with nothing changed keeps the credential.
    result = wallet_cmd(folder, "refresh")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Unchanged.")

    # GD's admin turns the resident red; the next refresh brings a red credential.
    token = operator_token(regions.gd)
    r = requests.post(
        f"{regions.gd_url}/v1/admin/regions/GD/status-overrides",
        json={"document_number": GD_DOC, "colour": "red", "reason": "contact tracing"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert r.status_code == 202, r.text
    result = wallet_cmd(folder, "refresh")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Updated.")
    assert "RED" in result.output
    verdict = verify_presentation(shown_code(folder), regions.trust, time.time())
    assert verdict.colour == StatusColour.RED

    # Convert to MO: a new MO credential bound to a device key of its own.
    result = wallet_cmd(folder, "convert", "--to", "MO", "--issuer", regions.mo_url)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Converted. MO:")
    doc = Wallet.open(folder).document()
    assert sorted(doc.entries) == ["GD", "MO"]
    gd_claims = read_claims_unverified(doc.entries["GD"].credential)
    mo_claims = read_claims_unverified(doc.entries["MO"].credential)
    assert mo_claims.holder_key != gd_claims.holder_key
    verdict = verify_presentation(shown_code(folder, "--region", "MO"), regions.trust, time.time())
    assert verdict.region == "MO"
    assert verdict.colour == StatusColour.RED

    status = wallet_cmd(folder, "status")
    assert status.exit_code == 0
    assert "GD:" in status.output and "MO:" in status.output


def test_wrong_code_over_http_is_one_line_and_stores_nothing(
    regions: Regions, tmp_path: Path
) -> None:
    folder = tmp_path / "wallet"
    HttpIssuer(regions.gd_url).request_code(GD_DOC)
    wrong = "0" * len(delivered_code(regions, GD_DOC))
    if wrong == delivered_code(regions, GD_DOC):
        wrong = "1" * len(wrong)
    result = wallet_cmd(
        folder, "enroll", "--issuer", regions.gd_url, "--document", GD_DOC, "--code", wrong
    )
    assert result.exit_code == 7
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: issuer refused (wrong_code)")
    assert Wallet.open(folder).document().entries == {}


class DeliveredCodeStdin(io.BytesIO):
    """stdin whose content is the code the issuer delivered, read only when the prompt
    asks (the code does not exist before the wallet requests it)."""

    def __init__(self, fetch: Callable[[], str]) -> None:
        super().__init__()
        self._fetch: Callable[[], str] | None = fetch

    def _fill(self) -> None:
        if self._fetch is not None:
            self.write(self._fetch().encode() + b"\n")
            self.seek(0)
            self._fetch = None

    def read(self, size: int | None = -1) -> bytes:
        if size != 0:
            self._fill()
        return super().read(size)

    def read1(self, size: int = -1) -> bytes:
        self._fill()
        return super().read1(size)

    def readline(self, size: int | None = -1) -> bytes:
        self._fill()
        return super().readline(size)

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def, override]
        self._fill()
        return super().readinto(buffer)


def test_enrol_prompts_for_the_code_it_requested(regions: Regions, tmp_path: Path) -> None:
    folder = tmp_path / "wallet"
    stdin = DeliveredCodeStdin(lambda: delivered_code(regions, GD_DOC))
    result = CliRunner().invoke(
        cli,
        ["--dir", str(folder), "enroll", "--issuer", regions.gd_url, "--document", GD_DOC],
        input=stdin,
    )
    assert result.exit_code == 0, result.output
    assert "A one-time code was sent" in result.output
    assert "Enrolment code:" in result.output
    assert "Enrolled. GD:" in result.output


def test_credential_fetch_uses_a_device_signed_header(regions: Regions, tmp_path: Path) -> None:
    folder = tmp_path / "wallet"
    enrol(regions, folder)
    holder = Wallet.open(folder).entry().holder_id
    # Without the device's signature the issuer refuses; the wallet's header is accepted.
    r = requests.get(f"{regions.gd_url}/v1/credential", timeout=10)
    assert r.status_code == 401
    r = requests.get(
        f"{regions.gd_url}/v1/credential",
        headers={"Authorization": f"HB-Device {holder}.{int(time.time())}.AAAA" + "A" * 80},
        timeout=10,
    )
    assert r.status_code == 401
    assert wallet_cmd(folder, "refresh").exit_code == 0
