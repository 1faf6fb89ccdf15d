"""``/metrics``: the product's figures in the Prometheus text format (SPEC §7), for an admin's token.

Runs and bytes per tier (``restored``: working copies of archived runs), what compression saved,
every lifecycle attempt by action and outcome (a counter: events are never deleted), open alerts,
the disk, archive verification, and the RQ queue. ``prometheus_client`` writes the text format;
``ProductCollector`` reads the figures on each scrape: the storage figures from the cache the API
and the storage page share (app.monitoring.figures), the rest from the database and Redis. Redis
being down is itself a figure (``agar_redis_up 0``), not a failed scrape.

Values are written as Python's shortest exact float (``4.77690001e+08``): a byte count parses
back to exactly its integer up to 2**53 bytes (8 PiB), far above any disk here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, request
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.exceptions import RedisError
from sqlalchemy import func, select

from app.auth.users import bearer_caller
from app.extensions import db, redis_connection, settings
from app.lifecycle.verification import has_stored_archive
from app.models import VERIFY_OUTCOMES, Alert, Job, LifecycleEvent, utcnow
from app.monitoring.figures import site_figures
from app.tasks import QUEUE_NAME, task_queue

bp = Blueprint("metrics", __name__)
# The classic text format (0.0.4), which every Prometheus reads. prometheus_client 0.26 labels the
# same text "version=1.0.0"; our names and labels are plain ASCII, so 0.0.4 describes it exactly.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _gauge(name: str, help_text: str, labels: tuple[str, ...], samples: list[tuple[tuple[str, ...], float]]) -> Metric:
    family = GaugeMetricFamily(name, help_text, labels=list(labels))
    for values, value in samples:
        family.add_metric(list(values), value)
    return family


class ProductCollector(Collector):
    """Reads the figures when Prometheus scrapes, inside the request's app context."""

    def collect(self) -> Iterator[Metric]:
        stats = site_figures(db.session, settings().scraper_data_path, redis_connection())
        tiers = stats["tiers"]
        yield _gauge("agar_runs", "Runs per tier.", ("tier",), [((t,), v["runs"]) for t, v in tiers.items()])
        yield _gauge(
            "agar_stored_bytes",
            "Bytes on disk per tier (active: run folders; archived, trash: archives; restored: working copies).",
            ("tier",),
            [((t,), v["bytes"]) for t, v in tiers.items() if t != "purged"],
        )
        compression = stats["compression"]
        yield GaugeMetricFamily(
            "agar_archived_original_bytes",
            "Size of the archived runs before compression.",
            value=compression["original_bytes"],
        )
        yield GaugeMetricFamily(
            "agar_compression_saved_bytes",
            "Bytes compression saves on the archived runs.",
            value=compression["saved_bytes"],
        )
        yield self._lifecycle_events()
        yield self._open_alerts()
        disk = stats["disk"]
        yield GaugeMetricFamily(
            "agar_disk_total_bytes", "Size of the disk holding the runs.", value=disk["total_bytes"]
        )
        yield GaugeMetricFamily(
            "agar_disk_free_bytes", "Free space on the disk holding the runs.", value=disk["free_bytes"]
        )
        yield from self._verification()
        yield from self._queue()

    def _lifecycle_events(self) -> Metric:
        events = db.session.execute(
            select(LifecycleEvent.action, LifecycleEvent.outcome, func.count())
            .group_by(LifecycleEvent.action, LifecycleEvent.outcome)
            .order_by(LifecycleEvent.action, LifecycleEvent.outcome)
        ).all()
        family = CounterMetricFamily(
            "agar_lifecycle_events_total", "Lifecycle attempts by action and outcome.", labels=["action", "outcome"]
        )
        for action, outcome, count in events:
            family.add_metric([action, outcome], count)
        return family

    def _open_alerts(self) -> Metric:
        alerts = db.session.execute(
            select(Alert.kind, Alert.severity, func.count())
            .where(Alert.resolved_at.is_(None))
            .group_by(Alert.kind, Alert.severity)
            .order_by(Alert.kind)
        ).all()
        return _gauge(
            "agar_alerts_open",
            "Open alerts by kind and severity.",
            ("kind", "severity"),
            [((kind, severity), count) for kind, severity, count in alerts],
        )

    def _verification(self) -> Iterator[Metric]:
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
        yield _gauge(
            "agar_archives_verified",
            "Stored archives (archived or in the trash) by the outcome of their last verification.",
            ("outcome",),
            [((outcome,), count) for outcome, count in counts.items()],
        )
        oldest = min((row[2] for row in rows if row[2] is not None), default=None)
        age = max(0, int((utcnow() - oldest).total_seconds())) if oldest else 0
        yield GaugeMetricFamily(
            "agar_archive_oldest_verification_age_seconds",
            "Time since the stored archive checked longest ago was verified (or archived, if never verified).",
            value=age,
        )

    def _queue(self) -> Iterator[Metric]:
        """Whether Redis answered and, if it did, the background tasks by state."""
        try:
            queue = task_queue(redis_connection())
            states = {
                "queued": queue.count,
                "started": queue.started_job_registry.count,
                "failed": queue.failed_job_registry.count,
                "scheduled": queue.scheduled_job_registry.count,
            }
        except (RedisError, OSError):
            yield GaugeMetricFamily("agar_redis_up", "Whether Redis answered.", value=0)
            return
        yield GaugeMetricFamily("agar_redis_up", "Whether Redis answered.", value=1)
        yield _gauge(
            "agar_tasks",
            "Background tasks by state.",
            ("queue", "state"),
            [((QUEUE_NAME, state), count) for state, count in states.items()],
        )


# auto_describe off: registering must not scrape (there is no app context at import).
REGISTRY = CollectorRegistry(auto_describe=False)
REGISTRY.register(ProductCollector())


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
    return Response(generate_latest(REGISTRY), content_type=CONTENT_TYPE)
