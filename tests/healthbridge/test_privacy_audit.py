"""The personal-data audit: what the whole demo leaves behind holds no seeded name or
document number (in clear or unkeyed-hashed), no scan that joins to the issuer, no
world-readable database or secret, no reason on a public log; and the QR shows only
what staff need.

The fast tests plant each kind of leak in a folder and check the audit finds it, so a
clean result of the slow test means "nothing there", not "nothing looked for".
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from healthbridge.privacy_audit import audit, needles, qr_fields, run_demo_and_audit

NAME, DOC = "张小明", "G10000001"
DIGEST = bytes(range(32))


def issuer_db(path: Path) -> None:
    """A minimal issuer database: one resident, one holder, one credential."""
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE residents (id INTEGER PRIMARY KEY, name TEXT, document_number TEXT);
        CREATE TABLE holders (id INTEGER PRIMARY KEY, resident_id INTEGER);
        CREATE TABLE credentials (id INTEGER PRIMARY KEY, holder_pk INTEGER,
                                  credential_id TEXT, digest BLOB);
        CREATE TABLE rate_events (key TEXT, at INTEGER);
        """
    )
    db.execute("INSERT INTO residents VALUES (1, ?, ?)", (NAME, DOC))
    db.execute("INSERT INTO holders VALUES (1, 1)")
    db.execute("INSERT INTO credentials VALUES (1, 1, ?, ?)", (DIGEST[:16].hex(), DIGEST))
    db.commit()
    db.close()


def scan_log(path: Path, column: str, value: str) -> None:
    db = sqlite3.connect(path)
    db.execute(f"CREATE TABLE scans (id INTEGER PRIMARY KEY, decision TEXT, {column} TEXT)")
    db.execute(f"INSERT INTO scans (decision, {column}) VALUES ('admit', ?)", (value,))
    db.commit()
    db.close()


@pytest.fixture()
def world(tmp_path: Path) -> Path:
    (tmp_path / "GD").mkdir()
    issuer_db(tmp_path / "GD" / "issuer.db")
    (tmp_path / "GD" / "issuer.db").chmod(0o600)
    return tmp_path


def run(root: Path, output: bytes = b"") -> dict[str, object]:
    return audit(root, [NAME], [("GD", DOC)], output).to_json()


def test_clean_folder_is_clean_although_the_resident_table_holds_the_person(world: Path) -> None:
    report = run(world)
    assert (report["pii_hits"], report["joinable_scans"], report["world_readable_files"]) == (
        0,
        0,
        0,
    )


@pytest.mark.parametrize(
    "leak",
    [
        DOC.encode(),
        NAME.encode(),
        hashlib.sha256(DOC.encode()).hexdigest().encode(),
        hashlib.sha256(f"GD\x1f{DOC}".encode()).hexdigest()[:40].encode(),  # old rate key
        hashlib.md5(NAME.encode()).digest(),
    ],
)
def test_planted_personal_data_is_found_in_any_file(world: Path, leak: bytes) -> None:
    (world / "access.log").write_bytes(b"GET /x?q=" + leak + b" 200\n")
    assert run(world)["pii_hits"] >= 1


def test_personal_data_outside_the_resident_table_is_found(world: Path) -> None:
    db = sqlite3.connect(world / "GD" / "issuer.db")
    db.execute("INSERT INTO rate_events VALUES (?, 0)", (f"code-doc:{DOC}",))
    db.commit()
    db.close()
    assert run(world)["pii_hits"] == 1


def test_personal_data_in_the_program_output_is_found(world: Path) -> None:
    assert run(world, output=f"enrolled {DOC}\n".encode())["pii_hits"] == 1


def test_scan_log_with_a_digest_prefix_joins_to_the_issuer(world: Path) -> None:
    """The old scan log: an unkeyed digest prefix re-identifies the person in one join."""
    scan_log(world / "scans.db", "digest_prefix", DIGEST[:8].hex())
    (world / "scans.db").chmod(0o600)
    report = audit(world, [NAME], [("GD", DOC)])
    assert report.joinable_scans == 1 and NAME in report.reidentified[0]


def test_keyed_scan_reference_does_not_join(world: Path) -> None:
    from verifier.scanlog import scan_ref

    scan_log(world / "scans.db", "scan_ref", scan_ref(b"k" * 32, DIGEST[:8].hex()))
    (world / "scans.db").chmod(0o600)
    assert run(world)["joinable_scans"] == 0


def test_world_readable_database_or_secret_is_counted(world: Path) -> None:
    (world / "GD" / "issuer.db").chmod(0o644)
    (world / "scans.key").write_bytes(b"k" * 32)
    (world / "scans.key").chmod(0o644)
    (world / "consortium.toml").write_text("public = true\n")  # public by design
    (world / "consortium.toml").chmod(0o644)
    assert run(world)["world_readable_files"] == 2


def test_revocation_reason_on_a_public_log_is_counted(world: Path) -> None:
    db = sqlite3.connect(world / "ledger.db")
    db.execute("CREATE TABLE entries (data BLOB)")
    db.execute("INSERT INTO entries VALUES (?)", (b"\x01\x04\x02GD\x0dstatus_change",))
    db.commit()
    db.close()
    (world / "ledger.db").chmod(0o600)
    assert run(world)["public_revocation_reasons"] == 1


def test_qr_fields_are_read_without_any_key() -> None:
    from credential.presentation import make_presentation
    from tests.credential.conftest import make_world

    w = make_world()
    text = make_presentation(w.credential(), w.device, w.now)
    assert qr_fields(text) == ["cnf.jwk", "dh", "exp", "hs.c", "iat", "iss", "nbf", "nm", "sti"]


def test_needles_cover_clear_and_unkeyed_hashes() -> None:
    found = needles([NAME], [("GD", DOC)])
    assert DOC.encode() in found and NAME.encode() in found
    assert hashlib.sha256(DOC.encode()).hexdigest()[:32].encode() in found


@pytest.mark.slow
def test_whole_demo_leaves_no_personal_data_and_nothing_joinable(tmp_path: Path) -> None:
    """Run the whole demo, export the station's scan log, then read every byte."""
    code, report = run_demo_and_audit(tmp_path / "demo")
    assert code == 0, report.output_tail
    summary = report.to_json()
    assert report.pii_hits == [], summary
    assert report.scans_checked >= 5, summary  # the story's scans, in the log and export
    assert report.joinable_scans == 0, report.reidentified
    assert report.world_readable_files == [], summary
    assert report.public_revocation_reasons == 0, summary
    assert report.qr_fields_disclosed == [
        "cnf.jwk",
        "dh",
        "exp",
        "hs.c",
        "iat",
        "iss",
        "nbf",
        "nm",
        "src.i",  # a converted code names its source (region, status index): the
        "src.r",  # station denies it when the source is revoked (source_revoked)
        "sti",
    ]
    assert report.device_key_shared_across_regions is False
