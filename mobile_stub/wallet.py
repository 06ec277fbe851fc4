"""The wallet's logic: enrol, refresh, convert and make the code to show.

`Wallet` ties the device key (`mobile_stub.device`), the credential store
(`mobile_stub.store`) and an issuer (`mobile_stub.client.IssuerApi`) together. Time
is passed in by the caller (`now`, Unix seconds); the wallet never reads the clock.

Showing a code needs no network: presentations are made locally from the stored
credential and the device key (`credential.presentation.make_presentation`). Only
enrolment, refresh and conversion talk to an issuer.

The wallet checks that every credential an issuer hands back is bound to this
device's key (RFC 7800 `cnf`): a credential bound to another key could never be shown,
so storing it would only hide the problem until the border.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from credential.claims import HealthClaims
from credential.errors import CredentialError
from credential.issue import read_claims_unverified
from credential.presentation import WINDOW_SECONDS, conversion_challenge, make_presentation
from credential.presentation import window_of as proof_window
from mobile_stub.client import CodeDelivery, IssuedCredential, IssuerApi
from mobile_stub.device import PENDING_KEY_FILE, DeviceKey, DeviceKeyFile
from mobile_stub.errors import (
    CredentialExpiredError,
    IssuerProtocolError,
    NotEnrolledError,
    StoreCorruptError,
)
from mobile_stub.store import CredentialStore, StoredCredential, StoreFile, WalletDocument

# `status` suggests a refresh once this little of the credential's life is left: the
# issuer's default hands out a fresh credential in the last 6 hours of a 24-hour one,
# and a shorter-lived credential is due in its last quarter.
REFRESH_BEFORE_EXPIRY_S = 6 * 3600  # seconds
REFRESH_FRACTION_LEFT = 0.25


def refresh_due(now: float, issued_at: int, expires_at: int) -> bool:
    """Whether a refresh is worth asking the issuer for (a hint; refresh always works)."""
    lead = min(REFRESH_BEFORE_EXPIRY_S, (expires_at - issued_at) * REFRESH_FRACTION_LEFT)
    return now >= expires_at - lead


@dataclass(frozen=True)
class WalletView:
    """What the resident sees for one region: from the credential's own claims, and the
    basis of the status from the issuer's answer (the credential does not carry it)."""

    region: str
    masked_name: str
    document_hint: str
    colour: str
    basis: str
    not_before: int
    expires_at: int
    issuer_url: str
    updated_at: int
    expired: bool
    refresh_due: bool


@dataclass(frozen=True)
class ShownCode:
    """One presentation and the window it belongs to."""

    qr_text: str
    window_start: int
    window_end: int
    view: WalletView


@dataclass(frozen=True)
class RefreshResult:
    region: str
    changed: bool
    entry: StoredCredential


def window_of(now: float) -> tuple[int, int]:
    """[start, end) in Unix seconds of the holder-proof window containing `now`."""
    start = proof_window(now) * WINDOW_SECONDS
    return start, start + WINDOW_SECONDS


def claims_of(entry: StoredCredential) -> HealthClaims:
    try:
        return read_claims_unverified(entry.credential)
    except (CredentialError, ValueError) as e:
        raise StoreCorruptError(
            f"the stored {entry.region} credential cannot be read; refresh or enrol again"
        ) from e


class Wallet:
    """One resident's wallet: a device key, a credential store and the issuers it knows."""

    def __init__(self, key_file: DeviceKeyFile, store: CredentialStore) -> None:
        self.key_file = key_file
        self.store = store

    @classmethod
    def open(cls, wallet_dir: Path, passphrase: bytes | None = None) -> Wallet:
        return cls(DeviceKeyFile(wallet_dir, passphrase), StoreFile(wallet_dir))

    # -- reading -----------------------------------------------------------------------

    def document(self) -> WalletDocument:
        return self.store.load()

    def entry(self, region: str | None = None) -> StoredCredential:
        doc = self.store.load()
        if not doc.entries:
            raise NotEnrolledError(
                "this wallet is not enrolled: run `healthbridge wallet enroll --issuer URL "
                "--document DOC`"
            )
        chosen = region or doc.home
        if chosen is None or chosen not in doc.entries:
            have = ", ".join(sorted(doc.entries))
            raise NotEnrolledError(f"no credential for region {chosen!r} (wallet holds: {have})")
        return doc.entries[chosen]

    def view(self, now: float, region: str | None = None) -> WalletView:
        entry = self.entry(region)
        c = claims_of(entry)
        return WalletView(
            region=c.region,
            masked_name=c.masked_name,
            document_hint=c.document_hint,
            colour=str(c.colour),
            basis=entry.status.basis,
            not_before=c.not_before,
            expires_at=c.expires_at,
            issuer_url=entry.issuer_url,
            updated_at=entry.updated_at,
            expired=now >= c.expires_at,
            refresh_due=refresh_due(now, c.issued_at, c.expires_at),
        )

    def show(
        self, now: float, region: str | None = None, challenge: bytes | None = None
    ) -> ShownCode:
        """A fresh presentation for the current window, made offline."""
        entry = self.entry(region)
        view = self.view(now, entry.region)
        if view.expired:
            raise CredentialExpiredError(
                f"the {view.region} credential expired at {view.expires_at} (Unix time); "
                "run `healthbridge wallet refresh` while online"
            )
        device = self.key_file_for(entry.region).load()
        start, end = window_of(now)
        try:
            text = make_presentation(entry.credential, device.private_key, now, challenge)
        except (CredentialError, ValueError) as e:
            raise StoreCorruptError(
                f"cannot make a presentation from the stored {view.region} credential: {e}"
            ) from e
        return ShownCode(qr_text=text, window_start=start, window_end=end, view=view)

    # -- talking to issuers ------------------------------------------------------------

    def request_code(self, issuer: IssuerApi, document_number: str) -> CodeDelivery:
        return issuer.request_code(document_number)

    def key_file_for(self, region: str) -> DeviceKeyFile:
        """The device key of `region`'s credential: its own key file when the wallet
        made one (conversion, a second enrolment), else the enrolment key."""
        own = self.key_file.for_region(region)
        return own if own.exists() else self.key_file

    def enrol(
        self, issuer: IssuerApi, document_number: str, code: str, now: float
    ) -> StoredCredential:
        """Enrol with an issuer and store the credential. The first enrolment makes the
        wallet's key; a later one (another region, or again) gets a key of its own, so
        no two of the wallet's credentials name one device key."""
        if not self.key_file.exists() or not self.store.load().entries:
            device = self.key_file.load_or_create()
            issued = issuer.enrol(document_number, code, device.public_der)
            return self._store(issued, issuer.base_url, device, now)
        pending = self.key_file.sibling(PENDING_KEY_FILE)
        if pending.exists():
            pending.path.unlink()
        device = pending.create()
        issued = issuer.enrol(document_number, code, device.public_der)
        entry = self._store(issued, issuer.base_url, device, now)
        pending.rename_to(self.key_file.for_region(entry.region))
        return entry

    def refresh(self, issuer: IssuerApi, now: float, region: str | None = None) -> RefreshResult:
        """Ask the issuer for the current credential (device-signed); store it if new."""
        entry = self.entry(region)
        device = self.key_file_for(entry.region).load()
        issued = issuer.fetch_credential(entry.holder_id, device.private_key, int(now))
        if issued.credential == entry.credential and issued.status == entry.status:
            return RefreshResult(region=entry.region, changed=False, entry=entry)
        stored = self._store(issued, entry.issuer_url, device, now, expect_region=entry.region)
        return RefreshResult(region=stored.region, changed=True, entry=stored)

    def convert(
        self, issuer: IssuerApi, now: float, to_region: str, from_region: str | None = None
    ) -> StoredCredential:
        """Present the home credential to another region's issuer and store its answer.

        The new credential is bound to a device key of its own for `to_region`, endorsed
        by the presented credential's key through the conversion challenge
        (`credential.presentation.conversion_challenge`)."""
        source = self.entry(from_region)
        if source.region == to_region:
            raise NotEnrolledError(f"the wallet's {to_region} credential is already that region's")
        target = self.key_file.for_region(to_region)
        device = target.load_or_create()
        challenge = conversion_challenge(device.public_der)
        shown = self.show(now, source.region, challenge=challenge)
        issued = issuer.convert(shown.qr_text, device.public_der)
        return self._store(issued, issuer.base_url, device, now, expect_region=to_region)

    def _store(
        self,
        issued: IssuedCredential,
        issuer_url: str,
        device: DeviceKey,
        now: float,
        expect_region: str | None = None,
    ) -> StoredCredential:
        try:
            claims = read_claims_unverified(issued.credential)
        except (CredentialError, ValueError) as e:
            raise IssuerProtocolError("the issuer sent a credential that cannot be read") from e
        if claims.holder_key != device.public_der:
            raise IssuerProtocolError(
                "the issuer sent a credential bound to another device key; refusing to store it"
            )
        if expect_region is not None and claims.region != expect_region:
            raise IssuerProtocolError(
                f"expected a credential of region {expect_region}, the issuer sent {claims.region}"
            )
        entry = StoredCredential(
            region=claims.region,
            holder_id=issued.holder_id,
            credential=issued.credential,
            issuer_url=issuer_url,
            status=issued.status,
            updated_at=int(now),
        )
        doc = self.store.load()
        self.store.save(doc.with_entry(entry))
        return entry
