"""The wallet's logic against an in-memory issuer: enrol, show, refresh, convert."""

from __future__ import annotations

from pathlib import Path

import pytest

from credential.claims import StatusColour
from credential.issue import read_claims_unverified
from credential.presentation import WINDOW_SECONDS
from credential.trust import InMemoryTrustState
from mobile_stub.device import DEVICE_KEY_FILE
from mobile_stub.errors import (
    CredentialExpiredError,
    DeviceKeyCorruptError,
    DeviceKeyMissingError,
    IssuerProtocolError,
    IssuerUnreachableError,
    NotEnrolledError,
    WrongCodeError,
)
from mobile_stub.wallet import Wallet, window_of
from tests.mobile_stub.fakes import FakeIssuer

NOW = 1_800_000_010.0  # inside a window (not on its edge)


@pytest.fixture()
def gd() -> FakeIssuer:
    return FakeIssuer("GD", NOW)


@pytest.fixture()
def wallet(tmp_path: Path) -> Wallet:
    return Wallet.open(tmp_path / "wallet")


def enrolled(wallet: Wallet, issuer: FakeIssuer) -> str:
    wallet.request_code(issuer, "G12345678")
    return wallet.enrol(issuer, "G12345678", "123456", NOW).holder_id


def test_enrolment_stores_a_credential_bound_to_this_device(wallet: Wallet, gd: FakeIssuer) -> None:
    enrolled(wallet, gd)
    entry = wallet.entry()
    device = wallet.key_file.load()
    assert read_claims_unverified(entry.credential).holder_key == device.public_der
    view = wallet.view(NOW)
    assert (view.region, view.colour, view.masked_name) == ("GD", "green", "C** T** M**")
    assert not view.expired


def test_document_number_is_not_kept_in_the_wallet(wallet: Wallet, gd: FakeIssuer) -> None:
    enrolled(wallet, gd)
    for path in wallet.key_file.path.parent.iterdir():
        assert b"G12345678" not in path.read_bytes()


def test_wrong_code_is_refused_and_nothing_is_stored(wallet: Wallet, gd: FakeIssuer) -> None:
    wallet.request_code(gd, "G12345678")
    with pytest.raises(WrongCodeError):
        wallet.enrol(gd, "G12345678", "000000", NOW)
    with pytest.raises(NotEnrolledError):
        wallet.entry()


def test_shown_code_verifies_and_changes_every_window(wallet: Wallet, gd: FakeIssuer) -> None:
    verify_presentation = pytest.importorskip("credential.verify").verify_presentation

    enrolled(wallet, gd)
    trust = InMemoryTrustState()
    gd.register(trust)
    first = wallet.show(NOW)
    again = wallet.show(NOW + 1)
    later = wallet.show(NOW + WINDOW_SECONDS)
    assert first.window_start == window_of(NOW)[0]
    assert first.window_end - first.window_start == WINDOW_SECONDS
    assert later.window_start == first.window_end
    assert later.qr_text != first.qr_text
    assert again.window_start == first.window_start
    verdict = verify_presentation(first.qr_text, trust, NOW)
    assert verdict.decision == "admit", verdict.reasons


def test_showing_a_code_needs_no_issuer(wallet: Wallet, gd: FakeIssuer) -> None:
    enrolled(wallet, gd)
    gd.online = False
    assert wallet.show(NOW).qr_text


def test_refresh_after_status_change_stores_the_new_colour(wallet: Wallet, gd: FakeIssuer) -> None:
    holder = enrolled(wallet, gd)
    assert not wallet.refresh(gd, NOW + 5).changed
    gd.set_colour(holder, StatusColour.RED)
    gd.now = NOW + 60
    result = wallet.refresh(gd, NOW + 60)
    assert result.changed
    assert wallet.view(NOW + 60).colour == "red"


def test_refresh_offline_keeps_the_stored_credential(wallet: Wallet, gd: FakeIssuer) -> None:
    enrolled(wallet, gd)
    before = wallet.entry().credential
    gd.online = False
    with pytest.raises(IssuerUnreachableError):
        wallet.refresh(gd, NOW)
    assert wallet.entry().credential == before


def test_expired_credential_is_not_shown(wallet: Wallet, gd: FakeIssuer) -> None:
    enrolled(wallet, gd)
    expires = wallet.view(NOW).expires_at
    with pytest.raises(CredentialExpiredError, match="refresh"):
        wallet.show(expires + 1)
    assert wallet.view(expires + 1).expired


def test_conversion_binds_a_distinct_device_key_per_region(wallet: Wallet, gd: FakeIssuer) -> None:
    enrolled(wallet, gd)
    mo = FakeIssuer("MO", NOW)
    entry = wallet.convert(mo, NOW, "MO")
    assert entry.region == "MO"
    doc = wallet.document()
    assert sorted(doc.entries) == ["GD", "MO"]
    assert doc.home == "GD"
    assert wallet.view(NOW, "MO").region == "MO"
    gd_key = read_claims_unverified(doc.entries["GD"].credential).holder_key
    mo_key = read_claims_unverified(entry.credential).holder_key
    # Two regions' codes of one person share no device key a camera could read.
    assert mo_key != gd_key
    assert wallet.key_file_for("MO").load().public_der == mo_key
    assert wallet.key_file_for("GD").load().public_der == gd_key
    # Each code is shown with its own region's key.
    assert wallet.show(NOW, "MO").view.region == "MO"
    assert wallet.show(NOW, "GD").view.region == "GD"


def test_enrolling_directly_in_a_second_region_uses_a_key_of_its_own(
    wallet: Wallet, gd: FakeIssuer
) -> None:
    enrolled(wallet, gd)
    mo = FakeIssuer("MO", NOW)
    wallet.request_code(mo, "M1234567")
    entry = enrolled_again = wallet.enrol(mo, "M1234567", "123456", NOW)
    doc = wallet.document()
    gd_key = read_claims_unverified(doc.entries["GD"].credential).holder_key
    assert read_claims_unverified(enrolled_again.credential).holder_key != gd_key
    assert entry.region == "MO" and wallet.key_file.for_region("MO").exists()
    assert not wallet.key_file.sibling("device_key.pending.pem").exists()
    assert wallet.show(NOW, "MO").view.region == "MO"
    assert wallet.refresh(mo, NOW, "MO").region == "MO"  # device-signed with the MO key


def test_credential_bound_to_another_device_is_refused(
    wallet: Wallet, gd: FakeIssuer, tmp_path: Path
) -> None:
    enrolled(wallet, gd)
    other = Wallet.open(tmp_path / "other")
    enrolled(other, gd)
    mo = FakeIssuer("MO", NOW)
    someone_elses = mo.convert(other.show(NOW).qr_text)
    mo.convert = lambda presentation, key=None: someone_elses  # type: ignore[method-assign]
    with pytest.raises(IssuerProtocolError, match="another device key"):
        wallet.convert(mo, NOW, "MO")
    assert sorted(wallet.document().entries) == ["GD"]


def test_not_enrolled_wallet_says_how_to_enrol(wallet: Wallet) -> None:
    with pytest.raises(NotEnrolledError, match="wallet enroll"):
        wallet.show(NOW)


def test_unknown_region_is_named(wallet: Wallet, gd: FakeIssuer) -> None:
    enrolled(wallet, gd)
    with pytest.raises(NotEnrolledError, match="'MO'"):
        wallet.show(NOW, "MO")


def test_deleted_device_key_is_reported_when_showing(wallet: Wallet, gd: FakeIssuer) -> None:
    enrolled(wallet, gd)
    wallet.key_file.path.unlink()
    with pytest.raises(DeviceKeyMissingError):
        wallet.show(NOW)


def test_corrupted_device_key_is_reported_when_showing(wallet: Wallet, gd: FakeIssuer) -> None:
    enrolled(wallet, gd)
    (wallet.key_file.path.parent / DEVICE_KEY_FILE).write_bytes(b"\x00" * 200)
    with pytest.raises(DeviceKeyCorruptError):
        wallet.show(NOW)


def test_fresh_credential_is_not_reported_as_due_for_refresh() -> None:
    from mobile_stub.wallet import refresh_due

    day = 86_400
    issued = 1_800_000_000
    assert not refresh_due(issued + 60, issued, issued + day)  # just enrolled
    assert not refresh_due(issued + day - 7 * 3600, issued, issued + day)
    assert refresh_due(issued + day - 5 * 3600, issued, issued + day)  # last 6 hours
    # A one-hour credential is due in its last quarter, not all its life.
    assert not refresh_due(issued + 1_800, issued, issued + 3_600)
    assert refresh_due(issued + 2_800, issued, issued + 3_600)
