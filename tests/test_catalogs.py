"""The pages' gettext catalogs: complete, compiled, consistent and shipped.

Each page (kiosk, wallet, console) has a catalog per language under
`<package>/translations/<language>/LC_MESSAGES/`. These tests extract the strings the
code marks for translation exactly as `make translations` does (babel.cfg, keyword
`N_` besides gettext's), and check that every one is translated in every language, that
placeholders match, that the committed .mo files say what the .po files say (a fresh
clone needs no compile step), and that the package data ships them.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir, extract_from_file
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from credential.languages import Language

ROOT = Path(__file__).resolve().parent.parent
# package -> extra source files, as CATALOGS in the Makefile
CATALOGS = {
    "verifier": ["credential/verdict.py"],
    "mobile_stub": [],
    "issuer/admin": [],
}
METHODS = [("**.py", "python"), ("**/templates/**.html", "jinja2")]
KEYWORDS = {**DEFAULT_KEYWORDS, "N_": None}
TRANSLATED = [lang for lang in Language if lang is not Language.EN]


def marked_strings(package: str) -> set[str]:
    found: set[str] = set()
    for _, _, message, _, _ in extract_from_dir(
        ROOT / package, METHODS, keywords=KEYWORDS, strip_comment_tags=True
    ):
        found.add(message if isinstance(message, str) else message[0])
    for extra in CATALOGS[package]:
        method = "python" if extra.endswith(".py") else "jinja2"
        for _, message, _, _ in extract_from_file(method, ROOT / extra, keywords=KEYWORDS):
            found.add(message if isinstance(message, str) else message[0])
    return found


def key(msgid: str | tuple[str, ...]) -> str:
    """A message's singular text (plural messages carry a (singular, plural) id)."""
    return msgid if isinstance(msgid, str) else msgid[0]


def forms(msgstr: str | tuple[str, ...]) -> tuple[str, ...]:
    return (msgstr,) if isinstance(msgstr, str) else tuple(msgstr)


def po_path(package: str, language: Language) -> Path:
    return ROOT / package / "translations" / language.catalog / "LC_MESSAGES" / "messages.po"


@pytest.mark.parametrize("package", sorted(CATALOGS))
@pytest.mark.parametrize("language", TRANSLATED, ids=str)
def test_every_marked_string_is_translated(package: str, language: Language) -> None:
    wanted = marked_strings(package)
    assert wanted, f"{package} marks no strings"
    with po_path(package, language).open("rb") as f:
        catalog = read_po(f, locale=language.catalog)
    have = {key(m.id): m for m in catalog if m.id}
    missing = sorted(s for s in wanted if s not in have or not all(forms(have[s].string)))
    assert not missing, f"{package} {language}: untranslated {missing[:5]} (make translations)"
    fuzzy = sorted(key(m.id) for m in have.values() if m.fuzzy)
    assert not fuzzy, f"{package} {language}: fuzzy entries {fuzzy[:5]}"
    problems = [(m.id, errors) for m, errors in catalog.check() if errors]
    assert not problems, f"{package} {language}: {problems[:3]}"


@pytest.mark.parametrize("package", sorted(CATALOGS))
@pytest.mark.parametrize("language", TRANSLATED, ids=str)
def test_committed_mo_matches_its_po(package: str, language: Language) -> None:
    po = po_path(package, language)
    with po.open("rb") as f:
        catalog = read_po(f, locale=language.catalog)
    with po.with_suffix(".mo").open("rb") as f:
        compiled = read_mo(f)
    stale = [
        key(m.id)
        for m in catalog
        if m.id and (m.id not in compiled or forms(compiled[m.id].string) != forms(m.string))
    ]
    assert not stale, f"{po.with_suffix('.mo')} is stale (make translations): {stale[:3]}"


def test_package_data_ships_the_catalogs() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["*"]
    assert "translations/**/*" in patterns


def test_console_portuguese_counts_as_in_portugal_and_macau() -> None:
    """European Portuguese writes "0 entradas" (plural) where Brazil writes "0 entrada";
    the console's catalog carries CLDR's pt_PT plural rule, kept by `make translations`."""
    import gettext

    words = gettext.translation(
        "messages", str(ROOT / "issuer/admin/translations"), [Language.PT.catalog]
    )
    one, many = "%(count)s entry waiting for the log", "%(count)s entries waiting for the log"
    assert [words.ngettext(one, many, n) % {"count": n} for n in (0, 1, 2)] == [
        "0 entradas à espera do registo",
        "1 entrada à espera do registo",
        "2 entradas à espera do registo",
    ]
