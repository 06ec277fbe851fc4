"""Out-of-band delivery of one-time enrolment codes, behind a small interface.

A real deployment sends the code by SMS or to the resident's government account; that
is outside this project. `FileDelivery` is the development implementation: it appends
codes to a local file and says so in every API answer. `InMemoryDelivery` serves tests.
The delivery never writes the document number anywhere: each line of the delivery file
(mode 0600) names its recipient by a reference, the issuer's keyed pseudonym of the
region and document number (`issuer.keystore.KeyStore.pseudonym`), which only the
issuer's key turns back into a match.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from common.private_files import PRIVATE_FILE_MODE

# Recipient reference of a code: (document number) -> keyed pseudonym.
RecipientRef = Callable[[str], str]


class CodeDelivery(Protocol):
    def deliver(self, document_number: str, code: str, expires_at: int) -> str:
        """Send the code; return `describe()`."""
        ...

    def describe(self) -> str:
        """A short public description of where codes go: the same for every request,
        so the answer to a code request tells nothing about the document number (an
        unknown one is answered with it too, and nothing is sent)."""
        ...


@dataclass
class FileDelivery:
    path: Path
    recipient: RecipientRef

    def deliver(self, document_number: str, code: str, expires_at: int) -> str:
        ref = self.recipient(document_number)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, PRIVATE_FILE_MODE)
        with os.fdopen(fd, "a", encoding="utf-8") as f:
            f.write(f"{ref}\t{code}\t{expires_at}\n")
        return self.describe()

    def describe(self) -> str:
        return f"development delivery: code written to {self.path}"


def read_delivered_code(path: Path, recipient_ref: str) -> str | None:
    """The newest code `FileDelivery` delivered to a recipient reference (what
    `KeyStore.delivery_ref` gives for a document number)."""
    found = None
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            parts = line.split("\t")
            if len(parts) == 3 and parts[0] == recipient_ref:
                found = parts[1]
    return found


@dataclass
class InMemoryDelivery:
    sent: dict[str, str] = field(default_factory=dict)

    def deliver(self, document_number: str, code: str, expires_at: int) -> str:
        self.sent[document_number] = code
        return self.describe()

    def describe(self) -> str:
        return "test delivery: code kept in memory"
