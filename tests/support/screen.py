"""Reading the code a browser page shows, as a camera pointed at the phone would."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import zxingcpp

if TYPE_CHECKING:
    from playwright.sync_api import Page


def read_code_on_screen(page: Page, artifact: Path, selector: str = "#qr") -> str:
    """Keep a full-page screenshot as the artifact, and decode the code from a
    screenshot of the element itself. A full-page capture of a page taller than the
    viewport is stitched by Chromium from several paints, and a code that changed
    between them shows up twice; the element capture is one paint."""
    page.screenshot(path=str(artifact), full_page=True)
    crop = artifact.with_name(artifact.stem + "-code.png")
    page.locator(selector).screenshot(path=str(crop))
    found = zxingcpp.read_barcodes(cv2.imread(str(crop)))
    texts = {str(b.text) for b in found}
    assert len(texts) == 1, f"expected one code in {crop}, found {len(found)}"
    return texts.pop()
