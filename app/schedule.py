"""The daily cadence: enqueue the lifecycle passes on their cron schedules, in UTC.

Why our own loop rather than rq-scheduler or ``rq cron``: rq-scheduler is unmaintained and may
double-enqueue with several instances; RQ's CronScheduler has no leader election and never makes
up a missed run. Here every occurrence of a schedule has one id (``sched-archive-20250113T0200``)
and is claimed with an atomic Redis ``SET NX`` before it is enqueued, so any number of scheduler
processes on any number of machines enqueue it exactly once. At start the scheduler claims the
latest past occurrence too, so a night missed while it was down runs as soon as it is back (the
passes are idempotent, so one catch-up covers any number of missed nights).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from croniter import croniter
from redis import Redis

from app.config import Settings
from app.tasks import enqueue

log = logging.getLogger("agar.schedule")

CLAIM_TTL = timedelta(days=8)
POLL_SECONDS = 20.0
# The scheduler's "I am alive", written at start and after every poll; /healthz calls it down once
# HEARTBEAT_MISSED_POLLS polls have passed without one. Kept a day so the last beat stays visible.
HEARTBEAT_KEY = "agar:scheduler:heartbeat"
HEARTBEAT_MISSED_POLLS = 3
HEARTBEAT_TTL = timedelta(days=1)


@dataclass(frozen=True)
class ScheduledTask:
    """One recurring task: a name, a cron expression (UTC), the RQ function to enqueue and its
    timeout (a key of ``app.tasks.TIMEOUTS``)."""

    name: str
    cron: str
    function: str
    timeout: str = "batch"


def scheduled_tasks(settings: Settings) -> list[ScheduledTask]:
    """Return the product's recurring tasks, from the configured cron expressions."""
    return [
        ScheduledTask("archive", settings.archive_schedule, "app.tasks.archive_old_runs"),
        ScheduledTask("cleanup", settings.cleanup_schedule, "app.tasks.cleanup_old_runs"),
        ScheduledTask("verify", settings.verify_schedule, "app.tasks.verify_archives"),
        ScheduledTask("snapshot", settings.snapshot_schedule, "app.tasks.take_storage_snapshot", timeout="short"),
        ScheduledTask("alerts", settings.alerts_schedule, "app.tasks.check_alerts", timeout="short"),
        ScheduledTask("notices", settings.notice_schedule, "app.tasks.send_deletion_notices", timeout="short"),
    ]


def occurrence_id(task: ScheduledTask, moment: datetime) -> str:
    """Return the id shared by every scheduler for this occurrence of the task."""
    return f"sched-{task.name}-{moment.astimezone(UTC):%Y%m%dT%H%M}"


def previous_occurrence(task: ScheduledTask, now: datetime) -> datetime:
    return croniter(task.cron, now.astimezone(UTC)).get_prev(datetime)


def next_occurrence(task: ScheduledTask, now: datetime) -> datetime:
    return croniter(task.cron, now.astimezone(UTC)).get_next(datetime)


def claim_and_enqueue(connection: Redis, task: ScheduledTask, moment: datetime) -> bool:
    """Enqueue this occurrence unless another scheduler already has; return whether we did."""
    job_id = occurrence_id(task, moment)
    claimed = connection.set(f"agar:schedule:{job_id}", "1", nx=True, ex=int(CLAIM_TTL.total_seconds()))
    if not claimed:
        return False
    enqueue(
        task.function,
        timeout=task.timeout,
        job_id=job_id,
        description=f"scheduled {task.name} for {moment:%Y-%m-%d %H:%M} UTC",
        meta={"scheduled_for": moment.isoformat(), "actor": "scheduler"},
        connection=connection,
    )
    log.info("enqueued %s", job_id)
    return True


def catch_up(connection: Redis, tasks: Iterable[ScheduledTask], now: datetime) -> list[str]:
    """Enqueue the latest past occurrence of each task if no scheduler has; return their ids."""
    enqueued = []
    for task in tasks:
        moment = previous_occurrence(task, now)
        if claim_and_enqueue(connection, task, moment):
            enqueued.append(occurrence_id(task, moment))
    return enqueued


def tick(connection: Redis, tasks: Iterable[ScheduledTask], since: datetime, now: datetime) -> list[str]:
    """Enqueue every occurrence in ``(since, now]``; return their ids."""
    enqueued = []
    for task in tasks:
        moment = next_occurrence(task, since)
        while moment <= now:
            if claim_and_enqueue(connection, task, moment):
                enqueued.append(occurrence_id(task, moment))
            moment = next_occurrence(task, moment)
    return enqueued


def run_scheduler_loop(
    app,  # type: ignore[no-untyped-def]
    connection: Redis,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    poll_seconds: float = POLL_SECONDS,
    should_stop: Callable[[], bool] = lambda: False,
) -> None:
    """Run forever: catch up once, then enqueue each occurrence as its time comes."""
    tasks = scheduled_tasks(app.extensions["agar.settings"])
    for task in tasks:
        log.info("schedule %s: %r (UTC), next at %s", task.name, task.cron, next_occurrence(task, clock()))
    since = clock()
    catch_up(connection, tasks, since)
    beat(connection)
    while not should_stop():
        time.sleep(poll_seconds)
        now = clock()
        tick(connection, tasks, since, now)
        beat(connection)
        since = now


def beat(connection: Redis) -> datetime:
    """Record that the scheduler is alive, at the wall-clock time (not the schedule's clock)."""
    moment = datetime.now(UTC)
    connection.set(HEARTBEAT_KEY, moment.isoformat(), ex=int(HEARTBEAT_TTL.total_seconds()))
    return moment


def last_heartbeat(connection: Redis) -> datetime | None:
    """When the scheduler last said it was alive, or None if no scheduler has for a day."""
    raw = connection.get(HEARTBEAT_KEY)
    return datetime.fromisoformat(raw.decode() if isinstance(raw, bytes) else raw) if raw else None
