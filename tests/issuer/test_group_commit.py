"""Group commit of credential fetches: concurrent requests share transactions, each gets
its own committed credential and outbox row; an older HB-Device timestamp is refused."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select

from issuer.errors import UnauthorizedError
from issuer.group_commit import Fetch, GroupCommitter
from issuer.issuance import Issued
from issuer.models import CredentialRow, Holder, OutboxRow
from issuer.testing import enrol_directly, make_context, new_device

THREADS = 8
PER_THREAD = 10


def test_concurrent_fetches_each_get_a_committed_credential(tmp_path: Path) -> None:
    ctx = make_context(tmp_path, "MO", refresh_before_s=10 * 86_400)  # every fetch re-issues
    holders = [enrol_directly(ctx, f"M100000{i}", new_device()) for i in range(1, 5)]
    with ctx.sessions() as s:
        pks = [
            s.scalar(
                select(CredentialRow.holder_pk).where(CredentialRow.jws == h.issued.credential.jws)
            )
            for h in holders
        ]
    committer = GroupCommitter(ctx)
    got: list[Issued] = []
    lock = threading.Lock()

    def run(pk: int) -> None:
        for _ in range(PER_THREAD):
            issued = committer.fetch(pk, ctx.now(), ctx.now())
            with lock:
                got.append(issued)

    threads = [threading.Thread(target=run, args=(pks[i % len(pks)],)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == THREADS * PER_THREAD
    assert all(i.fresh for i in got)
    indices = [i.credential.status_index for i in got]
    assert len(set(indices)) == len(indices)
    with ctx.sessions() as s:
        # Every credential handed out is committed, with its own outbox row.
        for i in got:
            assert s.get(OutboxRow, i.outbox_id) is not None
            assert (
                s.scalar(
                    select(func.count()).where(
                        CredentialRow.status_index == i.credential.status_index
                    )
                )
                == 1
            )
    ctx.dispose()


def test_older_device_timestamp_is_refused_in_the_group(tmp_path: Path) -> None:
    ctx = make_context(tmp_path, "MO")
    h = enrol_directly(ctx, "M1000001", new_device())
    pk = h.issued.credential.holder_pk
    committer = GroupCommitter(ctx)
    now = ctx.now()
    committer.fetch(pk, now, now)
    with pytest.raises(UnauthorizedError):
        committer.fetch(pk, now - ctx.config.device_auth_reorder_s - 1, now)
    ctx.dispose()


def test_overtaken_fetch_in_one_group_is_answered_and_keeps_the_newer_mark(
    tmp_path: Path,
) -> None:
    """Two fetches of one holder queued in one group, the newer signature first: both
    are answered and the stored high-water timestamp stays the newer one."""
    ctx = make_context(tmp_path, "MO")
    h = enrol_directly(ctx, "M1000001", new_device())
    pk = h.issued.credential.holder_pk
    committer = GroupCommitter(ctx)
    now = ctx.now()

    jobs = [Fetch(pk, now + 1, now), Fetch(pk, now, now)]
    committer._pending.extend(jobs)
    committer._lead()
    assert [j.error for j in jobs] == [None, None]
    assert jobs[0].result is not None and jobs[1].result is not None
    with ctx.sessions() as s:
        assert s.get_one(Holder, pk).last_auth_ts == now + 1
    ctx.dispose()


@pytest.mark.postgres
def test_a_group_of_fetches_costs_a_fixed_number_of_statements(
    tmp_path: Path, fresh_postgres_url: str
) -> None:
    """Eight re-issuing fetches of eight holders in one group on PostgreSQL: the
    residents are row-locked in one statement (issuance.lock_residents, so no status
    change commits between the status read and the insert), the holders, their
    residents, status inputs, latest credentials and the signing key are read in ONE
    statement for the group (fetch_reads.GROUP_STATE), the signing key is share-locked
    (issuance.signing_key_for: a key rotation waits for the group), then the counter,
    one insert per table, the hour's issuance count (issuer.activity) and the holders'
    marks: eight statements whatever the size of the group (about five per fetch once,
    then nine per group, before the group commit)."""
    from sqlalchemy import event

    from issuer.residents import add_records, add_residents
    from issuer.status_rules import HealthRecord, LabResult, RecordKind

    ctx = make_context(
        tmp_path,
        "MO",
        database_url=fresh_postgres_url,
        refresh_before_s=10 * 86_400,
        attempts_per_addr=100,
    )
    docs = [f"M{3_000_001 + i}" for i in range(8)]
    add_residents(ctx, [{"document_number": d, "name": f"Resident {d}"} for d in docs])
    test = HealthRecord(RecordKind.TEST, ctx.now() - 3_600, LabResult.NEGATIVE)
    add_records(ctx, [(d, test) for d in docs], "test")
    pks = [enrol_directly(ctx, d, new_device()).issued.credential.holder_pk for d in docs]
    statements: list[str] = []
    event.listen(
        ctx.sessions.kw["bind"],
        "before_cursor_execute",
        lambda _c, _cur, sql, *_a: statements.append(sql),
    )
    committer = GroupCommitter(ctx)
    now = ctx.now()
    jobs = [Fetch(pk, now, now) for pk in pks]
    committer._pending.extend(jobs)
    committer._lead()
    assert all(j.error is None and j.result is not None and j.result.fresh for j in jobs)
    assert len(statements) <= 8, "\n".join(s[:70] for s in statements)
    ctx.dispose()


def test_fetches_queued_during_a_commit_form_the_next_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sixteen wallets fetching in a loop while each durable commit takes 20 ms: the
    fetches that queue during one commit are written together in the next, so groups
    hold most of the waiting threads. When answered fetches had to take the commit lock
    in turn, a thread that came back first led a group of one or two, and groups
    averaged about two fetches: the fixed cost of a group was paid per two credentials."""
    import time

    ctx = make_context(tmp_path, "MO", attempts_per_addr=100)
    pks = [
        enrol_directly(ctx, f"M100000{i}", new_device()).issued.credential.holder_pk
        for i in range(1, 5)
    ]
    committer = GroupCommitter(ctx)
    sizes: list[int] = []
    real_commit = committer._commit

    def slow_commit(group: list[Fetch]) -> None:
        sizes.append(len(group))
        real_commit(group)
        time.sleep(0.02)  # a durable write of a loaded server

    monkeypatch.setattr(committer, "_commit", slow_commit)
    threads_n, rounds = 16, 6

    def run(pk: int) -> None:
        for _ in range(rounds):
            assert committer.fetch(pk, ctx.now(), ctx.now()).credential is not None

    threads = [threading.Thread(target=run, args=(pks[i % 4],)) for i in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(sizes) == threads_n * rounds
    assert committer.groups == len(sizes)
    assert sum(sizes) / len(sizes) >= 6, sizes
    ctx.dispose()
