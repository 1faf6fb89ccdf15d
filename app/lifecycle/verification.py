"""Integrity checks of stored archives: re-read each against its record, in a bounded cycle.

An archive is checked the way a restore checks it (``extract_archive`` with nothing written): its
SHA-256 and size, every member's path, kind, size, SHA-256 and link target, and nothing beyond the
manifest. The verdict lands on the run (``last_verified_at``, ``verify_outcome``) and as one
``verify`` event; a mismatch or a missing file opens a critical ``archive_corrupt`` alert and keeps
the run's trash copy from being purged (app.lifecycle.policy).

A pass takes the archives never verified first (oldest archived first), then those verified
longest ago, and stops before its byte budget (VERIFY_MAX_BYTES_PER_RUN) is spent: with N bytes of
archives, every archive is re-checked at least every ceil(N / budget) passes.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, update

from app.lifecycle.alerts import mark_archive_corrupt, resolve_alerts
from app.lifecycle.archival import extract_archive, manifest_of
from app.lifecycle.context import Lifecycle
from app.lifecycle.errors import RunConflict
from app.lifecycle.events import attempt
from app.lifecycle.locks import RunBusy
from app.lifecycle.naming import run_folder_name
from app.lifecycle.passes import in_chunks
from app.lifecycle.runs import folder_name_of, load_run
from app.lifecycle.tarball import ArchiveInvalid
from app.models import Job, count_rows

Progress = Callable[[int, int], None]
MISMATCHES = ("corrupt", "missing")


@dataclass(frozen=True)
class Verification:
    """The verdict on one archive."""

    job_id: uuid.UUID
    label: str  # {folder_name}_{job_id}
    outcome: str  # ok, corrupt or missing
    bytes_read: int
    detail: str | None = None

    @property
    def line(self) -> str:
        text = f"{self.label}\t{self.outcome}\t{self.bytes_read}"
        return f"{text}\t{self.detail}" if self.detail else text


@dataclass
class VerifyReport:
    """What a verification pass found."""

    budget: int | None  # bytes; None when the pass was not bounded (--all, or chosen runs)
    outcomes: dict[str, int] = field(default_factory=lambda: {"ok": 0, "corrupt": 0, "missing": 0})
    bytes_read: int = 0
    busy: int = 0  # runs another worker held: left for the next pass
    failed: int = 0  # runs that could not be checked (an error other than a verdict)
    left: int = 0  # runs due for verification that this pass did not verify
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # the lines of the corrupt and missing archives
    errors: list[str] = field(default_factory=list)

    @property
    def verified(self) -> int:
        return sum(self.outcomes.values())

    @property
    def mismatches(self) -> int:
        return sum(self.outcomes[outcome] for outcome in MISMATCHES)

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": "verify",
            **self.outcomes,
            "verified": self.verified,
            "bytes_read": self.bytes_read,
            "budget_bytes": self.budget,
            "busy": self.busy,
            "failed": self.failed,
            "left": self.left,
            "lines": self.lines[:1000],
            "problems": self.problems[:100],
            "errors": self.errors[:100],
        }


def has_stored_archive() -> ColumnElement[bool]:
    """SQL condition: the run has an archive on disk to verify (archived or in the trash, not purged)."""
    return and_(Job.archived_at.is_not(None), Job.archive_path.is_not(None), Job.purged_at.is_(None))


def verify_archive(lc: Lifecycle, job_id: uuid.UUID, *, actor: str) -> Verification:
    """Re-read one run's archive against its record and manifest, under its lock; record the verdict."""
    with attempt(lc, job_id, "verify", actor, take_lock=True) as record:
        job = load_run(lc, job_id)
        if job.archive_path is None or job.archived_at is None or job.purged_at is not None:
            raise RunConflict(f"run {job_id} has no stored archive to verify")
        key, recorded = job.archive_path, job.archive_size_bytes
        outcome, detail, bytes_read = "ok", None, 0
        if not lc.store.exists(key):
            outcome, detail = "missing", f"the archive file {key} is missing"
        elif (size := lc.store.size(key)) != recorded:
            outcome, detail = "corrupt", f"{key} is {size} bytes; {recorded} were recorded"
        else:
            try:
                with lc.store.open(key) as raw:
                    extract_archive(raw, job.compression or "gzip", manifest_of(lc, job.id), job.archive_sha256, None)
            except ArchiveInvalid as error:
                outcome, detail = "corrupt", str(error)
            bytes_read = size
        lc.checkpoint("verify.read")
        now = lc.now()
        if outcome == "ok":
            job.verify_outcome, job.last_verified_at = "ok", now
            # The archive matches its record now (a person put a good copy back): the alert is over.
            resolve_alerts(lc.session, "archive_corrupt", subject=str(job.id), now=now)
            record.succeed(bytes_before=bytes_read, bytes_after=bytes_read)
            lc.session.commit()
        else:
            mark_archive_corrupt(lc.session, job, detail, now=now, outcome=outcome)  # type: ignore[arg-type]
            record.fail(f"{outcome}: {detail}")
        return Verification(job.id, run_folder_name(folder_name_of(job), job.id), outcome, bytes_read, detail)


def verify_archives(
    lc: Lifecycle,
    *,
    actor: str,
    max_bytes: int,
    job_ids: list[uuid.UUID] | None = None,
    all: bool = False,
    progress: Progress | None = None,
) -> VerifyReport:
    """Verify the archives due, never-verified and then longest-unverified first, within ``max_bytes``.

    ``all`` lifts the budget; ``job_ids`` verifies those runs (unbounded). A pass always verifies
    at least one archive, so one larger than the budget is not skipped forever.
    """
    started = lc.now()
    report = VerifyReport(budget=None if all or job_ids is not None else max_bytes)
    if job_ids is not None:
        due = and_(has_stored_archive(), Job.id.in_(job_ids))
        chosen = list(lc.session.scalars(select(Job).where(due).order_by(Job.id)))
        unknown = set(job_ids) - {job.id for job in chosen}
        report.errors += [f"{job_id}: no stored archive to verify" for job_id in sorted(unknown, key=str)]
        report.failed += len(unknown)
        queue: Iterable[Job] = chosen
    else:
        due = and_(has_stored_archive(), or_(Job.last_verified_at.is_(None), Job.last_verified_at < started))
        queue = _oldest_verified_first(lc, started)
    total = int(lc.session.scalar(select(func.coalesce(func.sum(Job.archive_size_bytes), 0)).where(due)) or 0)
    if report.budget is not None:
        total = min(total, report.budget)
    spent = 0
    for job in queue:
        job_id, size = job.id, job.archive_size_bytes or 0
        if report.budget is not None and spent and spent + size > report.budget:
            break
        spent += size
        try:
            verdict = verify_archive(lc, job_id, actor=actor)
        except RunBusy:
            report.busy += 1
        except Exception as error:  # recorded as a failed event by the attempt; the pass goes on
            lc.session.rollback()
            report.failed += 1
            report.errors.append(f"{job_id}: {type(error).__name__}: {error}"[:500])
            # To the back of the queue, its verdict unchanged: an archive whose check keeps failing
            # must not take every pass's budget (the failed event and the task's failure show it).
            lc.session.execute(update(Job).where(Job.id == job_id).values(last_verified_at=lc.now()))
            lc.session.commit()
        else:
            report.outcomes[verdict.outcome] += 1
            report.bytes_read += verdict.bytes_read
            report.lines.append(verdict.line)
            if verdict.outcome != "ok":
                report.problems.append(verdict.line)
        if progress:
            progress(min(spent, total), total)
    if job_ids is None:
        report.left = count_rows(lc.session, select(Job.id).where(due))
    return report


def _oldest_verified_first(lc: Lifecycle, started: datetime) -> Iterator[Job]:
    """The runs due, by keyset in the database: never verified (oldest archive first), then by last check.

    Runs verified during this pass drop out of both queries (their check is not before ``started``).
    """
    chunk = lc.settings.archive_batch_size
    never = select(Job).where(has_stored_archive(), Job.last_verified_at.is_(None))
    before = select(Job).where(has_stored_archive(), Job.last_verified_at < started)
    return chain(in_chunks(lc, never, Job.archived_at, chunk), in_chunks(lc, before, Job.last_verified_at, chunk))
