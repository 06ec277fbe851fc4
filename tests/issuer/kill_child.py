"""Child process of the crash test: issues credentials in a loop while its anchor worker
drains the outbox, printing each status index once its transaction has committed. The
parent kills it with SIGKILL at random instants."""

from __future__ import annotations

import os
import sys
import time

from issuer.anchor import AnchorWorker, ClientLedgerPort
from issuer.config import IssuerConfig
from issuer.context import IssuerContext
from issuer.issuance import issue_credential
from issuer.models import Holder


def main() -> None:
    from pathlib import Path

    cfg = IssuerConfig(
        region="GD",
        data_dir=Path(os.environ["KILL_DATA_DIR"]),
        database_url=os.environ["KILL_DB_URL"],
        ledger_url=os.environ["KILL_LEDGER_URL"],
        anchor_interval_s=0.01,
        anchor_batch=16,
    )
    ctx = IssuerContext.open(cfg, run_migrations=False)
    AnchorWorker(ctx, ClientLedgerPort(cfg.ledger_url or "", ctx.keys.writer_key(), 10)).start()
    print("ready", flush=True)
    while True:
        with ctx.sessions.begin() as s:
            holder = s.query(Holder).first()
            assert holder is not None
            issued = issue_credential(ctx, s, holder, int(time.time()))
        sys.stdout.write(f"{issued.credential.status_index}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
