"""Alerts the lifecycle itself raises when it finds something a person must look at.

The periodic check (app.monitoring) opens and resolves the alerts that describe a condition
(disk full, archives failing). These are raised at the moment a problem is met: an archive that
does not match its checksum, a folder that holds bytes its archive does not. One alert stays open
per kind and subject (a run), refreshed each time the problem is met again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Alert

SEVERITIES = ("info", "warning", "critical")


def raise_alert(
    session: Session, kind: str, severity: str, message: str, *, subject: str, now: datetime, **data: Any
) -> Alert:
    """Open an alert of ``kind`` about ``subject``, or refresh the one already open; the caller commits."""
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}")
    for alert in session.scalars(select(Alert).where(Alert.kind == kind, Alert.resolved_at.is_(None))):
        if (alert.data or {}).get("subject") == subject:
            alert.severity, alert.message = severity, message
            kept = {key: value for key, value in (alert.data or {}).items() if key == "notified_at"}
            alert.data = {**data, **kept, "subject": subject, "seen_at": now.isoformat()}  # sent once, not again
            return alert
    alert = Alert(kind=kind, severity=severity, message=message, data={**data, "subject": subject}, created_at=now)
    session.add(alert)
    return alert


def resolve_alerts(session: Session, kind: str, *, subject: str, now: datetime) -> int:
    """Resolve the open alerts of ``kind`` about ``subject``; return how many; the caller commits."""
    resolved = 0
    for alert in session.scalars(select(Alert).where(Alert.kind == kind, Alert.resolved_at.is_(None))):
        if (alert.data or {}).get("subject") == subject:
            alert.resolved_at = now
            resolved += 1
    return resolved


def mark_archive_corrupt(session: Session, job: Any, detail: str, *, now: datetime, outcome: str = "corrupt") -> Alert:
    """Record that the run's archive does not match its record (``outcome`` corrupt) or is gone
    (``missing``), and raise the critical alert; the caller commits.

    ``verify_outcome = "corrupt"`` keeps the archive (and its trash copy) from being purged until
    a person has looked (app.lifecycle.policy).
    """
    job.verify_outcome = outcome
    job.last_verified_at = now
    what = "is missing" if outcome == "missing" else "does not match its record"
    return raise_alert(
        session,
        "archive_corrupt",
        "critical",
        f"the archive of run {job.id} {what}: {detail}"[:2000],
        subject=str(job.id),
        now=now,
        job_id=str(job.id),
        archive=job.archive_path,
    )
