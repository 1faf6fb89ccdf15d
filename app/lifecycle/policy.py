"""The lifecycle rules, in one place and evaluated in the database: which runs are due for what.

Only finished runs age, counted from ``completed_at``. A run with ``keep_forever`` or a
``retain_until`` in the future is never touched by a scheduled pass. The ages, keep_last and
legal holds come from the retention policies (``app.lifecycle.retention``); the environment's
ARCHIVE_AFTER_DAYS and DELETE_AFTER_DAYS apply where no policy matches.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, not_, or_, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.lifecycle.retention import Rules, due_for_archival, due_for_deletion, held, kept_by_keep_last
from app.lifecycle.runs import is_active, is_archived, is_in_trash
from app.models import FINISHED_STATUSES, Job


def is_protected(now: datetime) -> ColumnElement[bool]:
    """SQL condition: a retention override holds the run."""
    return or_(Job.keep_forever.is_(True), and_(Job.retain_until.is_not(None), Job.retain_until > now))


def runs_due_for_archival(rules: Rules, now: datetime, before: datetime | None = None) -> Select:
    """Finished, unprotected, unarchived runs past their archive age (or finished before ``before``,
    whatever the ages say), except those keep_last keeps."""
    aged = (
        and_(Job.completed_at < before, not_(kept_by_keep_last(rules)))
        if before is not None
        else due_for_archival(rules, now)
    )
    return select(Job).where(Job.status.in_(FINISHED_STATUSES), is_active(), aged, not_(is_protected(now)))


def runs_due_for_cleanup(rules: Rules, now: datetime, before: datetime | None = None) -> Select:
    """Archived, unprotected runs past their delete age (or finished before ``before``, whatever the
    ages say), except those keep_last keeps or a legal hold holds: never a run without a verified archive."""
    aged = (
        and_(Job.completed_at < before, not_(kept_by_keep_last(rules)), not_(held(rules)))
        if before is not None
        else due_for_deletion(rules, now)
    )
    return select(Job).where(is_archived(), Job.archive_path.is_not(None), aged, not_(is_protected(now)))


def restores_due_to_expire(now: datetime) -> Select:
    """Restored working copies whose RESTORE_TTL_DAYS have run out, unless their archive was found
    corrupt or missing: then the working copy may be the last good one (archive_corrupt alert)."""
    return select(Job).where(
        Job.restored_at.is_not(None),
        Job.restore_expires_at <= now,
        or_(Job.verify_outcome.is_(None), Job.verify_outcome.not_in(("corrupt", "missing"))),
    )


def trash_due_for_purge(rules: Rules, settings: Settings, now: datetime) -> Select:
    """Soft-deleted runs whose DELETE_GRACE_DAYS have run out and whose archive is still in the trash.

    A run whose archive was found corrupt stays until a person has looked and it verifies again;
    a run under a legal hold stays until the hold is lifted.
    """
    return select(Job).where(
        is_in_trash(),
        not_(held(rules)),
        Job.deleted_at <= now - timedelta(days=settings.delete_grace_days),
        or_(Job.verify_outcome.is_(None), Job.verify_outcome != "corrupt"),
    )


def next_passes(session: Session, rules: Rules, now: datetime) -> dict[str, Any]:
    """What the next archival and cleanup passes would take under ``rules``: runs and bytes (recorded
    sizes: a run's folder as it finished, an archive's file), in all and per scraper. Counted in the database."""
    steps = (
        ("archive", runs_due_for_archival(rules, now), Job.size_bytes),
        ("delete", runs_due_for_cleanup(rules, now), Job.archive_size_bytes),
    )
    result: dict[str, Any] = {}
    scrapers: dict[str, dict[str, Any]] = {}
    for step, due, size in steps:
        grouped = (
            select(Job.scraper, func.count(), func.coalesce(func.sum(size), 0))
            .where(due.whereclause)
            .group_by(Job.scraper)
        )
        runs = total = 0
        for scraper, count, size_sum in session.execute(grouped):
            entry = scrapers.setdefault(
                scraper,
                {"scraper": scraper, "archive_runs": 0, "archive_bytes": 0, "delete_runs": 0, "delete_bytes": 0},
            )
            entry[f"{step}_runs"], entry[f"{step}_bytes"] = int(count), int(size_sum)
            runs, total = runs + int(count), total + int(size_sum)
        result[step] = {"runs": runs, "bytes": total}
    result["by_scraper"] = [scrapers[name] for name in sorted(scrapers)]
    return result
