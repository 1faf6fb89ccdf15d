"""Where storage is heading: the bytes per tier and the disk's use for each of the next days.

The projection is plain arithmetic on figures grouped in the database (never a run loaded one by
one), made at the end of each UTC day, today being day 0:

- **The runs there are** move as the retention rules say (``app.lifecycle.retention``): an
  active finished run is archived on the day it reaches its archive age (a run due already, on
  day 1: the next pass), its bytes shrinking by the measured compression ratio; an archived run is
  deleted on the day it reaches its delete age — into the trash for DELETE_GRACE_DAYS with
  ``DELETION_STRATEGY=soft``, then purged; at once when hard. A run in the trash is purged when its
  grace period ends; a restored working copy goes when it expires. A run a person used goes no
  sooner than the governing policy's keep_after_access_days after its last use. Runs that keep_last keeps, that
  a legal hold holds (from deletion), that are kept forever, and runs not finished stay where they
  are; a ``retain_until`` holds a run until that day.
- **The runs to come** arrive each day at the rate of the last ``ARRIVAL_DAYS`` days (runs created
  then, with their sizes), each following the ages of the policy that governed its like; they are
  counted active the day they arrive.
- **The compression ratio** is that of the archived tier now (archive bytes over original bytes;
  1 when nothing is archived yet).
- **The disk**: its use today plus the change of the runs' bytes; ``alert_threshold_date`` is the
  first day its use reaches ``STORAGE_ALERT_PERCENT`` (null: not within the days asked).

Bytes are computed exactly (fractions) and rounded to whole bytes per day only when written.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from fractions import Fraction
from typing import Any

from sqlalchemy import case, func, not_, null, or_, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.lifecycle.errors import BadInput
from app.lifecycle.queries import whole_number
from app.lifecycle.retention import Rules, age_days, held, keep_after_use_days, kept_by_keep_last, load_rules
from app.lifecycle.runs import is_active, is_archived, is_in_trash, is_restored
from app.models import FINISHED_STATUSES, Job, RunAccess
from app.monitoring.figures import STORED_TIERS, disk_figures

ARRIVAL_DAYS = 14
MAX_DAYS = 365
TIERS = STORED_TIERS  # the tiers projected: those whose bytes are on disk


def _day(value: Any) -> date | None:
    """PostgreSQL gives a date, SQLite its text."""
    if value is None:
        return None
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


class _Timeline:
    """Changes of each tier's bytes by projected day (1…days); what falls before day 1 falls on day 1."""

    def __init__(self, today: date, days: int):
        self.today, self.days = today, days
        self.changes: dict[int, dict[str, Fraction]] = defaultdict(lambda: defaultdict(Fraction))

    def index(self, when: date | None) -> int | None:
        """The projected day a move dated ``when`` happens on, or None when beyond the horizon (or never)."""
        if when is None:
            return None
        offset = max(1, (when - self.today).days)
        return offset if offset <= self.days else None

    def move(self, when: date | None, amount: Fraction, source: str | None, target: str | None) -> None:
        at = self.index(when)
        if at is None or not amount:
            return
        if source:
            self.changes[at][source] -= amount
        if target:
            self.changes[at][target] += amount


def _later(*days: date | None) -> date | None:
    known = [d for d in days if d is not None]
    return max(known) if known else None


def _plus(day: date | None, days: int | None) -> date | None:
    return None if day is None or days is None else day + timedelta(days=days)


def _delete(
    timeline: _Timeline, settings: Settings, when: date | None, archived_bytes: Fraction, *, source: str = "archived"
) -> None:
    """An archived run's deletion: into the trash for the grace period (soft), or gone (hard)."""
    if settings.deletion_strategy == "soft" and settings.delete_grace_days > 0:
        timeline.move(when, archived_bytes, source, "trash")
        timeline.move(_plus(when, settings.delete_grace_days), archived_bytes, "trash", None)
    else:
        timeline.move(when, archived_bytes, source, None)


def forecast(
    session: Session,
    settings: Settings,
    rules: Rules,
    *,
    now: datetime,
    days: int,
    disk_total: int,
    disk_used: int,
) -> dict[str, Any]:
    """The next ``days`` days of storage (SPEC §9's shape): bytes per tier and the disk's use, and the
    first day the disk reaches STORAGE_ALERT_PERCENT."""
    today = now.date()
    timeline = _Timeline(today, days)
    archive_age, delete_age = age_days(rules, "archive_after_days"), age_days(rules, "delete_after_days")
    protected_until = case((Job.retain_until > now, func.date(Job.retain_until)), else_=null())
    kept = kept_by_keep_last(rules)

    # Where things stand: bytes per tier now (the same tiers as the storage figures).
    restored = is_restored()
    now_row = session.execute(
        select(
            func.coalesce(func.sum(Job.size_bytes).filter(is_active()), 0),
            func.coalesce(func.sum(Job.archive_size_bytes).filter(is_archived()), 0),
            func.coalesce(func.sum(Job.archive_size_bytes).filter(is_in_trash()), 0),
            func.coalesce(func.sum(Job.size_bytes).filter(restored), 0),
            func.coalesce(func.sum(Job.size_bytes).filter(is_archived()), 0),
        )
    ).one()
    start = dict(zip(TIERS, (Fraction(int(v)) for v in now_row[:4]), strict=True))
    original, compressed = int(now_row[4]), int(now_row[1])
    ratio = Fraction(compressed, original) if original else Fraction(1)

    # A run a person used is kept keep_after_access_days after its last use (the policy's), if one says so.
    use_days = keep_after_use_days(rules)
    last_use = select(RunAccess.job_id, func.max(RunAccess.day).label("day")).group_by(RunAccess.job_id).subquery()
    used_on = last_use.c.day

    def kept_after_use(last_day: Any, keep_days: Any) -> date | None:
        """The first day the use keeps it no more (retention.kept_by_use: a use within N days keeps it)."""
        return _plus(_day(last_day), keep_days + 1) if keep_days is not None else None

    # Active finished runs: archived at their archive age, then deleted at their delete age.
    moving = Job.status.in_(FINISHED_STATUSES) & is_active() & not_(Job.keep_forever.is_(True)) & not_(kept)
    completed = func.date(Job.completed_at)
    columns = (completed, archive_age, delete_age, protected_until, used_on, use_days)
    grouped = (
        select(*columns, func.coalesce(func.sum(Job.size_bytes), 0))
        .outerjoin(last_use, last_use.c.job_id == Job.id)
        .where(moving)
        .group_by(*columns)
    )
    for finished, archive_days, delete_days, until, last_day, keep_days, size in session.execute(grouped):
        finished_on, until_day, size = _day(finished), _day(until), Fraction(int(size))
        archived_on = _later(_plus(finished_on, archive_days), until_day)
        timeline.move(archived_on, size, "active", "archived")
        timeline.move(archived_on, size - size * ratio, "archived", None)  # it shrinks as it is archived
        deleted_on = _later(
            _plus(finished_on, delete_days), archived_on, until_day, kept_after_use(last_day, keep_days)
        )
        if delete_days is not None and timeline.index(archived_on) is not None:
            _delete(timeline, settings, deleted_on, size * ratio)

    # Archived runs: deleted at their delete age, unless kept.
    on_archive = is_archived() & not_(Job.keep_forever.is_(True)) & not_(kept)
    columns = (completed, delete_age, protected_until, used_on, use_days)
    grouped = (
        select(*columns, func.coalesce(func.sum(Job.archive_size_bytes), 0))
        .outerjoin(last_use, last_use.c.job_id == Job.id)
        .where(on_archive)
        .group_by(*columns)
    )
    for finished, delete_days, until, last_day, keep_days, size in session.execute(grouped):
        if delete_days is not None:
            deleted_on = _later(_plus(_day(finished), delete_days), _day(until), kept_after_use(last_day, keep_days))
            _delete(timeline, settings, deleted_on, Fraction(int(size)))

    # The trash: purged when the grace period ends (a legal hold keeps it).
    deleted = func.date(Job.deleted_at)
    grouped = (
        select(deleted, func.coalesce(func.sum(Job.archive_size_bytes), 0))
        .where(is_in_trash(), not_(held(rules)), or_(Job.verify_outcome.is_(None), Job.verify_outcome != "corrupt"))
        .group_by(deleted)
    )
    for deleted_day, size in session.execute(grouped):
        timeline.move(_plus(_day(deleted_day), settings.delete_grace_days), Fraction(int(size)), "trash", None)

    # Restored working copies: gone when they expire.
    expires = func.date(Job.restore_expires_at)
    grouped = select(expires, func.coalesce(func.sum(Job.size_bytes), 0)).where(restored).group_by(expires)
    for expiry, size in session.execute(grouped):
        timeline.move(_day(expiry), Fraction(int(size)), "restored", None)

    # The runs to come: the last ARRIVAL_DAYS days' runs, per pair of ages, spread evenly over each day.
    since = now - timedelta(days=ARRIVAL_DAYS)
    grouped = (
        select(archive_age, delete_age, func.count(), func.coalesce(func.sum(Job.size_bytes), 0))
        .where(Job.created_at >= since, Job.created_at < now)
        .group_by(archive_age, delete_age)
    )
    arrivals = [(a, d, Fraction(int(size), ARRIVAL_DAYS)) for a, d, _count, size in session.execute(grouped)]
    for offset in range(1, days + 1):
        arrived = today + timedelta(days=offset)
        for archive_days, delete_days, size in arrivals:
            timeline.move(arrived, size, None, "active")
            archived_on = _plus(arrived, archive_days)
            timeline.move(archived_on, size, "active", "archived")
            timeline.move(archived_on, size - size * ratio, "archived", None)
            if delete_days is not None:
                _delete(timeline, settings, _plus(arrived, delete_days), size * ratio)

    return _written(timeline, start, settings, disk_total=disk_total, disk_used=disk_used)


def _written(
    timeline: _Timeline, start: dict[str, Fraction], settings: Settings, *, disk_total: int, disk_used: int
) -> dict[str, Any]:
    level = dict(start)
    first_total = sum(start.values())
    out: list[dict[str, Any]] = []
    alert_day: date | None = None
    for offset in range(1, timeline.days + 1):
        for tier, change in timeline.changes.get(offset, {}).items():
            level[tier] += change
        on = timeline.today + timedelta(days=offset)
        used = disk_used + (sum(level.values()) - first_total)
        percent = float(100 * used / disk_total) if disk_total else None
        if alert_day is None and percent is not None and percent >= settings.storage_alert_percent:
            alert_day = on
        out.append(
            {
                "date": on.isoformat(),
                **{f"{tier}_bytes": max(0, round(level[tier])) for tier in TIERS},
                "disk_used_percent": None if percent is None else round(percent, 2),
            }
        )
    return {"days": out, "alert_threshold_date": alert_day.isoformat() if alert_day else None}


def days_asked(raw: Any, *, default: int = 30) -> int:
    """``?days=``: a whole number from 1 to MAX_DAYS (SPEC §9)."""
    if raw is None or raw == "":
        return default
    days = whole_number(str(raw).strip())
    if days is None or not 1 <= days <= MAX_DAYS:
        raise BadInput(f"days must be a whole number from 1 to {MAX_DAYS}")
    return days


def site_forecast(session: Session, settings: Settings, *, days: int, now: datetime) -> dict[str, Any]:
    """The forecast of the whole site under the policies in force, from the disk holding SCRAPER_DATA_PATH."""
    disk = disk_figures(settings.scraper_data_path)
    return forecast(
        session,
        settings,
        load_rules(session, settings),
        now=now,
        days=days,
        disk_total=disk["total_bytes"],
        disk_used=disk["total_bytes"] - disk["free_bytes"],
    )
