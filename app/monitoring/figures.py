"""The storage figures, read from the tables in the database, and the cache that shares them.

``storage_stats`` sums the runs per tier in one pass (``tier_sizes`` says what each tier's bytes
are); ``daily_activity`` groups the lifecycle events per day. The site's figures are shared
through Redis (``site_figures_json``) by every door that shows them: the API's
``/storage/stats``, the dashboard's storage page and ``/metrics``.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from app.lifecycle.access import SYSTEM, Actor, events_visible, visible_runs
from app.lifecycle.runs import is_active, is_archived, is_in_trash, is_purged, is_restored
from app.models import Job, LifecycleEvent, utcnow

STATS_CACHE_KEY = "agar:cache:storage-stats:v3"  # "<fresh until, Unix time>\n<JSON>" (v3: the restored tier)
STATS_REFRESH_KEY = "agar:cache:storage-stats:refresh"
STATS_TTL = 30  # figures are remade once this old
STATS_KEEP = 3600  # stale figures are answered for at most this long while one caller remakes them
STATS_REFRESH_TIMEOUT = 120  # a refresher that died frees the lock after this
_clock: Callable[[], float] = time.time  # Unix time, shared by every web process through Redis


def tier_sizes() -> dict[str, tuple[Any, Any]]:
    """Each tier's condition on ``jobs`` and the column holding its bytes: the one home of what a tier weighs.

    active: run folders in jobs/; archived and trash: archive files; restored: working copies of
    archived runs in jobs/ (their folder's size; the run's archive stays counted as archived, and
    an archived run is never active); purged: what the archive weighed (nothing left on disk).
    """
    return {
        "active": (is_active(), Job.size_bytes),
        "archived": (is_archived(), Job.archive_size_bytes),
        "trash": (is_in_trash(), Job.archive_size_bytes),
        "restored": (is_restored(), Job.size_bytes),
        "purged": (is_purged(), Job.archive_size_bytes),
    }


STORED_TIERS = ("active", "archived", "trash", "restored")  # the tiers whose bytes are on disk now
TIERS = (*STORED_TIERS, "purged")


def tier_aggregates(tiers: tuple[str, ...] = TIERS) -> list[Any]:
    """``count`` and ``sum(bytes)`` of each of ``tiers``, as aggregates with FILTER for one pass over the runs."""
    sizes = tier_sizes()
    return [
        aggregate
        for condition, size in (sizes[name] for name in tiers)
        for aggregate in (func.count().filter(condition), func.coalesce(func.sum(size).filter(condition), 0))
    ]


def tiers_from(values: Any, tiers: tuple[str, ...] = TIERS) -> dict[str, dict[str, int]]:
    """``{tier: {"runs", "bytes"}}`` from the values of ``tier_aggregates`` (plain ints on every database)."""
    numbers = [int(value or 0) for value in values]
    return {name: {"runs": numbers[2 * i], "bytes": numbers[2 * i + 1]} for i, name in enumerate(tiers)}


def storage_stats(session: Session, data_path: Path, actor: Actor = SYSTEM) -> dict[str, Any]:
    """Runs and bytes per tier, compression saved, the archive success rate (30 days) and the disk.

    For a member, the figures of the runs they may see (their own), and no disk (it holds everyone's runs).
    """
    # One pass over the runs for every figure (aggregates with FILTER), not one scan per tier.
    columns = [*tier_aggregates(), func.coalesce(func.sum(Job.size_bytes).filter(is_archived()), 0)]
    # PostgreSQL sums BIGINT into NUMERIC: make plain numbers of them before any arithmetic.
    *per_tier, archived_original = session.execute(visible_runs(actor, *columns)).one()
    by_tier = tiers_from(per_tier)
    archived_original, archived_compressed = int(archived_original or 0), by_tier["archived"]["bytes"]
    since = utcnow() - timedelta(days=30)
    attempts = select(
        func.coalesce(func.sum(case((LifecycleEvent.outcome == "succeeded", 1), else_=0)), 0),
        func.coalesce(func.sum(case((LifecycleEvent.outcome == "failed", 1), else_=0)), 0),
    ).where(LifecycleEvent.action == "archive", LifecycleEvent.started_at >= since)
    succeeded, failed = (int(value) for value in session.execute(attempts.where(events_visible(actor))).one())
    return {
        "tiers": by_tier,
        "compression": {
            "original_bytes": int(archived_original),
            "archived_bytes": int(archived_compressed),
            "saved_bytes": int(archived_original) - int(archived_compressed),
            "saved_ratio": round(1 - archived_compressed / archived_original, 4) if archived_original else None,
        },
        "archive_success_rate": {
            "days": 30,
            "succeeded": int(succeeded),
            "failed": int(failed),
            "rate": succeeded / (succeeded + failed) if succeeded + failed else None,
        },
        "disk": disk_figures(data_path) if actor.is_admin else None,
    }


def disk_figures(data_path: Path) -> dict[str, Any]:
    usage = shutil.disk_usage(data_path)
    return {"total_bytes": usage.total, "free_bytes": usage.free, "used_percent": 100 * (1 - usage.free / usage.total)}


def daily_activity(session: Session, days: int, now: datetime, actor: Actor = SYSTEM) -> list[dict[str, Any]]:
    """Per UTC day of the last ``days``: archives that succeeded and failed, the bytes they took in
    and wrote, and the runs deleted and purged. Grouped in the database; days without events are 0."""
    first = (now - timedelta(days=days - 1)).date()
    day = func.date(LifecycleEvent.started_at)
    archive = LifecycleEvent.action == "archive"
    succeeded = LifecycleEvent.outcome == "succeeded"

    def count(condition: Any) -> Any:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    def total(condition: Any, column: Any) -> Any:
        return func.coalesce(func.sum(case((condition, column), else_=0)), 0)

    per_day = (
        select(
            day,
            count(archive & succeeded),
            count(archive & (LifecycleEvent.outcome == "failed")),
            total(archive & succeeded, LifecycleEvent.bytes_before),
            total(archive & succeeded, LifecycleEvent.bytes_after),
            count((LifecycleEvent.action == "delete") & succeeded),
            count((LifecycleEvent.action == "purge") & succeeded),
        )
        .where(LifecycleEvent.started_at >= datetime(first.year, first.month, first.day, tzinfo=now.tzinfo))
        .group_by(day)
    )
    rows = session.execute(per_day.where(events_visible(actor))).all()
    found = {_as_date(row[0]): [int(value or 0) for value in row[1:]] for row in rows}
    keys = ("archived", "archive_failed", "original_bytes", "archived_bytes", "deleted", "purged")
    return [
        {"day": current, **dict(zip(keys, found.get(current, [0] * len(keys)), strict=True))}
        for current in (first + timedelta(days=offset) for offset in range(days))
    ]


def _as_date(value: Any) -> date:
    """PostgreSQL gives a date, SQLite its text."""
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def site_figures_json(session: Session, data_path: Path, connection: Redis) -> bytes:
    """The site's storage figures with ``as_of`` (when they were made), as JSON, from the shared cache.

    Summing a tier reads every row of it (most runs, over time, are purged: about a second at a
    million runs), so the figures are shared through Redis and ``as_of`` says when they were made.
    They are remade once STATS_TTL seconds old, by one caller alone (a Redis lock): the others go
    on answering the figures they have until the new ones are in, so no request waits for a
    recount but the one making it. Without Redis every caller computes: slower, still right.
    """
    try:
        cached = connection.get(STATS_CACHE_KEY)
    except RedisError:
        cached = None
    fresh_until, _, body = (cached or b"").partition(b"\n")
    try:
        stale = _clock() >= float(fresh_until)
    except ValueError:  # nothing cached (or not in this form)
        body = b""
    if body and (not stale or not _may_refresh(connection)):
        return body
    made_at = utcnow().astimezone(UTC).isoformat().replace("+00:00", "Z")
    body = orjson.dumps({"as_of": made_at, **storage_stats(session, data_path)})
    try:
        connection.set(STATS_CACHE_KEY, f"{_clock() + STATS_TTL}\n".encode() + body, ex=STATS_KEEP)
        connection.delete(STATS_REFRESH_KEY)
    except RedisError:
        pass  # without Redis every caller computes: slower, still right
    return body


def site_figures(session: Session, data_path: Path, connection: Redis) -> dict[str, Any]:
    """The site's storage figures with ``as_of``, from the shared cache (see ``site_figures_json``)."""
    return orjson.loads(site_figures_json(session, data_path, connection))


def _may_refresh(connection: Redis) -> bool:
    """Whether this caller is the one to remake stale figures (no other is at it)."""
    try:
        return bool(connection.set(STATS_REFRESH_KEY, "1", nx=True, ex=STATS_REFRESH_TIMEOUT))
    except RedisError:
        return True
