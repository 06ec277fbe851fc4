"""Memory and time of a burst of admin logins with wrong passwords, at the production
argon2id cost (64 MiB per check), with the verification cap and, as the ceiling in the
same run, without it.

Each login comes from its own (account, address) pair, so the per-pair backoff never
refuses one: every attempt reaches argon2. Prints one JSON object on the last line:
  logins                    concurrent wrong-password logins per burst
  capped_peak_verifications verifications running at once with the cap (issuer default)
  capped_rss_growth_mib     growth of the process's peak RSS over the capped burst
  capped_seconds            wall time of the capped burst
  uncapped_peak_verifications / uncapped_rss_growth_mib / uncapped_seconds
                            the same burst with the cap lifted (what the issuer did before)
Usage: .venv/bin/python bench/login_burst.py [--logins 30]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from issuer.admin import accounts_db, login_guard
from issuer.admin.accounts import Role
from issuer.config import IssuerConfig
from issuer.context import IssuerContext
from issuer.errors import IssuerError


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def burst(ctx: IssuerContext, gate: login_guard.VerificationGate, n: int, tag: str) -> dict:
    login_guard.GATE = gate  # accounts_db reads it through the module at each login
    start = threading.Barrier(n)

    def one(i: int) -> None:
        start.wait()
        # Wrong password (401) or, past VERIFY_WAIT_S without a slot, busy (429).
        with contextlib.suppress(IssuerError):
            accounts_db.login(ctx.sessions, "admin", "wrong password!!", f"10.{tag}.0.{i}", 0)

    before = peak_rss_mib()
    t0 = time.monotonic()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {
        "peak_verifications": gate.peak,
        "rss_growth_mib": round(peak_rss_mib() - before, 1),
        "seconds": round(time.monotonic() - t0, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--logins", type=int, default=30)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ctx = IssuerContext.open(IssuerConfig(region="GD", data_dir=Path(tmp)))
        accounts_db.create_account(
            ctx.sessions, "admin", "GD", frozenset({Role.VIEWER}), "a long passphrase", 0
        )
        print(f"burst of {args.logins} logins, capped ...", file=sys.stderr)
        capped = burst(ctx, login_guard.VerificationGate(), args.logins, "1")
        print("the same burst, uncapped ...", file=sys.stderr)
        uncapped = burst(ctx, login_guard.VerificationGate(args.logins), args.logins, "2")
        ctx.dispose()
    out = {"logins": args.logins}
    out.update({f"capped_{k}": v for k, v in capped.items()})
    out.update({f"uncapped_{k}": v for k, v in uncapped.items()})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
