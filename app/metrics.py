"""``/metrics``: the product's figures in the Prometheus text format (SPEC §7).

Runs and bytes per tier, what compression saved, every lifecycle attempt by action and outcome
(a counter: events are never deleted), open alerts, the disk, and the RQ queue. Computed in the
database and Redis on each scrape; the runs in one aggregate pass (app.monitoring). Redis being
down is itself a figure (``agar_redis_up 0``), not a failed scrape.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request
from redis.exceptions import RedisError
from rq import Queue
from sqlalchemy import func, select

from app.auth.users import bearer_caller
from app.extensions import db, redis_connection, settings
from app.lifecycle.verification import has_stored_archive
from app.models import VERIFY_OUTCOMES, Alert, Job, LifecycleEvent, utcnow
from app.monitoring import storage_stats
from app.schedule import QUEUE_NAME

bp = Blueprint("metrics", __name__)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Exposition:
    """Builds the text format: HELP and TYPE once per metric, then its samples."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def metric(self, name: str, kind: str, help_text: str, samples: list[tuple[dict[str, str], float]]) -> None:
        self.lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        for labels, value in samples:
            rendered = ",".join(f'{key}="{_escape(str(val))}"' for key, val in labels.items())
            number = _number(value)
            self.lines.append(f"{name}{{{rendered}}} {number}" if rendered else f"{name} {number}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _number(value: float) -> str:
    """Write integers exactly (``:g`` kept six digits: 4776912345 bytes became 4.77691e+09), floats as repr."""
    if isinstance(value, int):
        return str(int(value))  # int() too: a bool is written 1 or 0
    return repr(float(value))


def _verification_metrics(out: Exposition) -> None:
    """Stored archives by their last verification's outcome, and how stale the stalest check is."""
    checked = func.coalesce(Job.last_verified_at, Job.archived_at)  # never verified: stale since archived
    rows = db.session.execute(
        select(Job.verify_outcome, func.count(), func.min(checked))
        .where(has_stored_archive())
        .group_by(Job.verify_outcome)
    ).all()
    counts = dict.fromkeys((*VERIFY_OUTCOMES, "never"), 0)
    for outcome, count, _oldest in rows:
        counts[outcome or "never"] += count
    out.metric(
        "agar_archives_verified",
        "gauge",
        "Stored archives (archived or in the trash) by the outcome of their last verification.",
        [({"outcome": outcome}, count) for outcome, count in counts.items()],
    )
    oldest = min((row[2] for row in rows if row[2] is not None), default=None)
    age = max(0, int((utcnow() - oldest).total_seconds())) if oldest else 0
    out.metric(
        "agar_archive_oldest_verification_age_seconds",
        "gauge",
        "Time since the stored archive checked longest ago was verified (or archived, if never verified).",
        [({}, age)],
    )


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@bp.get("/metrics")
def metrics() -> Any:
    """The figures, for an admin's API token (a Prometheus scrape job's ``authorization`` credentials).

    They sum every user's runs, the disk and the alerts: not for anonymous callers nor members.
    """
    caller = bearer_caller(db.session, request.headers.get("Authorization"))
    if caller is None or not caller.is_admin:
        status = 403 if caller is not None else 401
        return Response(
            "an admin's API token is needed: Authorization: Bearer <token>\n",
            status=status,
            content_type="text/plain; charset=utf-8",
            headers={"WWW-Authenticate": "Bearer"} if status == 401 else {},
        )
    out = Exposition()
    stats = storage_stats(db.session, settings().scraper_data_path)
    tiers = stats["tiers"]
    out.metric("agar_runs", "gauge", "Runs per tier.", [({"tier": t}, v["runs"]) for t, v in tiers.items()])
    out.metric(
        "agar_stored_bytes",
        "gauge",
        "Bytes on disk per tier (active: run folders; archived, trash: archives).",
        [({"tier": t}, v["bytes"]) for t, v in tiers.items() if t != "purged"],
    )
    compression = stats["compression"]
    out.metric(
        "agar_archived_original_bytes",
        "gauge",
        "Size of the archived runs before compression.",
        [({}, compression["original_bytes"])],
    )
    out.metric(
        "agar_compression_saved_bytes",
        "gauge",
        "Bytes compression saves on the archived runs.",
        [({}, compression["saved_bytes"])],
    )
    events = db.session.execute(
        select(LifecycleEvent.action, LifecycleEvent.outcome, func.count())
        .group_by(LifecycleEvent.action, LifecycleEvent.outcome)
        .order_by(LifecycleEvent.action, LifecycleEvent.outcome)
    ).all()
    out.metric(
        "agar_lifecycle_events_total",
        "counter",
        "Lifecycle attempts by action and outcome.",
        [({"action": action, "outcome": outcome}, count) for action, outcome, count in events],
    )
    alerts = db.session.execute(
        select(Alert.kind, Alert.severity, func.count())
        .where(Alert.resolved_at.is_(None))
        .group_by(Alert.kind, Alert.severity)
        .order_by(Alert.kind)
    ).all()
    out.metric(
        "agar_alerts_open",
        "gauge",
        "Open alerts by kind and severity.",
        [({"kind": kind, "severity": severity}, count) for kind, severity, count in alerts],
    )
    disk = stats["disk"]
    out.metric("agar_disk_total_bytes", "gauge", "Size of the disk holding the runs.", [({}, disk["total_bytes"])])
    out.metric("agar_disk_free_bytes", "gauge", "Free space on the disk holding the runs.", [({}, disk["free_bytes"])])
    _verification_metrics(out)
    try:
        queue = Queue(QUEUE_NAME, connection=redis_connection())
        states = {
            "queued": queue.count,
            "started": queue.started_job_registry.count,
            "failed": queue.failed_job_registry.count,
            "scheduled": queue.scheduled_job_registry.count,
        }
        out.metric("agar_redis_up", "gauge", "Whether Redis answered.", [({}, 1)])
        out.metric(
            "agar_tasks",
            "gauge",
            "Background tasks by state.",
            [({"queue": QUEUE_NAME, "state": state}, count) for state, count in states.items()],
        )
    except (RedisError, OSError):
        out.metric("agar_redis_up", "gauge", "Whether Redis answered.", [({}, 0)])
    return Response(out.text(), content_type=CONTENT_TYPE)
