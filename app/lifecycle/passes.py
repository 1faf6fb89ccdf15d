"""The scheduled passes over many runs: archival (and restore expiry), cleanup (and purge), migration.

Each pass reconciles first, then works through the due runs in chunks of ARCHIVE_BATCH_SIZE,
keyset-paged so a run that fails is not fetched again in the same pass. Every run gets its own
lifecycle event; one failure never stops the others.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import Select, and_, or_, select, update

from app.lifecycle.archival import archive_run, expire_restore
from app.lifecycle.context import Lifecycle
from app.lifecycle.deletion import delete_run, purge_run
from app.lifecycle.deletion_limits import allow_deletions, oldest_due
from app.lifecycle.disk import folder_size
from app.lifecycle.errors import LifecycleError, RunNotFound
from app.lifecycle.events import attempt
from app.lifecycle.locks import RunBusy
from app.lifecycle.naming import find_run_folder, folder_name_for, parse_run_folder, run_folder_name
from app.lifecycle.policy import (
    restores_due_to_expire,
    runs_due_for_archival,
    runs_due_for_cleanup,
    trash_due_for_purge,
)
from app.lifecycle.reconcile import reconcile
from app.lifecycle.retention import load_rules
from app.lifecycle.runs import folder_name_of, load_run
from app.lifecycle.seekable import make_seekable, rewrite_due
from app.lifecycle.store import fsync_dir
from app.models import Job, count_rows

Progress = Callable[[int, int], None]


@dataclass
class PassReport:
    """What a pass did (or, in a dry run, would do)."""

    action: str
    dry_run: bool = False
    outcomes: dict[str, int] = field(default_factory=lambda: {"succeeded": 0, "failed": 0, "skipped": 0})
    bytes_before: int = 0
    lines: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> int:
        return self.outcomes["failed"]

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "dry_run": self.dry_run,
            **self.outcomes,
            "bytes_before": self.bytes_before,
            "lines": self.lines[:1000],
            "errors": self.errors[:100],
            **self.extra,
        }


class PassIncomplete(Exception):
    """Some runs failed in a pass; they are recorded and will be retried."""


def in_chunks(lc: Lifecycle, query: Select, order: Any, chunk: int) -> Iterator[Job]:
    """Yield the query's runs ordered by ``(order, id)``, fetched ``chunk`` at a time by keyset."""
    last: tuple[Any, uuid.UUID] | None = None
    while True:
        page = query.order_by(order, Job.id).limit(chunk)
        if last is not None:
            page = page.where(or_(order > last[0], and_(order == last[0], Job.id > last[1])))
        jobs = list(lc.session.scalars(page))
        if not jobs:
            return
        # Taken before yielding: the operations commit, which expires (or deletes) these rows.
        last = (getattr(jobs[-1], order.key), jobs[-1].id)
        yield from jobs


def _run_over(
    lc: Lifecycle,
    report: PassReport,
    query: Select,
    order: Any,
    operation: Callable[[uuid.UUID], str],
    progress: Progress | None,
    *,
    size_of: Callable[[Job], int | None],
    job_ids: list[uuid.UUID] | None = None,
) -> None:
    if job_ids is not None:
        query = query.where(Job.id.in_(job_ids))
    total = count_rows(lc.session, query)
    for done, job in enumerate(in_chunks(lc, query, order, lc.settings.archive_batch_size), start=1):
        job_id, label = job.id, run_folder_name(folder_name_of(job), job.id)
        size = size_of(job) or 0
        report.bytes_before += size
        if report.dry_run:
            report.lines.append(f"{label}\t{size}")
            report.outcomes["succeeded"] += 1
        else:
            try:
                report.outcomes[operation(job_id)] += 1
            except RunBusy:
                report.outcomes["skipped"] += 1
            except Exception as error:  # recorded as a failed event by the operation; the pass goes on
                lc.session.rollback()
                report.outcomes["failed"] += 1
                report.errors.append(f"{job_id}: {type(error).__name__}: {error}"[:500])
        if progress:
            progress(done, total)


def archive_old_runs(
    lc: Lifecycle,
    *,
    actor: str = "scheduler",
    before: datetime | None = None,
    job_ids: list[uuid.UUID] | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> PassReport:
    """Expire restored copies past their TTL, then archive every run due for archival."""
    report = PassReport("archive", dry_run=dry_run)
    now = lc.now()
    if not dry_run:
        report.extra["reconcile"] = reconcile(lc).as_dict()
        expired = 0
        for job in list(lc.session.scalars(restores_due_to_expire(now))):
            try:
                expire_restore(lc, job.id, actor=actor)
                expired += 1
            except RunBusy:
                report.outcomes["skipped"] += 1
            except Exception as error:  # recorded as a failed event (a kept working copy, a missing archive)
                lc.session.rollback()
                report.outcomes["failed"] += 1
                report.errors.append(f"{job.id}: expire_restore: {error}"[:500])
        report.extra["restores_expired"] = expired
    _run_over(
        lc,
        report,
        runs_due_for_archival(load_rules(lc.session, lc.settings), now, before),
        Job.completed_at,
        lambda job_id: archive_run(lc, job_id, actor=actor),
        progress,
        size_of=lambda job: bytes_to_archive(lc, job),
        job_ids=job_ids,
    )
    return report


def bytes_to_archive(lc: Lifecycle, job: Job) -> int | None:
    """What archiving the run would read: its folder as it is now, not as it was when it finished."""
    folder = find_run_folder(lc.settings.jobs_path, job.folder_name, job.id)
    try:
        return folder_size(folder) if folder else job.size_bytes
    except FileNotFoundError:  # another worker archived it meanwhile
        return job.size_bytes


def cleanup_old_runs(
    lc: Lifecycle,
    *,
    actor: str = "scheduler",
    before: datetime | None = None,
    job_ids: list[uuid.UUID] | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> PassReport:
    """Delete archived runs past DELETE_AFTER_DAYS (DELETION_STRATEGY), then purge expired trash."""
    report = PassReport("cleanup", dry_run=dry_run)
    now = lc.now()
    if not dry_run:
        report.extra["reconcile"] = reconcile(lc).as_dict()
    rules = load_rules(lc.session, lc.settings)
    days = lc.settings.delete_after_days
    reason = f"older than its delete age (DELETE_AFTER_DAYS={days} unless a retention policy says otherwise)"
    due = runs_due_for_cleanup(rules, now, before)
    if job_ids is not None:
        due = due.where(Job.id.in_(job_ids))
    # The deletion safety limit: the oldest due runs up to the limit; the rest wait for an admin.
    allowance = allow_deletions(lc.session, lc.settings, due, now=now, whole_pass=job_ids is None, dry_run=dry_run)
    report.extra["deletion_limit"] = allowance.as_dict()
    _run_over(
        lc,
        report,
        oldest_due(lc.session, due, allowance),
        Job.completed_at,
        lambda job_id: delete_run(lc, job_id, actor=actor, reason=reason),
        progress,
        size_of=lambda job: job.archive_size_bytes,
        job_ids=job_ids,
    )
    purge = PassReport("purge", dry_run=dry_run)

    def purge_one(job_id: uuid.UUID) -> str:
        return purge_run(lc, job_id, actor=actor, reason="grace period over")

    _run_over(
        lc,
        purge,
        trash_due_for_purge(rules, lc.settings, lc.now()),
        Job.deleted_at,
        purge_one,
        None,
        size_of=lambda job: job.archive_size_bytes,
        job_ids=job_ids,
    )
    report.extra["purged"] = purge.outcomes["succeeded"]
    report.lines += [f"purge {line}" for line in purge.lines]
    report.errors += purge.errors
    report.outcomes["failed"] += purge.failed
    return report


def migrate_folder_names(
    lc: Lifecycle,
    *,
    actor: str = "scheduler",
    rename: bool = False,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> PassReport:
    """Fill ``folder_name`` for legacy runs from ``created_at``; with ``rename``, rename their folders."""
    report = PassReport("migrate", dry_run=dry_run)

    def fill(job_id: uuid.UUID) -> str:
        with attempt(lc, job_id, "migrate", actor, "fill folder_name", take_lock=True) as record:
            job = load_run(lc, job_id)
            name = folder_name_for(job.created_at)
            lc.session.execute(update(Job).where(Job.id == job_id, Job.folder_name.is_(None)).values(folder_name=name))
            record.details["folder_name"] = name
            outcome = record.succeed()
            lc.session.commit()
            return outcome

    _run_over(
        lc,
        report,
        select(Job).where(Job.folder_name.is_(None)),
        Job.created_at,
        fill,
        progress,
        size_of=lambda job: job.size_bytes,
    )
    if rename:
        _rename_legacy_folders(lc, report, actor)
    return report


def make_archives_seekable(
    lc: Lifecycle,
    *,
    actor: str = "scheduler",
    job_ids: list[uuid.UUID] | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> PassReport:
    """Rewrite every stored gzip or zstd archive written before seekable blocks (app.lifecycle.seekable)."""
    report = PassReport("rewrite", dry_run=dry_run)
    due = select(Job).where(rewrite_due())
    operation = partial(make_seekable, lc, actor=actor)
    _run_over(
        lc,
        report,
        due,
        Job.archived_at,
        operation,
        progress,
        size_of=lambda job: job.archive_size_bytes,
        job_ids=job_ids,
    )
    return report


def _rename_legacy_folders(lc: Lifecycle, report: PassReport, actor: str) -> None:
    jobs_root = lc.settings.jobs_path
    for folder in sorted(jobs_root.iterdir()):
        parsed = parse_run_folder(folder.name)
        if parsed is None or parsed[0] is not None or folder.is_symlink() or not folder.is_dir():
            continue
        job_id = parsed[1]
        try:
            job = load_run(lc, job_id)
        except RunNotFound:
            report.errors.append(f"{folder.name}: no run with this id; left as it is")
            continue
        target = jobs_root / run_folder_name(folder_name_of(job), job.id)
        if report.dry_run:
            report.lines.append(f"rename {folder.name} -> {target.name}")
            continue
        try:
            with attempt(lc, job_id, "migrate", actor, "rename legacy folder", take_lock=True) as record:
                if target.exists():
                    raise FileExistsError(f"{target.name} already exists")
                os.rename(folder, target)
                fsync_dir(jobs_root)
                record.details["renamed"] = [folder.name, target.name]
                report.outcomes[record.succeed()] += 1
                lc.session.commit()
        except (LifecycleError, OSError) as error:
            report.outcomes["failed"] += 1
            report.errors.append(f"{folder.name}: {error}")
