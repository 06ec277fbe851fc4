"""Every shared EU DCC and SMART Health Card QR image, read by the station, is named.

The images are the public test data in ../shared/vectors/credentials (dgc-testdata's
standalone PNGs and the PNGs embedded in its raw cases as `2DCODE`; the SMART Health
Cards examples rendered to PNG, `shc-examples/derived-png`). The station reads QR codes
only, so the four Aztec renderings of Irish certificates read nothing, as they should.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from credential.reasons import Reason
from credential.verdict import Decision
from tests.support.environment import vector_path
from tests.verifier.conftest import Mint
from verifier.frames import Frame
from verifier.station import Deduper, Station, presentation_verifier


def sample_images(root: Path) -> Iterator[tuple[str, np.ndarray]]:
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() == ".png":
            gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            if gray is not None:  # one upstream "PNG" is a single byte
                yield str(path.relative_to(root)), gray
        elif path.suffix == ".json" and "2dcode" in str(path.parent).lower():
            case = json.loads(path.read_text(encoding="utf-8-sig"))
            png = case.get("2DCODE") if isinstance(case, dict) else None
            if isinstance(png, str) and png:
                buf = np.frombuffer(base64.b64decode(png), np.uint8)
                gray = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
                if gray is not None:
                    yield str(path.relative_to(root)) + "#2DCODE", gray


def test_station_names_every_foreign_sample_image(mint: Mint) -> None:
    root = vector_path("credentials")
    # Frames ten seconds apart: the same certificate appears as an embedded and as a
    # standalone image, and each appearance must be judged.
    station = Station(
        verify=presentation_verifier(lambda: mint.trust),
        clock=lambda f: f.timestamp,
        deduper=Deduper(1.0),
    )
    named = {Reason.FOREIGN_EU_DCC: 0, Reason.FOREIGN_SHC: 0}
    images = 0
    for i, (name, gray) in enumerate(sample_images(root)):
        images += 1
        for event in station.process(Frame(gray, 1e9 + 10.0 * i, i)):
            reasons = event.verdict.reasons
            assert event.verdict.decision is Decision.DENY, name
            text = event.code.data
            if text.startswith(b"HC1:"):
                assert reasons == (Reason.FOREIGN_EU_DCC,), name
            elif text.startswith(b"shc:/"):
                assert reasons == (Reason.FOREIGN_SHC,), name
            else:  # the upstream negative cases with a wrong prefix
                assert reasons == (Reason.MALFORMED,), name
                continue
            named[reasons[0]] += 1
    assert images >= 450
    # Floors, not exact counts: a few upstream images are crops or odd renderings.
    assert named[Reason.FOREIGN_EU_DCC] >= 430, named
    assert named[Reason.FOREIGN_SHC] == 6, named
