"""Registering runs, moving their status forward, reading one fresh, and which tier a run is in."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, String, and_, cast, or_, select
from sqlalchemy.orm import Session

from app.lifecycle.context import Lifecycle
from app.lifecycle.disk import folder_size
from app.lifecycle.errors import RuleViolation, RunConflict, RunNotFound
from app.lifecycle.naming import find_run_folder, folder_name_for, run_folder_path
from app.models import FINISHED_STATUSES, JOB_STATUSES, Job, JobAudit, LifecycleEvent, utcnow

# Status only moves forward: pending → running → one of the finished states.
_STATUS_RANK = {"pending": 0, "running": 1, "completed": 2, "failed": 2, "cancelled": 2}


def tier_from(archived_at: datetime | None, deleted_at: datetime | None) -> str:
    """Return ``active``, ``archived`` or ``deleted`` from a run's two tier columns."""
    if deleted_at is not None:
        return "deleted"
    if archived_at is not None:
        return "archived"
    return "active"


def tier_of(job: Job) -> str:
    """Return the tier of a run."""
    return tier_from(job.archived_at, job.deleted_at)


def is_active() -> ColumnElement[bool]:
    """SQL condition: the run is in the active tier."""
    return and_(Job.archived_at.is_(None), Job.deleted_at.is_(None))


def is_archived() -> ColumnElement[bool]:
    """SQL condition: the run is in the archived tier."""
    return and_(Job.archived_at.is_not(None), Job.deleted_at.is_(None))


def is_deleted() -> ColumnElement[bool]:
    """SQL condition: the run is in the deleted tier (in the trash, or purged with its row kept)."""
    return Job.deleted_at.is_not(None)


def is_in_trash() -> ColumnElement[bool]:
    """SQL condition: the run was soft-deleted and its archive waits in the trash for its grace period."""
    return and_(Job.deleted_at.is_not(None), Job.purged_at.is_(None))


def is_restored() -> ColumnElement[bool]:
    """SQL condition: a working copy of the run's archive is restored in ``jobs/`` (its own tier in the
    storage figures: the copy's bytes are ``size_bytes``, the archive's stay counted as archived)."""
    return and_(Job.restored_at.is_not(None), Job.deleted_at.is_(None))


def is_purged() -> ColumnElement[bool]:
    """SQL condition: the run's archive is gone for good; its row and audit remain."""
    return Job.purged_at.is_not(None)


EARLIEST_RUN = datetime(1970, 1, 1, tzinfo=UTC)


def _check_timeline(status: str, created: datetime, started: datetime | None, completed: datetime | None) -> None:
    now = utcnow()
    if created < EARLIEST_RUN:
        raise RuleViolation("created_at is before 1970: not a scraper run's start")
    for label, moment in (("created_at", created), ("started_at", started), ("completed_at", completed)):
        if moment is not None and moment > now:
            raise RuleViolation(f"{label} is in the future")
    if started is not None and started < created:
        raise RuleViolation("started_at is before created_at")
    if completed is not None:
        if status not in FINISHED_STATUSES:
            raise RuleViolation(f"completed_at is only for finished runs, not {status!r} ones")
        if completed < (started or created):
            raise RuleViolation("completed_at is before the run started")
    if status == "pending" and started is not None:
        raise RuleViolation("a pending run has not started")


def _id_was_used(session: Session, job_id: uuid.UUID) -> bool:
    """Tell whether a run ever had this id: its audit or its history outlives the row (both indexed)."""
    for column in (JobAudit.job_id, LifecycleEvent.job_id):
        if session.scalar(select(column).where(column == job_id).limit(1)) is not None:
            return True
    return False


def register_run(
    session: Session,
    jobs_root: Path,
    *,
    name: str,
    scraper: str,
    created_by: uuid.UUID | None,
    job_id: uuid.UUID | None = None,
    status: str = "pending",
    created_at: datetime | None = None,
    started_at: datetime | None = None,
    completed_at: datetime | None = None,
    stats: dict[str, Any] | None = None,
) -> Job:
    """Create a run's row and its folder ``jobs/{folder_name}_{job_id}``; commit both or neither."""
    if status not in JOB_STATUSES:
        raise RuleViolation(f"status must be one of {', '.join(JOB_STATUSES)}")
    job_id = job_id or uuid.uuid4()
    if session.get(Job, job_id) is not None:
        raise RunConflict(f"a run with id {job_id} already exists")
    if _id_was_used(session, job_id):
        # A deleted run's history and audit stay under its id: a new run taking it would read them.
        raise RunConflict(f"the id {job_id} belonged to a deleted run and cannot be reused")
    created_at = created_at or utcnow()
    if status != "pending" and started_at is None:
        started_at = created_at
    if status in FINISHED_STATUSES and completed_at is None:
        completed_at = utcnow()
    _check_timeline(status, created_at, started_at, completed_at)

    job = Job(
        id=job_id,
        name=name,
        scraper=scraper,
        status=status,
        created_by=created_by,
        created_at=created_at,
        started_at=started_at,
        completed_at=completed_at,
        folder_name=folder_name_for(created_at),
        stats=stats,
        keep_forever=False,
    )
    folder = run_folder_path(jobs_root, job.folder_name, job_id)
    existed = folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    if status in FINISHED_STATUSES:
        job.size_bytes = folder_size(folder)
    session.add(job)
    try:
        session.commit()
    except Exception:
        session.rollback()
        if not existed:
            folder.rmdir()
        raise
    return job


def update_run(
    session: Session,
    jobs_root: Path,
    job: Job,
    *,
    status: str | None = None,
    stats: dict[str, Any] | None = None,
) -> Job:
    """Apply a scraper's status and stats update to an active run; status only moves forward."""
    if tier_of(job) != "active":
        raise RunConflict(f"run {job.id} is {tier_of(job)}; only active runs can be updated")
    if status is not None and status != job.status:
        if status not in JOB_STATUSES:
            raise RuleViolation(f"status must be one of {', '.join(JOB_STATUSES)}")
        if _STATUS_RANK[status] <= _STATUS_RANK[job.status]:
            raise RunConflict(f"status cannot move from {job.status} to {status}")
        now = utcnow()
        if status != "pending" and job.started_at is None:
            job.started_at = now
        if status in FINISHED_STATUSES:
            job.completed_at = now
            folder = find_run_folder(jobs_root, job.folder_name, job.id)
            job.size_bytes = folder_size(folder) if folder else 0
        job.status = status
    if stats is not None:
        # A shallow merge: a scraper reports the counters it knows and keeps the others.
        job.stats = {**(job.stats or {}), **stats}
    session.commit()
    return job


# A run id anywhere in the text (a pasted folder or path ends with one): "_" and "/" may stand before it.
_RUN_ID = re.compile(
    r"(?<![0-9a-f])([0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12})(?![0-9a-f])", re.I
)
# A folder as the lists show it, "<folder name>_<start of the id>" (at least 4 hex digits).
_FOLDER_AND_ID_START = re.compile(r"^(.+)_([0-9a-f]{4,31})$", re.IGNORECASE)
_PART_OF_AN_ID = re.compile(r"[0-9a-f-]+", re.IGNORECASE)
_ID_DASHES = (8, 12, 16, 20)  # where a run id's text has its dashes, counted in hex digits
# A shorter piece of an id (with or without dashes) is read as it stands, not in every dashed form
# it could have: four digits or fewer match thousands of runs anyway.
_ID_PIECE_FORMS_FROM = 5


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _dashed(digits: str, start: int) -> str:
    """Hex digits as they read in a run id's dashed text when the first is its ``start``-th digit."""
    return "".join(("-" if start + i in _ID_DASHES and i else "") + digit for i, digit in enumerate(digits))


def id_text_forms(text: str) -> set[str]:
    """The ways a piece of a run id may read in the id's text (lower case): as given without its
    dashes (SQLite writes an id as 32 hex digits) and with the dashes wherever the piece could sit
    in a dashed id (PostgreSQL's text). Each form is matched as it stands, so PostgreSQL's trigram
    index of the id finds it: no function of the column, which no index could serve."""
    digits = text.replace("-", "").lower()
    forms = {text.lower(), digits}
    if len(digits) >= _ID_PIECE_FORMS_FROM:
        forms.update(_dashed(digits, start) for start in range(32 - len(digits) + 1))
    return forms


def matching_text(query: Any, text: str) -> Any:
    """Narrow a SELECT of runs to those the text finds: a run id in it (a full id, or a folder or a
    path pasted from a shell, which ends with one) is that run alone, by its key; otherwise runs
    whose name, scraper, folder or id contains the text (any case; ``%``, ``_`` and ``\\`` match
    themselves; an id's dashes optional, as SQLite writes none), or whose folder and start of id
    are the text as the lists show them (``20261204_125543_208b7654``)."""
    found = _RUN_ID.search(text)
    if found:
        return query.where(Job.id == uuid.UUID(found.group(1)))
    id_text = cast(Job.id, String)
    matches = [column.ilike(_like(text), escape="\\") for column in (Job.name, Job.scraper, Job.folder_name)]
    if _PART_OF_AN_ID.fullmatch(text) and len(text) <= 36:  # other text is in no id
        matches.extend(id_text.ilike(_like(form), escape="\\") for form in sorted(id_text_forms(text)))
    last = text.rstrip("/").rsplit("/", 1)[-1].rstrip("…")  # a path's last part; the lists' ellipsis
    if last != text:
        matches.append(Job.folder_name.ilike(_like(last), escape="\\"))
    shown = _FOLDER_AND_ID_START.match(last)
    if shown:
        folder, start = shown.groups()
        starts = {start.lower(), _dashed(start.lower(), 0)}  # as SQLite and as PostgreSQL write it
        matches.append(and_(Job.folder_name == folder, or_(*(id_text.ilike(s + "%") for s in sorted(starts)))))
    return query.where(or_(*matches))


def load_run(lc: Lifecycle, job_id: uuid.UUID) -> Job:
    """Read the run fresh from the database (another worker may have changed it).

    Called right after taking the run's lock: ending the session's transaction first matters on
    SQLite, where an open read transaction keeps seeing the snapshot from before other commits.
    """
    lc.session.commit()
    job = lc.session.scalar(select(Job).where(Job.id == job_id).execution_options(populate_existing=True))
    if job is None:
        raise RunNotFound(f"no run {job_id}")
    return job


def folder_name_of(job: Job) -> str:
    """The run's folder name, derived from its start for legacy runs that lack one."""
    return job.folder_name or folder_name_for(job.created_at)
