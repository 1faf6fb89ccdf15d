"""The periodic alert check: open an alert for each problem, resolve those gone, tell the webhook.

The lifecycle raises its own alerts as it meets a problem (app.lifecycle.alerts); this check
opens and resolves those that describe a condition (a filling disk, archives failing) and sends
every new alert, of either kind, to ``ALERT_WEBHOOK_URL``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import Alert, LifecycleEvent
from app.monitoring.figures import disk_figures

ARCHIVE_FAILURE_WINDOW = timedelta(hours=24)


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
