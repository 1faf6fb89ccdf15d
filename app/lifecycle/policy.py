"""The lifecycle rules, in one place and evaluated in the database: which runs are due for what.

Only finished runs age, counted from ``completed_at``. A run with ``keep_forever`` or a
``retain_until`` in the future is never touched by a scheduled pass.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Select, and_, not_, or_, select

from app.config import Settings
from app.lifecycle.runs import is_active, is_archived, is_in_trash
from app.models import FINISHED_STATUSES, Job


def is_protected(now: datetime) -> ColumnElement[bool]:
    """SQL condition: a retention override holds the run."""
    return or_(Job.keep_forever.is_(True), and_(Job.retain_until.is_not(None), Job.retain_until > now))


def archival_cutoff(settings: Settings, now: datetime) -> datetime:
    return now - timedelta(days=settings.archive_after_days)


def cleanup_cutoff(settings: Settings, now: datetime) -> datetime:
    return now - timedelta(days=settings.delete_after_days)


def runs_due_for_archival(settings: Settings, now: datetime, before: datetime | None = None) -> Select:
    """Finished, unprotected, unarchived runs older than ARCHIVE_AFTER_DAYS (or finished before ``before``)."""
    cutoff = before or archival_cutoff(settings, now)
    return select(Job).where(
        Job.status.in_(FINISHED_STATUSES),
        is_active(),
        Job.completed_at < cutoff,
        not_(is_protected(now)),
    )


def runs_due_for_cleanup(settings: Settings, now: datetime, before: datetime | None = None) -> Select:
    """Archived, unprotected runs older than DELETE_AFTER_DAYS: never a run without a verified archive."""
    cutoff = before or cleanup_cutoff(settings, now)
    return select(Job).where(
        is_archived(),
        Job.archive_path.is_not(None),
        Job.completed_at < cutoff,
        not_(is_protected(now)),
    )


def restores_due_to_expire(now: datetime) -> Select:
    """Restored working copies whose RESTORE_TTL_DAYS have run out, unless their archive was found
    corrupt or missing: then the working copy may be the last good one (archive_corrupt alert)."""
    return select(Job).where(
        Job.restored_at.is_not(None),
        Job.restore_expires_at <= now,
        or_(Job.verify_outcome.is_(None), Job.verify_outcome.not_in(("corrupt", "missing"))),
    )


def trash_due_for_purge(settings: Settings, now: datetime) -> Select:
    """Soft-deleted runs whose DELETE_GRACE_DAYS have run out and whose archive is still in the trash.

    A run whose archive was found corrupt stays until a person has looked and it verifies again.
    """
    return select(Job).where(
        is_in_trash(),
        Job.deleted_at <= now - timedelta(days=settings.delete_grace_days),
        or_(Job.verify_outcome.is_(None), Job.verify_outcome != "corrupt"),
    )
