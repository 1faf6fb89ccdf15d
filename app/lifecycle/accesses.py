"""That a person used a run: opened its page, downloaded its archive or a file of it, restored it.

Recorded as one row per run and UTC day (``run_accesses``), counted, with who used it last; a
process writes a run's row at most once a minute however often the run is used, so a busy
download costs no write per request. Scripts reading a run's record through the API do not count:
``keep_after_access_days`` (retention policies) keeps what people use, not what a poller lists.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.models import RunAccess
from app.ttl_cache import TTLCache

WRITE_EVERY_SECONDS = 60.0
_WRITTEN: TTLCache[bool] = TTLCache(ttl=WRITE_EVERY_SECONDS, size=10_000)

# What counts as using a run, in the product's words.
KINDS = ("opened", "downloaded", "restored")


def record_access(session: Session, job: Any, kind: str, *, by: str, by_id: uuid.UUID | None, now: datetime) -> None:
    """Count that ``by`` (a username; ``by_id`` their id) used the run today (``kind``, one of KINDS);
    commits its own write.

    Called by the doors after the use succeeded. At most one write per run, person and minute per process.
    """
    if kind not in KINDS:
        raise ValueError(f"no access kind {kind!r}")
    day = now.date()
    key = (job.id, day, by, kind)
    if _WRITTEN.get(key):
        return
    owner = by_id is not None and job.created_by is not None and str(job.created_by) == str(by_id)
    values = {"last_at": now, "last_by": by[:64], "last_kind": kind, "by_owner": owner}
    counted = update(RunAccess).where(RunAccess.job_id == job.id, RunAccess.day == day)
    if session.execute(counted.values(count=RunAccess.count + 1, **values)).rowcount == 0:
        try:
            session.add(RunAccess(job_id=job.id, day=day, count=1, **values))
            session.commit()
        except IntegrityError:  # another process wrote today's row first: count on it
            session.rollback()
            session.execute(counted.values(count=RunAccess.count + 1, **values))
    session.commit()
    _WRITTEN.put(key, True)


def last_access(session: Session, job_ids: list[Any], since: datetime) -> dict[Any, RunAccess]:
    """The latest day each of these runs was used on or after ``since``'s day: ``{job_id: RunAccess}``."""
    if not job_ids:
        return {}
    rows = session.scalars(
        select(RunAccess)
        .where(RunAccess.job_id.in_(job_ids), RunAccess.day >= since.date())
        .order_by(RunAccess.day.desc())
    )
    latest: dict[Any, RunAccess] = {}
    for row in rows:
        latest.setdefault(row.job_id, row)
    return latest
