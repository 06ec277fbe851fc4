"""Masking of personal data before it enters a credential: masked name, document hint.

Pure functions. The full name and document number stay in the issuer database; the
credential carries only enough for border staff to match the person in front of them
(e.g. 张*明, M*** da S***, and the last 3-4 characters of the document number).
"""

from __future__ import annotations

import unicodedata

MAX_MASKED_NAME_CHARS = 32  # characters; credential.claims enforces the same bound
LATIN_MASK = "***"
# Portuguese (and Macanese) name particles are kept: they carry no identifying letters.
NAME_PARTICLES = frozenset({"da", "de", "do", "das", "dos", "e", "van", "von", "di", "du"})
LONG_DOCUMENT_CHARS = 8  # documents this long or longer show 4 trailing characters
LONG_HINT_CHARS = 4
SHORT_HINT_CHARS = 3


def _is_cjk(ch: str) -> bool:
    return unicodedata.name(ch, "").startswith(("CJK UNIFIED", "CJK COMPATIBILITY"))


def mask_name(name: str) -> str:
    """Mask a full name: CJK names keep the first and last character (张*明, 张*),
    other names keep each word's initial and the particles (M*** da S***)."""
    clean = " ".join(name.split())
    if not clean:
        raise ValueError("expected a non-empty name, found an empty one")
    compact = clean.replace(" ", "")
    if all(_is_cjk(ch) or ch == "·" for ch in compact):
        if len(compact) == 1:
            masked = compact + "*"
        elif len(compact) == 2:
            masked = compact[0] + "*"
        else:
            masked = compact[0] + "*" * (len(compact) - 2) + compact[-1]
    else:
        words = []
        for word in clean.split(" "):
            words.append(word if word.lower() in NAME_PARTICLES else word[0] + LATIN_MASK)
        masked = " ".join(words)
    return masked[:MAX_MASKED_NAME_CHARS]


def document_hint(document_number: str) -> str:
    """The trailing characters of a document number staff compare with the document."""
    doc = document_number.strip()
    if not doc:
        raise ValueError("expected a document number, found an empty one")
    n = LONG_HINT_CHARS if len(doc) >= LONG_DOCUMENT_CHARS else SHORT_HINT_CHARS
    return doc[-n:] if len(doc) > n else doc[-1:]
