"""Run patterns per scraper, counted in the database: runs per day, failure rate, median size, bytes per tier.

One grouped pass over the runs an actor may see gives each scraper's counts and its bytes per
tier (``figures.tier_sizes``: the storage figures' own definition of each tier); a second groups
the window's runs per scraper and day; a third takes each scraper's median size (``median_per``).
Nothing is loaded into Python run by run. Admins see every scraper; a member the scrapers of
their own runs, counted over their own runs only (``access.visible_runs``).

The window is the last ``days`` UTC days, today included. Within it: ``runs`` (runs started),
``runs_per_day``, ``failed`` of the ``finished`` runs (completed, failed, cancelled: a run still
going has no outcome yet), ``failure_rate`` and ``median_size_bytes`` (of the finished runs' folder
sizes). ``tiers`` is what each scraper's runs hold now, whenever they ran.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from app.lifecycle.access import Actor, visible, visible_runs
from app.models import FINISHED_STATUSES, Job
from app.monitoring.figures import STORED_TIERS, _as_date, tier_aggregates, tiers_from


def window_start(days: int, now: datetime) -> datetime:
    """The first moment of the window: midnight UTC, ``days - 1`` days before today."""
    first = (now.astimezone(UTC) - timedelta(days=days - 1)).date()
    return datetime(first.year, first.month, first.day, tzinfo=UTC)


def median_per(session: Session, key: Any, value: Any, *where: ColumnElement[bool]) -> dict[Any, float]:
    """The median of ``value`` for each ``key`` among the rows ``where`` selects (nulls left out).

    The one home of the rule: the middle value, or the mean of the two middle values for an even
    count. PostgreSQL says it as ``percentile_cont(0.5)``; SQLite has no such aggregate, so there
    the rows are numbered per key by a window function and the middle one or two averaged.
    """
    where = (*where, value.is_not(None))
    if session.get_bind().dialect.name == "postgresql":
        query = select(key, func.percentile_cont(0.5).within_group(value)).where(*where).group_by(key)
    else:
        ranked = (
            select(
                key.label("key"),
                value.label("value"),
                func.row_number().over(partition_by=key, order_by=value).label("position"),
                func.count().over(partition_by=key).label("count"),
            )
            .where(*where)
            .subquery()
        )
        middle = ((ranked.c.count + 1) // 2, (ranked.c.count + 2) // 2)  # one row if odd, two if even
        query = (
            select(ranked.c.key, func.avg(ranked.c.value)).where(ranked.c.position.in_(middle)).group_by(ranked.c.key)
        )
    return {row[0]: float(row[1]) for row in session.execute(query)}


def scraper_stats(session: Session, actor: Actor, *, days: int, now: datetime) -> dict[str, Any]:
    """Each scraper's run patterns over the last ``days`` days and its bytes per tier now, by name.

    A scraper is listed while it has runs in the window or bytes on disk.
    """
    since = window_start(days, now)
    in_window = Job.created_at >= since
    finished = in_window & Job.status.in_(FINISHED_STATUSES)
    failed = in_window & (Job.status == "failed")
    grouped = (
        visible_runs(
            actor,
            Job.scraper,
            func.count().filter(in_window),
            func.count().filter(finished),
            func.count().filter(failed),
            *tier_aggregates(STORED_TIERS),
        )
        .group_by(Job.scraper)
        .order_by(Job.scraper)
    )
    day = func.date(Job.created_at)
    per_day_query = (
        visible_runs(actor, Job.scraper, day, func.count(), func.count().filter(Job.status == "failed"))
        .where(in_window)
        .group_by(Job.scraper, day)
    )
    per_day: dict[str, dict[date, tuple[int, int]]] = {}
    for scraper, when, count, failures in session.execute(per_day_query):
        per_day.setdefault(scraper, {})[_as_date(when)] = (int(count), int(failures))
    medians = median_per(session, Job.scraper, Job.size_bytes, finished, visible(actor))
    days_in_window = [since.date() + timedelta(days=offset) for offset in range(days)]
    scrapers = []
    for scraper, runs, finished_runs, failed_runs, *per_tier in session.execute(grouped):
        runs, finished_runs, failed_runs = int(runs), int(finished_runs), int(failed_runs)
        tiers = tiers_from(per_tier, STORED_TIERS)
        if not runs and not any(tier["runs"] for tier in tiers.values()):
            continue  # every run of it is older than the window and gone from the disk
        counts = per_day.get(scraper, {})
        scrapers.append(
            {
                "scraper": scraper,
                "runs": runs,
                "runs_per_day": round(runs / days, 3),
                "finished": finished_runs,
                "failed": failed_runs,
                "failure_rate": round(failed_runs / finished_runs, 4) if finished_runs else None,
                "median_size_bytes": medians.get(scraper),
                "tiers": tiers,
                "per_day": [
                    {"day": current, "runs": counts.get(current, (0, 0))[0], "failed": counts.get(current, (0, 0))[1]}
                    for current in days_in_window
                ],
            }
        )
    return {"days": days, "since": since.date(), "scrapers": scrapers}
