"""Child process of the scale-out test: one host of a region's issuer, against the
shared PostgreSQL database. Role `issue` issues credentials in a loop (anchor worker
off), printing each status index once its transaction committed; role `anchor` runs
an anchoring worker only, counting what it anchored on stdout. The parent kills some
of them with SIGKILL under load."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from issuer.anchor import ClientLedgerPort, anchor_once
from issuer.config import IssuerConfig
from issuer.context import IssuerContext
from issuer.issuance import issue_credential
from issuer.models import Holder

ROUND_PAUSE_S = 0.005  # an idle anchoring worker's pause between rounds


def main() -> None:
    role = sys.argv[1]
    cfg = IssuerConfig(
        region="GD",
        data_dir=Path(os.environ["SCALE_DATA_DIR"]),
        database_url=os.environ["SCALE_DB_URL"],
        ledger_url=os.environ["SCALE_LEDGER_URL"],
        anchor_worker=False,
        anchor_batch=8,
    )
    ctx = IssuerContext.open(cfg, run_migrations=False)
    print("ready", flush=True)
    if role == "issue":
        while True:
            with ctx.sessions.begin() as s:
                holder = s.query(Holder).first()
                assert holder is not None
                issued = issue_credential(ctx, s, holder, int(time.time()))
            sys.stdout.write(f"{issued.credential.status_index}\n")
            sys.stdout.flush()
    port = ClientLedgerPort(cfg.ledger_url or "", ctx.keys.writer_key(), 10)
    while True:
        n = anchor_once(ctx, port)
        if n:
            sys.stdout.write(f"anchored {n}\n")
            sys.stdout.flush()
        else:
            time.sleep(ROUND_PAUSE_S)


if __name__ == "__main__":
    main()
