"""The periodic alert check: open an alert for each problem, resolve those gone, tell the webhook.

The lifecycle raises its own alerts as it meets a problem (app.lifecycle.alerts); this check
opens and resolves those that describe a condition of the whole site — ``disk`` (a filling disk),
``archive_failed`` (archives failing), ``unusual_deletions`` (a day's deletions far above the
usual) — under the subject ``all``, so the per-run ``archive_failed`` alerts the lifecycle raises
(subject: the run's id) are never mistaken for the site's. It sends every new alert, of either
kind, to ``ALERT_WEBHOOK_URL``.

Alerts opened under the kinds used before SPEC §9 named them (``disk_full``, ``archive_failures``)
are resolved by the next check, which opens the condition again under its new kind if it lasts:
no migration rewrites old rows.
"""

from __future__ import annotations

import statistics
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from app.lifecycle.alerts import raise_alert, resolve_alerts
from app.models import Alert, JobAudit, LifecycleEvent
from app.monitoring.figures import disk_figures

ARCHIVE_FAILURE_WINDOW = timedelta(hours=24)
SITE = "all"  # the subject of the alerts this check opens: a condition of the whole site
RETIRED_KINDS = ("disk_full", "archive_failures")  # renamed disk, archive_failed (SPEC §9)

# Unusual deletions: today's (UTC) deletions against the median of the 14 days before. A day is
# unusual above both 3x that median and the median plus 20: the factor scales with a busy site, the
# margin keeps a quiet one (median 0 or 1) from alerting at its first handful of deletions.
DELETION_HISTORY_DAYS = 14
UNUSUAL_FACTOR = 3
UNUSUAL_MARGIN = 20


def unusual_deletions_threshold(previous_days: list[int]) -> float:
    """The count of deletions a day must exceed to be unusual, given the counts of the days before."""
    median = statistics.median(previous_days) if previous_days else 0
    return max(UNUSUAL_FACTOR * median, median + UNUSUAL_MARGIN)


def deletions_per_day(session: Session, now: datetime) -> tuple[int, list[int]]:
    """Runs deleted (manually or by schedule: the ``job_audit`` rows) today so far, UTC, and on each
    of the DELETION_HISTORY_DAYS days before it (oldest first), counted in one pass over the index."""
    today = datetime.combine(now.astimezone(UTC).date(), time.min, UTC)
    starts = [today - timedelta(days=back) for back in range(DELETION_HISTORY_DAYS, -1, -1)]
    ends = [*starts[1:], now]
    counts = [
        func.count().filter(and_(JobAudit.deleted_at >= start, JobAudit.deleted_at < end))
        for start, end in zip(starts, ends, strict=True)
    ]
    row = session.execute(select(*counts).where(JobAudit.deleted_at >= starts[0], JobAudit.deleted_at < now)).one()
    *previous, today_count = (int(value or 0) for value in row)
    return today_count, previous


def alert_conditions(session: Session, data_path: Path, alert_percent: int, now: datetime) -> dict[str, Any]:
    """What is wrong now, by alert kind: ``(severity, message, data)``, or None where all is well."""
    usage = disk_figures(data_path)
    used = usage["used_percent"]
    disk = None
    if used >= alert_percent:
        severity = "critical" if used >= max(95, alert_percent) else "warning"
        message = f"the disk holding the runs is {used:.0f} % full (alert at {alert_percent} %)"
        disk = (severity, message, {"used_percent": round(used, 1), "free_bytes": usage["free_bytes"]})
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
    today, previous = deletions_per_day(session, now)
    threshold = unusual_deletions_threshold(previous)
    deletions = None
    if today > threshold:
        median = statistics.median(previous)
        message = (
            f"{today} runs deleted today (UTC), far above the usual: the median of the {len(previous)} days before "
            f"is {median:g} (unusual above {threshold:g}); the audit says who deleted them and why"
        )
        data = {
            "deleted_today": today,
            "median": median,
            "threshold": threshold,
            "day": now.astimezone(UTC).date().isoformat(),
        }
        deletions = ("warning", message, data)
    return {"disk": disk, "archive_failed": failures, "unusual_deletions": deletions}


def check_alerts(
    session: Session, data_path: Path, alert_percent: int, now: datetime, notify: Any = None
) -> dict[str, list[str]]:
    """Open an alert for each new problem, update those still open, resolve those gone.

    Idempotent: a problem has at most one open alert however often this runs. ``notify(alert)``
    (the webhook) is called once for each new alert, this check's or the lifecycle's; a failure is
    reported, never swallowed silently, and the alert is sent again at the next check.
    """
    report: dict[str, list[str]] = {"opened": [], "resolved": [], "still_open": [], "notify_failed": []}
    for kind in RETIRED_KINDS:
        for old in session.scalars(select(Alert).where(Alert.kind == kind, Alert.resolved_at.is_(None))):
            old.resolved_at = now
            report["resolved"].append(kind)
    for kind, problem in alert_conditions(session, data_path, alert_percent, now).items():
        if problem is None:
            if resolve_alerts(session, kind, subject=SITE, now=now):
                report["resolved"].append(kind)
            continue
        severity, message, data = problem
        was_open = any((a.data or {}).get("subject") == SITE for a in _open_alerts(session, kind))
        raise_alert(session, kind, severity, message, subject=SITE, now=now, **data)
        report["still_open" if was_open else "opened"].append(kind)
    session.flush()
    if notify is not None:  # the new alerts, this check's and those the lifecycle raised, each sent once
        _notify_raised(session, notify, now, report)
    session.commit()
    return report


def _open_alerts(session: Session, kind: str) -> list[Alert]:
    return list(session.scalars(select(Alert).where(Alert.kind == kind, Alert.resolved_at.is_(None))))


def _notify_raised(session: Session, notify: Any, now: datetime, report: dict[str, list[str]]) -> None:
    """Send the open alerts (``subject`` set: this check's and the lifecycle's) that were never sent;
    one whose sending failed is tried again at the next check."""
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
