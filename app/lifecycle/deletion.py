"""Delete, purge and undelete runs, and extend their retention — each recorded and crash-safe.

The database decides: files are written and verified before a change is committed, and old
copies are removed only after it is. Every deletion writes its ``job_audit`` row when it happens.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update

from app.config import DELETION_STRATEGIES
from app.lifecycle.access import refusal_under_lock, require_under_lock
from app.lifecycle.archival import (
    archive_folder,
    manifest_of,
    record_archive,
    set_aside,
    set_aside_or_discard,
    until_recorded,
)
from app.lifecycle.context import Lifecycle
from app.lifecycle.disk import folder_size, remove_folder
from app.lifecycle.errors import RuleViolation, RunConflict
from app.lifecycle.events import SUPERSEDED, Attempt, attempt
from app.lifecycle.naming import find_run_folder
from app.lifecycle.runs import load_run
from app.models import Job, JobAudit


def _audit(job: Job, *, actor: str, reason: str, strategy: str, now: datetime, bytes_freed: int | None) -> JobAudit:
    return JobAudit(
        job_id=job.id,
        job_name=job.name,
        folder_name=job.folder_name,
        created_at=job.created_at,
        completed_at=job.completed_at,
        archived_at=job.archived_at,
        deleted_at=now,
        stats=job.stats,
        created_by=job.created_by,
        deletion_reason=reason,
        deleted_by=actor,
        strategy=strategy,
        bytes_freed=bytes_freed,
    )


def delete_run(
    lc: Lifecycle,
    job_id: uuid.UUID,
    *,
    actor: str,
    reason: str,
    strategy: str | None = None,
    expected_state: str | None = None,
) -> str:
    """Delete a run now: soft (archive kept in the trash for the grace period) or hard (gone, audited)."""
    strategy = strategy or lc.settings.deletion_strategy
    if strategy not in DELETION_STRATEGIES:
        raise RuleViolation(f"strategy must be soft or hard, not {strategy!r}")
    if not reason or not reason.strip():
        raise RuleViolation("a deletion needs a reason")
    with attempt(lc, job_id, "delete", actor, reason, take_lock=True) as record:
        job = load_run(lc, job_id)
        if record.supersede(job, expected_state):
            return SUPERSEDED
        if strategy == "hard":
            require_under_lock(lc, "hard_delete", job)
            return _hard_delete(lc, job, record, actor=actor, reason=reason)
        if job.deleted_at is not None:
            return record.skip("already deleted")
        require_under_lock(lc, "delete", job)
        outcome = _soft_delete(lc, job, record, actor=actor, reason=reason)
        if lc.settings.delete_grace_days == 0:
            _purge(lc, load_run(lc, job_id), actor=actor, reason="DELETE_GRACE_DAYS=0")
        return outcome


def _soft_delete(lc: Lifecycle, job: Job, record: Attempt, *, actor: str, reason: str) -> str:
    now = lc.now()
    deletion = {"deleted_at": now, "deleted_by": actor, "deletion_reason": reason}
    if job.archived_at is None:
        # An active run is first archived into the trash, so it can still be undeleted.
        folder, archive = archive_folder(lc, job, "trash")
        aside = set_aside_or_discard(lc, job, folder, archive)
        with until_recorded(aside):
            lc.checkpoint("delete.archived")
            record_archive(lc, job, archive, **deletion)
            lc.session.add(_audit(job, actor=actor, reason=reason, strategy="soft", now=now, bytes_freed=0))
            outcome = record.succeed(bytes_before=archive.content_bytes, bytes_after=archive.size)
            lc.session.commit()
        lc.checkpoint("delete.committed")
        remove_folder(aside, secure=lc.settings.secure_delete)
        return outcome

    source = job.archive_path
    if source is None or job.archive_sha256 is None:  # not an assert: `python -O` would skip the check
        raise RuntimeError(f"run {job.id} is archived but its row has no archive path or checksum")
    # A restored working copy goes with the run, unless it holds what the archive does not (an
    # analyst's notes): then the deletion stops before anything moved (FolderKept).
    working_copy = find_run_folder(lc.settings.jobs_path, job.folder_name, job.id)
    aside = set_aside(job, working_copy, manifest_of(lc, job.id)) if working_copy is not None else None
    with until_recorded(aside):
        target = "trash/" + source.partition("/")[2]
        source_remains = lc.store.move(source, target, job.archive_sha256) if source != target else False
        lc.checkpoint("delete.moved")
        guarded = update(Job).where(Job.id == job.id, Job.deleted_at.is_(None))
        values = {**deletion, "archive_path": target, "restored_at": None, "restore_expires_at": None}
        if lc.session.execute(guarded.values(**values)).rowcount != 1:
            raise RunConflict(f"run {job.id} changed while it was being deleted")
        lc.session.add(_audit(job, actor=actor, reason=reason, strategy="soft", now=now, bytes_freed=0))
        outcome = record.succeed(bytes_before=job.archive_size_bytes, bytes_after=job.archive_size_bytes)
        lc.session.commit()
    lc.checkpoint("delete.committed")
    if source_remains:
        lc.store.remove(source, secure=lc.settings.secure_delete)
    if aside is not None:
        remove_folder(aside, secure=lc.settings.secure_delete)
    return outcome


def _hard_delete(lc: Lifecycle, job: Job, record: Attempt, *, actor: str, reason: str) -> str:
    folder = find_run_folder(lc.settings.jobs_path, job.folder_name, job.id)
    key = job.archive_path if job.purged_at is None else None
    freed = (folder_size(folder) if folder else 0) + (lc.store.size(key) if key and lc.store.exists(key) else 0)
    lc.session.add(_audit(job, actor=actor, reason=reason, strategy="hard", now=lc.now(), bytes_freed=freed))
    lc.session.execute(delete(Job).where(Job.id == job.id))
    outcome = record.succeed(bytes_before=freed, bytes_after=0)
    lc.session.commit()
    lc.checkpoint("delete.committed")
    # After the commit the row is gone and the audit says so: reconcile finishes any leftovers.
    if key:
        lc.store.remove(key, secure=lc.settings.secure_delete)
    if folder is not None:
        remove_folder(folder, secure=lc.settings.secure_delete)
    return outcome


def _purge(lc: Lifecycle, job: Job, *, actor: str, reason: str | None) -> str:
    with attempt(lc, job.id, "purge", actor, reason) as record:
        if refusal_under_lock(lc, "purge", job) is not None:
            return record.skip("not in the trash")
        if job.verify_outcome == "corrupt":
            # A person must see a corrupt archive before its last copy goes (archive_corrupt alert).
            return record.skip("its archive failed verification: kept until a person has looked")
        key = job.archive_path
        size = job.archive_size_bytes or 0
        now = lc.now()
        lc.session.execute(update(Job).where(Job.id == job.id, Job.purged_at.is_(None)).values(purged_at=now))
        audit = lc.session.scalar(
            select(JobAudit).where(JobAudit.job_id == job.id).order_by(JobAudit.deleted_at.desc()).limit(1)
        )
        if audit is not None:
            audit.bytes_freed = size
        outcome = record.succeed(bytes_before=size, bytes_after=0)
        lc.session.commit()
        lc.checkpoint("purge.committed")
        if key:
            lc.store.remove(key, secure=lc.settings.secure_delete)
        return outcome


def purge_run(lc: Lifecycle, job_id: uuid.UUID, *, actor: str, reason: str | None = None) -> str:
    """Remove a soft-deleted run's archive from the trash for good (its row and audit stay)."""
    with lc.locks.run(job_id):
        return _purge(lc, load_run(lc, job_id), actor=actor, reason=reason)


def undelete_run(lc: Lifecycle, job_id: uuid.UUID, *, actor: str, reason: str | None = None) -> str:
    """Bring a soft-deleted run back from the trash within its grace period, protected for another one."""
    with attempt(lc, job_id, "undelete", actor, reason, take_lock=True) as record:
        job = load_run(lc, job_id)
        require_under_lock(lc, "undelete", job)
        if job.archive_path is None:  # not an assert: `python -O` would skip the check
            raise RuntimeError(f"run {job_id} is in the trash but its row has no archive path")
        grace = timedelta(days=lc.settings.delete_grace_days)
        now = lc.now()
        source = job.archive_path
        target = "archive/" + source.partition("/")[2]
        source_remains = lc.store.move(source, target, job.archive_sha256) if source != target else False  # type: ignore[arg-type]
        lc.checkpoint("undelete.moved")
        retain = max(filter(None, [job.retain_until, now + grace]))
        guarded = update(Job).where(Job.id == job.id, Job.deleted_at.is_not(None), Job.purged_at.is_(None))
        values = {
            "deleted_at": None,
            "deleted_by": None,
            "deletion_reason": None,
            "archive_path": target,
            "retain_until": retain,
        }
        if lc.session.execute(guarded.values(**values)).rowcount != 1:
            raise RunConflict(f"run {job_id} changed while it was being undeleted")
        outcome = record.succeed(bytes_before=job.archive_size_bytes, bytes_after=job.archive_size_bytes)
        lc.session.commit()
        lc.checkpoint("undelete.committed")
        if source_remains:
            lc.store.remove(source)
        return outcome


def extend_retention(
    lc: Lifecycle,
    job_id: uuid.UUID,
    *,
    actor: str,
    reason: str,
    retain_until: datetime | None = None,
    keep_forever: bool | None = None,
) -> str:
    """Protect a run from automatic archival and deletion, recording who, when and why."""
    if not reason or not reason.strip():
        raise RuleViolation("extending retention needs a reason")
    if retain_until is None and keep_forever is None:
        raise RuleViolation("give retain_until or keep_forever")
    with attempt(lc, job_id, "extend", actor, reason, take_lock=True) as record:
        job = load_run(lc, job_id)
        require_under_lock(lc, "extend", job)
        if retain_until is not None:
            if retain_until <= lc.now():
                raise RuleViolation("retain_until must be in the future")
            job.retain_until = retain_until
        if keep_forever is not None:
            job.keep_forever = keep_forever
        record.details.update(
            retain_until=job.retain_until.isoformat() if job.retain_until else None, keep_forever=job.keep_forever
        )
        outcome = record.succeed()
        lc.session.commit()
        return outcome
