"""Storage figures read from the tables, in the database: one place for the API and the dashboard."""

from __future__ import annotations

import shutil
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from app.lifecycle.runs import is_active, is_archived
from app.models import Alert, Job, LifecycleEvent, StorageSnapshot, utcnow


def storage_stats(session: Session, data_path: Path, owner: uuid.UUID | None = None) -> dict[str, Any]:
    """Runs and bytes per tier, compression saved, the archive success rate (30 days) and the disk.

    With ``owner``, the figures of that user's runs only, and no disk (it holds everyone's runs).
    """
    tiers = {
        "active": (is_active(), Job.size_bytes),
        "archived": (is_archived(), Job.archive_size_bytes),
        "trash": (Job.deleted_at.is_not(None) & Job.purged_at.is_(None), Job.archive_size_bytes),
        "purged": (Job.purged_at.is_not(None), Job.archive_size_bytes),
    }
    # One pass over the runs for every figure (aggregates with FILTER), not one scan per tier.
    columns = [
        aggregate
        for condition, size in tiers.values()
        for aggregate in (func.count().filter(condition), func.coalesce(func.sum(size).filter(condition), 0))
    ]
    columns.append(func.coalesce(func.sum(Job.size_bytes).filter(is_archived()), 0))
    # PostgreSQL sums BIGINT into NUMERIC: make plain numbers of them before any arithmetic.
    runs = select(*columns) if owner is None else select(*columns).where(Job.created_by == owner)
    figures = [int(value or 0) for value in session.execute(runs).one()]
    by_tier = {name: {"runs": figures[2 * i], "bytes": figures[2 * i + 1]} for i, name in enumerate(tiers)}
    archived_original, archived_compressed = figures[-1], by_tier["archived"]["bytes"]
    since = utcnow() - timedelta(days=30)
    attempts = select(
        func.coalesce(func.sum(case((LifecycleEvent.outcome == "succeeded", 1), else_=0)), 0),
        func.coalesce(func.sum(case((LifecycleEvent.outcome == "failed", 1), else_=0)), 0),
    ).where(LifecycleEvent.action == "archive", LifecycleEvent.started_at >= since)
    succeeded, failed = (int(value) for value in session.execute(owned_events(attempts, owner)).one())
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
        "disk": disk_figures(data_path) if owner is None else None,
    }


def disk_figures(data_path: Path) -> dict[str, Any]:
    usage = shutil.disk_usage(data_path)
    return {"total_bytes": usage.total, "free_bytes": usage.free, "used_percent": 100 * (1 - usage.free / usage.total)}


def owned_events(query: Any, owner: uuid.UUID | None) -> Any:
    """Narrow a SELECT over lifecycle events to the runs of ``owner`` (all, without one).

    Events of a hard-deleted run no longer have its owner: they count for admins only.
    """
    if owner is None:
        return query
    return query.join(Job, Job.id == LifecycleEvent.job_id).where(Job.created_by == owner)


def daily_activity(session: Session, days: int, now: datetime, owner: uuid.UUID | None = None) -> list[dict[str, Any]]:
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
    rows = session.execute(owned_events(per_day, owner)).all()
    found = {_as_date(row[0]): [int(value or 0) for value in row[1:]] for row in rows}
    keys = ("archived", "archive_failed", "original_bytes", "archived_bytes", "deleted", "purged")
    return [
        {"day": current, **dict(zip(keys, found.get(current, [0] * len(keys)), strict=True))}
        for current in (first + timedelta(days=offset) for offset in range(days))
    ]


def _as_date(value: Any) -> date:
    """PostgreSQL gives a date, SQLite its text."""
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def take_snapshot(session: Session, data_path: Path, now: datetime) -> tuple[StorageSnapshot, bool]:
    """Record runs and bytes per tier and the disk's size, once per hour: ``(snapshot, taken now)``.

    A second call in the same hour (a retry, a second scheduler) returns that hour's snapshot.
    """
    hour = now.replace(minute=0, second=0, microsecond=0)
    existing = session.scalars(
        select(StorageSnapshot).where(StorageSnapshot.taken_at >= hour).order_by(StorageSnapshot.taken_at).limit(1)
    ).first()
    if existing is not None:
        return existing, False
    stats = storage_stats(session, data_path)
    tiers = stats["tiers"]
    snapshot = StorageSnapshot(
        taken_at=now,
        active_bytes=tiers["active"]["bytes"],
        active_count=tiers["active"]["runs"],
        archived_bytes=tiers["archived"]["bytes"],
        archived_count=tiers["archived"]["runs"],
        trash_bytes=tiers["trash"]["bytes"],
        deleted_count=tiers["trash"]["runs"] + tiers["purged"]["runs"],
        disk_total_bytes=stats["disk"]["total_bytes"],
        disk_free_bytes=stats["disk"]["free_bytes"],
    )
    session.add(snapshot)
    session.commit()
    return snapshot, True


ARCHIVE_FAILURE_WINDOW = timedelta(hours=24)


def alert_conditions(session: Session, data_path: Path, alert_percent: int, now: datetime) -> dict[str, Any]:
    """What is wrong now, by alert kind: ``(severity, message, data)``, or None where all is well."""
    usage = shutil.disk_usage(data_path)
    used = 100 * (1 - usage.free / usage.total)
    disk = None
    if used >= alert_percent:
        severity = "critical" if used >= max(95, alert_percent) else "warning"
        message = f"the disk holding the runs is {used:.0f} % full (alert at {alert_percent} %)"
        disk = (severity, message, {"used_percent": round(used, 1), "free_bytes": usage.free})
    # Runs whose latest archive attempt failed: a later success resolves the alert at the next check.
    # Only attempts inside the window can be latest-and-failed-in-the-window (any later one is inside
    # too), so the ranking reads the window's events alone, through the (action, started_at) index.
    attempts = (
        select(
            LifecycleEvent.outcome,
            func.row_number()
            .over(
                partition_by=LifecycleEvent.job_id,
                order_by=(LifecycleEvent.started_at.desc(), LifecycleEvent.id.desc()),
            )
            .label("newest_first"),
        )
        .where(
            LifecycleEvent.action == "archive",
            LifecycleEvent.outcome.in_(("failed", "succeeded")),  # not "skipped" (busy) nor "started"
            LifecycleEvent.started_at >= now - ARCHIVE_FAILURE_WINDOW,
        )
        .subquery()
    )
    failed = session.scalar(
        select(func.count()).select_from(attempts).where(attempts.c.newest_first == 1, attempts.c.outcome == "failed")
    )
    failures = None
    if failed:
        runs = f"{failed} run{'s' if failed != 1 else ''}"
        message = f"{runs}: the last archive attempt failed (in the last 24 hours)"
        failures = ("warning", message, {"failed_runs": int(failed)})
    return {"disk_full": disk, "archive_failures": failures}


def check_alerts(
    session: Session, data_path: Path, alert_percent: int, now: datetime, notify: Any = None
) -> dict[str, list[str]]:
    """Open an alert for each new problem, update those still open, resolve those gone.

    Idempotent: a problem has at most one open alert however often this runs. ``notify(alert)``
    is called for each alert opened (the webhook); its failure is reported, never swallowed silently.
    """
    report: dict[str, list[str]] = {"opened": [], "resolved": [], "still_open": [], "notify_failed": []}
    for kind, problem in alert_conditions(session, data_path, alert_percent, now).items():
        open_alert = session.scalars(
            select(Alert).where(Alert.kind == kind, Alert.resolved_at.is_(None)).order_by(Alert.id).limit(1)
        ).first()
        if problem is None:
            if open_alert is not None:
                open_alert.resolved_at = now
                report["resolved"].append(kind)
            continue
        severity, message, data = problem
        if open_alert is not None:
            open_alert.severity, open_alert.message, open_alert.data = severity, message, data
            report["still_open"].append(kind)
            continue
        alert = Alert(kind=kind, severity=severity, message=message, data=data, created_at=now)
        session.add(alert)
        session.flush()
        report["opened"].append(kind)
        if notify is not None:
            try:
                notify(alert)
            except Exception as error:  # the alert stands; the report (and the task's result) says the call failed
                report["notify_failed"].append(f"{kind}: {error}")
    if notify is not None:
        _notify_raised(session, notify, now, report)
    session.commit()
    return report


def _notify_raised(session: Session, notify: Any, now: datetime, report: dict[str, list[str]]) -> None:
    """Send the alerts the lifecycle raised as it met a problem (``subject`` set) that were never sent."""
    for alert in session.scalars(select(Alert).where(Alert.resolved_at.is_(None)).order_by(Alert.id)):
        data = alert.data or {}
        if "subject" not in data or "notified_at" in data:
            continue
        try:
            notify(alert)
        except Exception as error:  # tried again at the next check
            report["notify_failed"].append(f"{alert.kind} {data['subject']}: {error}")
            continue
        alert.data = {**data, "notified_at": now.isoformat()}
        report.setdefault("notified", []).append(f"{alert.kind} {data['subject']}")


def webhook_notifier(url: str | None, timeout: float = 5.0) -> Any:
    """A ``notify`` that POSTs each new alert as JSON to ``ALERT_WEBHOOK_URL`` (None without one)."""
    if not url:
        return None
    import json
    import urllib.request

    def notify(alert: Alert) -> None:
        body = {
            "kind": alert.kind,
            "severity": alert.severity,
            "message": alert.message,
            "data": alert.data,
            "created_at": alert.created_at.isoformat(),
        }
        request = urllib.request.Request(  # noqa: S310 (http(s) checked at start-up)
            url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (http(s) checked at start-up)
            response.read()

    return notify
