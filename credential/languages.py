"""The languages HealthBridge's pages speak, how a request picks one, and how times read.

The plain words staff read about a verdict (`credential.verdict.describe`) are written
here in English and translated through each page's gettext catalog (Flask-Babel);
this module holds what every page shares, so the kiosk, the wallet page and the
console agree on it:

- `Language`: the four languages of the two default regions — Simplified Chinese
  (Guangdong), Traditional Chinese and Portuguese (Macau), and English — named by
  their BCP 47 tags (RFC 5646), with the gettext catalog folder of each;
- `language_of(tag)`: any BCP 47 tag mapped to one of them (`zh-TW`, `zh-HK`, `zh-MO`
  and `yue` read Traditional characters; `pt-BR` and `pt-PT` both read `pt`);
- `negotiate(accepted)`: the best language for an `Accept-Language` list (RFC 9110
  §12.5.4), already parsed into (tag, quality) pairs;
- `format_time` / `format_datetime` / `format_hour`: a Unix time in the language's
  conventions, always on a 24-hour clock (a checkpoint's "3:04:05 PM" is a misreading
  waiting to happen);
- `N_`: marks a string for the catalogs without translating it (the verdict texts are
  defined at import time, before any request has a language).

What it does not do: load catalogs or know about requests; the pages do (Flask-Babel).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, tzinfo
from enum import StrEnum

from babel.dates import format_skeleton

from credential.errors import CredentialError


class LanguageError(CredentialError, ValueError):
    """A language tag that names none of the supported languages."""


class Language(StrEnum):
    EN = "en"
    ZH_HANS = "zh-Hans"
    ZH_HANT = "zh-Hant"
    PT = "pt"

    @property
    def catalog(self) -> str:
        """The gettext catalog folder (`translations/<catalog>/LC_MESSAGES`)."""
        return self.value.replace("-", "_")

    @property
    def formats(self) -> str:
        """The CLDR locale whose date conventions the language follows here: Macau's
        for Traditional Chinese and Portuguese (day before month), mainland China's for
        Simplified Chinese."""
        return _FORMATS[self]

    @property
    def native_name(self) -> str:
        """The language's name in itself, as a language switch shows it."""
        return _NATIVE[self]


_FORMATS = {
    Language.EN: "en",
    Language.ZH_HANS: "zh_Hans_CN",
    Language.ZH_HANT: "zh_Hant_MO",
    Language.PT: "pt_MO",
}
_NATIVE = {
    Language.EN: "English",
    Language.ZH_HANS: "简体中文",
    Language.ZH_HANT: "繁體中文",
    Language.PT: "Português",
}
DEFAULT_LANGUAGE = Language.EN
MAX_TAG_CHARS = 35  # RFC 5646 §4.4.1: 35 characters hold any tag worth matching
_TRADITIONAL_REGIONS = frozenset({"tw", "hk", "mo"})


def N_(text: str) -> str:
    """Marks `text` for extraction into the catalogs; returns it unchanged."""
    return text


def language_of(tag: str) -> Language | None:
    """The supported language a BCP 47 tag asks for, or None."""
    if not tag or len(tag) > MAX_TAG_CHARS:
        return None
    subtags = tag.replace("_", "-").lower().split("-")
    primary, rest = subtags[0], set(subtags[1:])
    if primary == "en":
        return Language.EN
    if primary == "pt":
        return Language.PT
    if primary == "yue":  # Cantonese is written in Traditional characters in Macau and HK
        return Language.ZH_HANT
    if primary == "zh":
        if "hant" in rest:
            return Language.ZH_HANT
        if "hans" in rest:
            return Language.ZH_HANS
        return Language.ZH_HANT if rest & _TRADITIONAL_REGIONS else Language.ZH_HANS
    return None


def parse_language(tag: str) -> Language:
    """A supported language from a configuration value; raises LanguageError."""
    language = language_of(tag.strip())
    if language is None:
        supported = ", ".join(lang.value for lang in Language)
        raise LanguageError(f"expected one of {supported}, found {tag[:MAX_TAG_CHARS]!r}")
    return language


def negotiate(
    accepted: Iterable[tuple[str, float]], default: Language = DEFAULT_LANGUAGE
) -> Language:
    """The best supported language for (tag, quality) pairs; `default` when none fits.

    RFC 9110 §12.5.4: higher quality first, a quality of 0 means "not acceptable";
    among equal qualities the earlier tag wins (the sort is stable).
    """
    ranked = sorted(
        ((tag, q) for tag, q in accepted if q > 0), key=lambda pair: pair[1], reverse=True
    )
    for tag, _ in ranked:
        language = language_of(tag)
        if language is not None:
            return language
    return default


def _at(ts: float, zone: tzinfo | None) -> datetime:
    """An aware datetime: in `zone`, or in this machine's local zone when None."""
    return (
        datetime.fromtimestamp(ts, zone)
        if zone is not None
        else datetime.fromtimestamp(ts).astimezone()
    )


def format_time(ts: float, language: Language, zone: tzinfo | None = None) -> str:
    """`ts` as a 24-hour time of day (`HH:mm:ss`), in `zone` (local time when None)."""
    at = _at(ts, zone)
    return str(format_skeleton("Hms", at, tzinfo=at.tzinfo, locale=language.formats))


def format_hour(ts: float, language: Language, zone: tzinfo | None = None) -> str:
    """`ts` as a 24-hour `HH:mm` without seconds or date, e.g. a chart's hour tick."""
    at = _at(ts, zone)
    return str(format_skeleton("Hm", at, tzinfo=at.tzinfo, locale=language.formats))


def format_datetime(ts: float, language: Language, zone: tzinfo | None = None) -> str:
    """`ts` as the language's medium date and a 24-hour `HH:mm` time."""
    at = _at(ts, zone)
    date = format_skeleton("yMMMd", at, tzinfo=at.tzinfo, locale=language.formats)
    time = format_skeleton("Hm", at, tzinfo=at.tzinfo, locale=language.formats)
    return f"{date} {time}"
