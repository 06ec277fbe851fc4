"""Personal-data audit of a whole demo run: what a curious outsider or an auditor finds.

Runs `healthbridge demo --once` in a fresh folder, exports the station's scan log with
`healthbridge verifier export-log`, then reads every byte left behind (every database
except the issuer's resident table, every file, the commands' output) with
`healthbridge.privacy_audit`. Prints the findings, then one JSON object on the last line:
  pii_hits                  seeded names / document numbers, in clear or as unkeyed
                            SHA-256 / MD5 / SHA-1 hashes (goal 0)
  joinable_scans            scan-log rows (database and export) that join to an issuer's
                            credential digest or id, i.e. to a named resident (goal 0)
  scans_checked             scan-log rows the join was tried on
  world_readable_files      databases, secrets, stores, exports, footage readable by others (goal 0)
  public_revocation_reasons revocation reasons readable on a public log (goal 0)
  qr_fields_disclosed       claim members any camera reads from a wallet's QR
  device_key_shared_across_regions  whether one person's two regions' codes share a key
  seconds                   wall time of the whole run
Usage: .venv/bin/python bench/privacy.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from healthbridge.privacy_audit import run_demo_and_audit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--keep", type=Path, default=None, help="work folder to keep")
    args = parser.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="hb-privacy-"))
    started = time.monotonic()
    try:
        code, report = run_demo_and_audit(base / "demo")
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    out = report.to_json()
    for line in out.pop("pii_hit_examples") + out.pop("world_readable_examples"):
        print(f"finding: {line}", file=sys.stderr)
    for line in report.reidentified[:10]:
        print(f"joined: {line}", file=sys.stderr)
    if code != 0:
        for line in report.output_tail:
            print(f"demo: {line}", file=sys.stderr)
    out["demo_exit_code"] = code
    out["seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main()
