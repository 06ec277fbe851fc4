"""Out-of-band delivery of one-time enrolment codes, behind a small interface.

A real deployment sends the code by SMS or to the resident's government account; that
is outside this project. `FileDelivery` is the development implementation: it appends
codes to a local file and says so in every API answer. `InMemoryDelivery` serves tests.
The delivery never logs the document number: it writes it only into the delivery file,
which stands for the resident's private channel and is created with mode 0600.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


class CodeDelivery(Protocol):
    def deliver(self, document_number: str, code: str, expires_at: int) -> str:
        """Send the code; return a short public description of where it went."""
        ...


@dataclass
class FileDelivery:
    path: Path

    def deliver(self, document_number: str, code: str, expires_at: int) -> str:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as f:
            f.write(f"{document_number}\t{code}\t{expires_at}\n")
        return f"development delivery: code written to {self.path}"


def read_delivered_code(path: Path, document_number: str) -> str | None:
    """The newest code delivered to a document number through `FileDelivery`."""
    found = None
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            parts = line.split("\t")
            if len(parts) == 3 and parts[0] == document_number:
                found = parts[1]
    return found


@dataclass
class InMemoryDelivery:
    sent: dict[str, str] = field(default_factory=dict)

    def deliver(self, document_number: str, code: str, expires_at: int) -> str:
        self.sent[document_number] = code
        return "test delivery: code kept in memory"
