"""Health codes of other schemes, recognised by their QR prefix so staff can name them.

A checkpoint sees codes that are not HealthBridge presentations: travellers show the
EU Digital COVID Certificate or a SMART Health Card they still carry. Calling those
"not a readable code" sends staff looking for a camera fault; naming the scheme lets
them tell the traveller what was shown and that it is not accepted here.

What it does: `recognise(text)` returns the scheme a QR text announces by its prefix:

- `HC1:` — EU DCC (eHealth Network, "Guidelines on Technical Specifications for EU
  Digital COVID Certificates, Volume 1", §2.6.4: the context identifier "HC1:" before
  the Base45 text, CWT/COSE inside);
- `shc:/` — SMART Health Cards (SMART Health Cards Framework, "Encoding QRs": the
  `shc:/` URI prefix, optionally `shc:/<index>/<total>/` for the deprecated chunked
  form, then numeric-encoded JWS). The scheme part of a URI is case-insensitive
  (RFC 3986 §3.1), so `SHC:/` is the same prefix.

What it does not do: decode, verify or trust either format. The prefix alone decides:
a damaged DCC is still a DCC to the person holding it, and neither is accepted.
"""

from __future__ import annotations

from enum import StrEnum

EU_DCC_PREFIX = "HC1:"  # EU DCC Volume 1 §2.6.4; version 1 is the only one defined
SHC_PREFIX = "shc:/"  # SMART Health Cards, "Encoding QRs"


class ForeignScheme(StrEnum):
    EU_DCC = "eu_dcc"
    SMART_HEALTH_CARD = "smart_health_card"


def recognise(text: str) -> ForeignScheme | None:
    """The foreign scheme `text` announces, or None when it announces none we know."""
    if text.startswith(EU_DCC_PREFIX):
        return ForeignScheme.EU_DCC
    if text[: len(SHC_PREFIX)].lower() == SHC_PREFIX:
        return ForeignScheme.SMART_HEALTH_CARD
    return None
