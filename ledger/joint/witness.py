"""A C2SP tlog-witness@v1.0.0: cosign another region's checkpoint only when it extends,
consistently, the last one this witness cosigned — and never two roots for one size.

Three parts, I/O at the edges:

- `AddCheckpointRequest` (parse/render): the add-checkpoint body ("old <size>", proof
  lines, blank line, signed checkpoint).
- `check_add_checkpoint`: the spec's checks in the spec's order, pure, raising a
  `WitnessError` whose `status` is the HTTP answer the spec prescribes (400, 403, 404,
  409, 422).
- `WitnessStore` (SQLAlchemy, SQLite or PostgreSQL; tables in the
  node's Alembic history, revision 0003) keeps, per origin,
  the latest cosigned checkpoint, updated by compare-and-swap so that checking the old
  size and persisting the new checkpoint are atomic (tlog-witness "add-checkpoint", the
  race at the end of the section); and the evidence of every fork seen.
- `Witness` ties them together; an optional validator (the validating mirror,
  `ledger.joint.mirror`) runs before anything is persisted or cosigned.

Temporal shards (ledger.log.shards): each shard `<base>/<k>` of a sharded member is a
log of its own here, with its own latest checkpoint, verified with the member's log key
under the shard's origin. A shard's final checkpoint (same tree, plus the frozen line)
is cosigned and kept as the latest; any larger tree of that shard is then refused
with 409 `shard_frozen` and kept as evidence (two notes signed by the log key: the
frozen one and the growth).

It does not fetch entries itself (ledger.joint.mirror does) and serves no HTTP
(ledger.joint.api does).
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

import sqlalchemy as sa

from common import db as common_db
from common.observability import SecurityEvent, security_event
from ledger.log.checkpoint import (
    Checkpoint,
    CosignatureVerifier,
    OpenedCheckpoint,
    cosign,
    open_checkpoint,
)
from ledger.log.consortium import Consortium
from ledger.log.errors import ConsistencyProofError, LedgerError
from ledger.log.merkle import HASH_SIZE, proves_inconsistency, verify_consistency
from ledger.log.note import NoteSigner, NoteVerifier, SignedNote
from ledger.log.revocation import find_extension
from ledger.log.shards import ShardError, find_frozen, render_frozen_line
from ledger.node.migrations import upgrade_head

log = logging.getLogger(__name__)

MAX_PROOF_LINES = 63  # tlog-witness: a client MUST NOT send more than 63 proof lines
MAX_REQUEST_BYTES = 64 * 1024  # bytes; a checkpoint plus 63 hashes is far smaller
# Evidence is kept only when a log's key signed it, so only a misbehaving log fills it;
# the bound still keeps one broken log from growing a witness's database without end.
MAX_EVIDENCE_PER_ORIGIN = 256  # incidents
MAX_SIZE_DIGITS = 20  # decimal digits of a tree size (2^64 - 1 has 20)
# A shard is cosigned only while its plan tracks it at this witness's clock, widened by
# this much (ledger.node.sharding serves the same margin): no state for far-future or
# long-dropped shard origins a misbehaving node might invent.
SHARD_WITNESS_MARGIN_S = 600  # seconds
SIZE_MEDIA_TYPE = "text/x.tlog.size"  # tlog-witness: the 409 body's content type


class WitnessError(LedgerError):
    """A refused add-checkpoint; `status` is the HTTP status tlog-witness prescribes."""

    status = 400
    code = "bad_request"


class MalformedRequestError(WitnessError, ValueError):
    status, code = 400, "bad_request"


class UnknownLogError(WitnessError):
    status, code = 404, "unknown_log"


class LogSignatureError(WitnessError):
    status, code = 403, "bad_log_signature"


class OldSizeMismatchError(WitnessError):
    """tlog-witness: the old size is not the size this witness last cosigned."""

    status, code = 409, "old_size_mismatch"

    def __init__(self, message: str, latest_size: int) -> None:
        super().__init__(message)
        self.latest_size = latest_size


class ForkError(WitnessError):
    """The log signed a root that conflicts with one this witness cosigned."""

    status, code = 409, "fork"

    def __init__(self, message: str, latest_size: int) -> None:
        super().__init__(message)
        self.latest_size = latest_size


class InconsistentError(WitnessError):
    status, code = 422, "inconsistent"


class EntriesUnavailableError(WitnessError):
    """The validating mirror could not fetch the entries to check (the log's node is
    down or answered nonsense): nothing is cosigned, nothing is evidence; retry."""

    status, code = 503, "entries_unavailable"


class MissingCommitmentError(WitnessError):
    """The consortium requires a revocation-snapshot commitment line the checkpoint
    lacks; refused with nothing stored (the log signed nothing conflicting)."""

    status, code = 422, "missing_revocation_commitment"


class RuleRefusedError(WitnessError):
    """The validating mirror found an entry that breaks a ledger rule (named in `rule`)."""

    status, code = 422, "rule_violation"

    def __init__(self, message: str, rule: str, index: int | None = None) -> None:
        super().__init__(message)
        self.rule = rule
        self.index = index


class FrozenShardError(WitnessError):
    """The log signed a larger tree of a shard whose final (frozen) checkpoint this
    witness cosigned: a frozen shard never grows."""

    status, code = 409, "shard_frozen"

    def __init__(self, message: str, latest_size: int) -> None:
        super().__init__(message)
        self.latest_size = latest_size


class FrozenLineError(WitnessError):
    """A checkpoint whose frozen line (ledger.log.shards) is malformed, names another
    shard or end than the consortium's schedule gives its origin, sits on a log that is
    no shard, or comes before the shard's period is over at this witness's clock."""

    status, code = 422, "bad_frozen_line"


class EvidenceKind(StrEnum):
    SAME_SIZE_OTHER_ROOT = "same_size_other_root"
    INCONSISTENT_PROOF = "inconsistent_proof"
    RULE_VIOLATION = "rule_violation"
    FROZEN_GROWTH = "frozen_growth"
    BAD_FROZEN_LINE = "bad_frozen_line"


def is_frozen_note(note: bytes) -> bool:
    """Whether a signed checkpoint note carries the frozen line (ledger.log.shards)."""
    try:
        return find_frozen(Checkpoint.parse(SignedNote.parse(note).text).extensions) is not None
    except (LedgerError, ShardError):
        return False


class LogVerifiers(Mapping[str, NoteVerifier]):
    """The log keys a witness knows, by origin: every unsharded member's log, and every
    shard origin of a sharded member (resolved on demand: the shards of a schedule are
    unbounded). Iteration yields the fixed origins and the shards already witnessed."""

    def __init__(
        self,
        consortium: Consortium,
        origins: Sequence[str] | None,
        seen: Callable[[], Sequence[str]],
    ) -> None:
        self.consortium = consortium
        self.origins = origins
        self.seen = seen
        self._cache: dict[str, NoteVerifier] = {}

    def __getitem__(self, origin: str) -> NoteVerifier:
        hit = self._cache.get(origin)
        if hit is not None:
            return hit
        found = self.consortium.log_for_origin(origin)
        if found is None:
            raise KeyError(origin)
        member, _shard, vkey = found
        if self.origins is not None and member.log_origin not in self.origins:
            raise KeyError(origin)
        verifier = NoteVerifier.from_vkey(vkey.text)
        if len(self._cache) < 4096:
            self._cache[origin] = verifier
        return verifier

    def _fixed(self) -> list[str]:
        return [
            m.log_origin for m in self.consortium.members
            if m.log_origin is not None and m.log is not None and m.shards is None
            and (self.origins is None or m.log_origin in self.origins)
        ]  # fmt: skip

    def __iter__(self) -> Iterator[str]:
        fixed = self._fixed()
        extra = sorted(o for o in self.seen() if o not in fixed and o in self)
        return iter(fixed + extra)

    def __len__(self) -> int:
        return sum(1 for _ in self)


@dataclass(frozen=True)
class AddCheckpointRequest:
    """The add-checkpoint body (tlog-witness "add-checkpoint")."""

    old_size: int
    proof: tuple[bytes, ...]
    checkpoint: bytes  # the signed note, signatures included

    @classmethod
    def parse(cls, body: bytes) -> AddCheckpointRequest:
        if len(body) > MAX_REQUEST_BYTES:
            raise MalformedRequestError(f"body over {MAX_REQUEST_BYTES} bytes")
        cut = body.find(b"\n\n")
        if cut < 0:
            raise MalformedRequestError("expected a blank line before the checkpoint")
        try:
            head = body[: cut + 1].decode("ascii")
        except UnicodeDecodeError as e:
            raise MalformedRequestError("old size and proof lines must be ASCII") from e
        lines = head.split("\n")[:-1]
        first = lines[0]
        size_text = first.removeprefix("old ")
        if first == size_text or not (size_text == "0" or size_text[:1] in "123456789"):
            raise MalformedRequestError(f"expected 'old <size>', found {first[:40]!r}")
        if not size_text.isdigit() or not size_text.isascii() or len(size_text) > MAX_SIZE_DIGITS:
            # Bounded before int(): Python refuses (ValueError) over 4300 digits.
            raise MalformedRequestError(f"expected a decimal old size, found {size_text[:40]!r}")
        old = int(size_text)
        if len(lines) - 1 > MAX_PROOF_LINES:
            raise MalformedRequestError(f"at most {MAX_PROOF_LINES} proof lines")
        proof = []
        for line in lines[1:]:
            try:
                h = base64.b64decode(line, validate=True)
            except ValueError as e:
                raise MalformedRequestError("a proof line is not base64") from e
            if len(h) != HASH_SIZE:
                raise MalformedRequestError(f"proof hashes are {HASH_SIZE} bytes, found {len(h)}")
            proof.append(h)
        return cls(old, tuple(proof), body[cut + 2 :])

    def render(self) -> bytes:
        lines = [f"old {self.old_size}\n"] + [
            base64.b64encode(h).decode() + "\n" for h in self.proof
        ]
        return "".join(lines).encode() + b"\n" + self.checkpoint


@dataclass(frozen=True)
class WitnessedCheckpoint:
    """The latest checkpoint a witness cosigned for one origin."""

    origin: str
    size: int
    root_hash: bytes
    note: bytes


def _origin_of(note: bytes) -> str:
    first = note.split(b"\n", 1)[0]
    try:
        return first.decode("utf-8")
    except UnicodeDecodeError as e:
        raise MalformedRequestError("checkpoint origin is not UTF-8") from e


def check_add_checkpoint(
    req: AddCheckpointRequest,
    logs: Mapping[str, NoteVerifier],
    witnesses: Sequence[CosignatureVerifier],
    latest: WitnessedCheckpoint | None,
) -> OpenedCheckpoint:
    """The tlog-witness add-checkpoint checks, in order; raise the prescribed error."""
    # 1. Origin known (404), log signature valid (403); unknown signatures ignored.
    origin = _origin_of(req.checkpoint)
    verifier = logs.get(origin)
    if verifier is None:
        raise UnknownLogError(f"unknown log origin {origin[:80]!r}")
    try:
        opened = open_checkpoint(req.checkpoint, verifier, witnesses)
    except LedgerError as e:
        raise LogSignatureError(f"checkpoint of {origin}: {e}") from e
    cp = opened.checkpoint
    # 2. The old size is at most the checkpoint size (400).
    if req.old_size > cp.size:
        raise MalformedRequestError(f"old size {req.old_size} exceeds checkpoint size {cp.size}")
    # 3. The old size is the latest cosigned size, zero if none (409 + size body).
    latest_size = latest.size if latest else 0
    if req.old_size != latest_size:
        raise OldSizeMismatchError(
            f"expected old size {latest_size}, found {req.old_size}", latest_size
        )
    # 4. Same size: the roots must be identical (409) — a second root is a fork.
    if latest is not None and cp.size == latest.size:
        if cp.root_hash != latest.root_hash:
            raise ForkError(
                f"{origin} signed root {cp.root_hash.hex()[:16]}.. for size {cp.size}, "
                f"already cosigned {latest.root_hash.hex()[:16]}..",
                latest_size,
            )
        if req.proof:
            raise InconsistentError("expected an empty proof for an unchanged size")
        return opened
    # 5. Consistency proof (RFC 6962 §2.1.2) from the old tree (422); empty from 0.
    if latest is None or latest.size == 0:
        if req.proof:
            raise InconsistentError("expected an empty proof from size 0")
        return opened
    try:
        verify_consistency(latest.size, cp.size, latest.root_hash, cp.root_hash, list(req.proof))
    except ConsistencyProofError as e:
        raise InconsistentError(f"consistency proof {latest.size} -> {cp.size}: {e}") from e
    return opened


metadata = sa.MetaData()
latest_table = sa.Table(
    "witness_latest",
    metadata,
    sa.Column("origin", sa.String(255), primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("root_hash", sa.LargeBinary(32), nullable=False),
    sa.Column("note", sa.LargeBinary, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)
evidence_table = sa.Table(
    "witness_evidence",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("origin", sa.String(255), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("held_note", sa.LargeBinary, nullable=False),
    sa.Column("conflicting_note", sa.LargeBinary, nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("detected_at", sa.BigInteger, nullable=False),
)


def _note_text(note: bytes) -> bytes:
    """A signed note without its signature lines (its body up to the last blank line)."""
    cut = note.rfind(b"\n\n")
    return note if cut < 0 else note[: cut + 1]


@dataclass(frozen=True)
class Evidence:
    """Both signed notes of a conflict, as received: proof of the log's misbehaviour."""

    id: int
    origin: str
    kind: EvidenceKind
    size: int
    held_note: bytes
    conflicting_note: bytes
    detail: str
    detected_at: int


class WitnessStore:
    """Per-origin latest cosigned checkpoint and fork evidence, in SQL."""

    def __init__(self, engine: sa.Engine, migrate: bool = True) -> None:
        self.engine = engine
        if migrate:
            upgrade_head(engine)  # the tables are the node's Alembic history (0003)

    @classmethod
    def open(cls, url: str) -> WitnessStore:
        return cls(common_db.make_engine(url))

    def latest(self, origin: str) -> WitnessedCheckpoint | None:
        with self.engine.connect() as c:
            row = c.execute(
                sa.select(latest_table).where(latest_table.c.origin == origin)
            ).one_or_none()
        if row is None:
            return None
        return WitnessedCheckpoint(row.origin, row.size, row.root_hash, row.note)

    def advance(self, old: WitnessedCheckpoint | None, new: WitnessedCheckpoint, now: int) -> bool:
        """Compare-and-swap: store `new` only if the stored one is still `old`."""
        values = {
            "size": new.size,
            "root_hash": new.root_hash,
            "note": new.note,
            "updated_at": now,
        }
        with self.engine.begin() as c:
            if old is None:
                try:
                    c.execute(sa.insert(latest_table).values(origin=new.origin, **values))
                except sa.exc.IntegrityError:
                    return False
                return True
            res = c.execute(
                sa.update(latest_table)
                .where(
                    latest_table.c.origin == new.origin,
                    latest_table.c.size == old.size,
                    latest_table.c.root_hash == old.root_hash,
                )
                .values(**values)
            )
            return res.rowcount == 1

    def origins(self) -> list[str]:
        """Every origin this witness has cosigned."""
        with self.engine.connect() as c:
            return list(c.execute(sa.select(latest_table.c.origin)).scalars())

    def add_evidence(
        self,
        origin: str,
        kind: EvidenceKind,
        size: int,
        held: bytes,
        conflicting: bytes,
        detail: str,
        now: int,
    ) -> bool:
        """Keep the evidence of one incident; False when it is already kept (the same
        conflicting checkpoint text, whatever cosignatures ride on it) or when the
        origin's evidence is full (MAX_EVIDENCE_PER_ORIGIN)."""
        text = _note_text(conflicting)
        t = evidence_table
        with self.engine.begin() as c:
            rows = c.execute(
                sa.select(t.c.conflicting_note).where(
                    t.c.origin == origin, t.c.kind == str(kind), t.c.size == size
                )
            ).scalars()
            if any(_note_text(bytes(r)) == text for r in rows):
                return False
            count = c.execute(
                sa.select(sa.func.count()).select_from(t).where(t.c.origin == origin)
            ).scalar()
            if int(count or 0) >= MAX_EVIDENCE_PER_ORIGIN:
                log.error("evidence of %s full (%d kept); not keeping more", origin, count)
                return False
            c.execute(
                sa.insert(t).values(
                    origin=origin,
                    kind=str(kind),
                    size=size,
                    held_note=held,
                    conflicting_note=conflicting,
                    detail=detail,
                    detected_at=now,
                )
            )
        return True

    def evidence(self) -> list[Evidence]:
        with self.engine.connect() as c:
            rows = c.execute(sa.select(evidence_table).order_by(evidence_table.c.id)).all()
        return [
            Evidence(
                r.id,
                r.origin,
                EvidenceKind(r.kind),
                r.size,
                r.held_note,
                r.conflicting_note,
                r.detail,
                r.detected_at,
            )
            for r in rows
        ]


#: Validates the entries between the witness's latest checkpoint and the new one
#: (the validating mirror); raises RuleRefusedError / InconsistentError to refuse.
Validator = Callable[[WitnessedCheckpoint | None, OpenedCheckpoint], None]


class Witness:
    """One witness key cosigning the logs of a consortium's other members."""

    def __init__(
        self,
        consortium: Consortium,
        signer: NoteSigner,
        store: WitnessStore,
        *,
        validator: Validator | None = None,
        clock: Callable[[], float] = time.time,
        origins: Sequence[str] | None = None,
    ) -> None:
        self.consortium = consortium
        self.signer = signer
        self.store = store
        self.validator = validator
        self.clock = clock
        self.logs = LogVerifiers(consortium, origins, store.origins)
        self.witnesses = [
            CosignatureVerifier.from_vkey(m.witness.text)
            for m in consortium.members
            if m.witness.sig_type == 0x04
        ]
        self._lock = threading.Lock()  # one add-checkpoint at a time per process

    def add_checkpoint(self, body: bytes, *, validate: bool = True) -> str:
        """Handle one add-checkpoint body; return the cosignature line(s) or raise."""
        req = AddCheckpointRequest.parse(body)
        with self._lock:
            origin = _origin_of(req.checkpoint)
            now = int(self.clock())
            self._check_tracked(origin, now)
            latest = self.store.latest(origin)
            try:
                opened = check_add_checkpoint(req, self.logs, self.witnesses, latest)
            except ForkError as e:
                # Two notes signed by the log's key, one size, two roots: self-proving.
                assert latest is not None
                self._alarm(origin, EvidenceKind.SAME_SIZE_OTHER_ROOT, latest, req, str(e), now)
                raise
            except InconsistentError as e:
                # Evidence only when the proof itself shows the signed trees conflict;
                # a wrong proof line (anyone can send one) is refused, nothing kept.
                if latest is not None and self._proves_fork(req, latest):
                    self._alarm(origin, EvidenceKind.INCONSISTENT_PROOF, latest, req, str(e), now)
                else:
                    log.info("refused add-checkpoint for %s: %s", origin, e)
                raise
            if (
                latest is not None
                and opened.checkpoint.size > latest.size
                and is_frozen_note(latest.note)
            ):
                # Both notes are signed by the log key: the frozen one and the growth.
                self._evidence(
                    origin, EvidenceKind.FROZEN_GROWTH, latest.size, latest.note,
                    req.checkpoint, f"frozen at {latest.size}, grown to "
                    f"{opened.checkpoint.size}", now,
                )  # fmt: skip
                raise FrozenShardError(
                    f"{origin} froze at size {latest.size}; refusing size {opened.checkpoint.size}",
                    latest.size,
                )
            try:
                self._check_frozen_line(origin, opened, latest, now)
            except FrozenLineError as e:
                # The note is signed by the log key: the log itself declared a freeze
                # the consortium's schedule does not imply (another shard, another end,
                # early, or a log that is no shard). Kept, so the other region can show
                # it; a retry of the same note is the same incident (add_evidence).
                held = latest.note if latest else b""
                self._evidence(
                    origin, EvidenceKind.BAD_FROZEN_LINE, opened.checkpoint.size, held,
                    req.checkpoint, str(e), now,
                )  # fmt: skip
                raise
            if self.consortium.require_revocation_commitment and (
                find_extension(opened.checkpoint.extensions) is None
            ):
                raise MissingCommitmentError(
                    f"{origin} checkpoint {opened.checkpoint.size} lacks the "
                    "healthbridge/revocations line the consortium requires"
                )
            try:
                if validate and self.validator is not None:
                    self.validator(latest, opened)
            except RuleRefusedError as e:
                # The mirror checked that the entries hash to the log-signed root before
                # applying the rules: a signed checkpoint commits to a rule-breaking entry.
                held = latest.note if latest else b""
                self._evidence(
                    origin, EvidenceKind.RULE_VIOLATION, opened.checkpoint.size, held,
                    req.checkpoint, f"{e.rule}: {e}", now,
                )  # fmt: skip
                raise
            cp = opened.checkpoint
            new = WitnessedCheckpoint(origin, cp.size, cp.root_hash, req.checkpoint)
            moved = latest is None or cp.size != latest.size
            # A shard's final checkpoint (same tree, frozen line) becomes the latest, so
            # any later growth of the shard is caught here.
            moved = moved or (
                latest is not None
                and not is_frozen_note(latest.note)
                and is_frozen_note(req.checkpoint)
            )
            if moved and not self.store.advance(latest, new, now):
                # Another process moved the state between our check and our write.
                current = self.store.latest(origin)
                size = current.size if current else 0
                raise OldSizeMismatchError("witness state moved concurrently", size)
            return cosign(cp, self.signer, now)

    def _check_tracked(self, origin: str, now: int) -> None:
        """A shard origin is known only while its member's plan tracks it (404 else)."""
        found = self.consortium.log_for_origin(origin)
        if found is None or found[1] is None or found[0].shards is None:
            return
        numbers = {s.number for s in found[0].shards.tracked(now, SHARD_WITNESS_MARGIN_S)}
        if found[1].number not in numbers:
            raise UnknownLogError(f"shard {origin[:80]!r} is not tracked at {now}")

    def _check_frozen_line(
        self,
        origin: str,
        opened: OpenedCheckpoint,
        latest: WitnessedCheckpoint | None,
        now: int,
    ) -> None:
        """A frozen line is cosigned only as the schedule implies it, and never taken
        back. The node's word is not enough: the shard number and end come from the
        consortium file, the time from this witness's clock (docs/ledger-protocol.md,
        temporal shards). A frozen shard's checkpoint without the line (the node
        "unfreezing" it) is refused like its growth, without evidence: a retried
        request from before the freeze looks the same."""
        try:
            frozen = find_frozen(opened.checkpoint.extensions)
        except ShardError as e:
            raise FrozenLineError(f"{origin}: {e}") from e
        if frozen is None:
            if latest is not None and is_frozen_note(latest.note):
                raise FrozenShardError(
                    f"{origin} froze at size {latest.size}; refusing a checkpoint "
                    "without its frozen line",
                    latest.size,
                )
            return
        found = self.consortium.log_for_origin(origin)
        shard = None if found is None else found[1]
        if shard is None:
            raise FrozenLineError(f"{origin} is no temporal shard; it cannot be frozen")
        if frozen != (shard.number, shard.end):
            raise FrozenLineError(
                f"expected the frozen line '{render_frozen_line(shard)}' for {origin}, "
                f"found shard {frozen[0]} ending at {frozen[1]}"
            )
        if now + SHARD_WITNESS_MARGIN_S < shard.end:
            raise FrozenLineError(
                f"{origin} covers expiries until {shard.end}; frozen early at {now}"
            )

    def _proves_fork(self, req: AddCheckpointRequest, latest: WitnessedCheckpoint) -> bool:
        try:
            cp = Checkpoint.parse(SignedNote.parse(req.checkpoint).text)
        except LedgerError:
            return False
        return proves_inconsistency(
            latest.size, cp.size, latest.root_hash, cp.root_hash, list(req.proof)
        )

    def _alarm(
        self,
        origin: str,
        kind: EvidenceKind,
        latest: WitnessedCheckpoint,
        req: AddCheckpointRequest,
        detail: str,
        now: int,
    ) -> None:
        if kind is EvidenceKind.INCONSISTENT_PROOF:
            # The proof is part of the evidence: with both signed notes it shows the
            # conflict to anyone (RFC 9162 §2.1.4.2).
            detail += "; proof " + " ".join(base64.b64encode(h).decode() for h in req.proof)
        self._evidence(origin, kind, latest.size, latest.note, req.checkpoint, detail, now)

    def _evidence(
        self,
        origin: str,
        kind: EvidenceKind,
        size: int,
        held: bytes,
        conflicting: bytes,
        detail: str,
        now: int,
    ) -> None:
        """Keep the evidence once per incident and raise one alarm for it."""
        if self.store.add_evidence(origin, kind, size, held, conflicting, detail, now):
            security_event(
                log, SecurityEvent.LEDGER_ALARM, origin=origin, kind=str(kind), size=size,
                detail=detail[:200],
            )  # fmt: skip
