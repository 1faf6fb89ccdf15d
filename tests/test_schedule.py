"""The scheduler: cron in UTC, one enqueue per occurrence however many schedulers run, catch-up."""

from datetime import UTC, datetime

from rq import Queue

from app.config import load_settings
from app.schedule import (
    ScheduledTask,
    catch_up,
    next_occurrence,
    occurrence_id,
    previous_occurrence,
    scheduled_tasks,
    tick,
)
from app.tasks import QUEUE_NAME

ARCHIVE = ScheduledTask("archive", "0 2 * * *", "app.tasks.archive_old_runs")
CLEANUP = ScheduledTask("cleanup", "0 3 * * *", "app.tasks.cleanup_old_runs")


def queued_ids(redis_db):
    return sorted(Queue(QUEUE_NAME, connection=redis_db).job_ids)


def test_the_configured_crons_become_the_schedule(app):
    tasks = {t.name: t for t in scheduled_tasks(app.extensions["agar.settings"])}
    assert tasks["archive"].cron == "0 2 * * *" and tasks["archive"].function == "app.tasks.archive_old_runs"
    assert tasks["cleanup"].cron == "0 3 * * *" and tasks["cleanup"].function == "app.tasks.cleanup_old_runs"
    assert tasks["verify"].cron == "0 4 * * 0" and tasks["verify"].function == "app.tasks.verify_archives"


def test_the_verification_pass_follows_verify_schedule(make_app):
    app = make_app(VERIFY_SCHEDULE="30 5 * * 6")
    tasks = {t.name: t for t in scheduled_tasks(app.extensions["agar.settings"])}
    assert tasks["verify"].cron == "30 5 * * 6" and tasks["verify"].function == "app.tasks.verify_archives"


def test_the_snapshot_and_the_alert_check_follow_their_settings(make_app, redis_db):
    app = make_app(SNAPSHOT_SCHEDULE="30 */6 * * *", ALERTS_SCHEDULE="*/5 * * * *")
    tasks = {t.name: t for t in scheduled_tasks(app.extensions["agar.settings"])}
    since, now = datetime(2025, 1, 13, 5, 0, tzinfo=UTC), datetime(2025, 1, 13, 6, 40, tzinfo=UTC)
    assert tick(redis_db, [tasks["snapshot"]], since, now) == ["sched-snapshot-20250113T0630"]
    assert len(tick(redis_db, [tasks["alerts"]], since, now)) == 20  # 05:05 to 06:40, every 5 minutes


def test_by_default_snapshots_are_hourly_and_the_alert_check_every_quarter_hour(redis_db):
    tasks = {t.name: t for t in scheduled_tasks(load_settings({}))}
    since, now = datetime(2025, 1, 13, 5, 0, tzinfo=UTC), datetime(2025, 1, 13, 6, 0, tzinfo=UTC)
    assert tick(redis_db, [tasks["snapshot"], tasks["alerts"]], since, now) == [
        "sched-snapshot-20250113T0600",
        "sched-alerts-20250113T0515",
        "sched-alerts-20250113T0530",
        "sched-alerts-20250113T0545",
        "sched-alerts-20250113T0600",
    ]


def test_scheduled_tasks_are_queued_with_the_retry_policy_and_timeouts_of_every_task(redis_db):
    from app import tasks as queued_tasks

    snapshot = ScheduledTask("snapshot", "0 * * * *", "app.tasks.take_storage_snapshot", timeout="short")
    tick(
        redis_db, [ARCHIVE, snapshot], datetime(2025, 1, 13, 1, 30, tzinfo=UTC), datetime(2025, 1, 13, 2, 0, tzinfo=UTC)
    )
    queue = Queue(QUEUE_NAME, connection=redis_db)
    archive, hourly = queue.fetch_job("sched-archive-20250113T0200"), queue.fetch_job("sched-snapshot-20250113T0200")
    for job in (archive, hourly):
        assert job.retries_left == queued_tasks.RETRY.max and job.retry_intervals == queued_tasks.RETRY.intervals
        assert job.meta["actor"] == "scheduler" and job.meta["progress"] == 0
    assert archive.timeout == queued_tasks.TIMEOUTS["batch"] and hourly.timeout == queued_tasks.TIMEOUTS["short"]
    assert archive.meta["scheduled_for"] == "2025-01-13T02:00:00+00:00"
    assert archive.description == "scheduled archive for 2025-01-13 02:00 UTC"


def test_cron_is_evaluated_in_utc():
    at = datetime(2025, 1, 13, 1, 59, tzinfo=UTC)
    assert next_occurrence(ARCHIVE, at) == datetime(2025, 1, 13, 2, 0, tzinfo=UTC)


def test_each_occurrence_is_enqueued_once_whatever_the_number_of_schedulers(redis_db):
    since = datetime(2025, 1, 13, 1, 0, tzinfo=UTC)
    now = datetime(2025, 1, 13, 3, 30, tzinfo=UTC)
    first = tick(redis_db, [ARCHIVE, CLEANUP], since, now)
    second = tick(redis_db, [ARCHIVE, CLEANUP], since, now)  # another scheduler, same window
    assert first == ["sched-archive-20250113T0200", "sched-cleanup-20250113T0300"]
    assert second == []
    assert queued_ids(redis_db) == first
    job = Queue(QUEUE_NAME, connection=redis_db).fetch_job("sched-archive-20250113T0200")
    assert job.func_name == "app.tasks.archive_old_runs" and job.retries_left == 3


def test_nothing_is_enqueued_before_its_time(redis_db):
    since = datetime(2025, 1, 13, 2, 0, tzinfo=UTC)
    assert tick(redis_db, [ARCHIVE], since, datetime(2025, 1, 14, 1, 59, tzinfo=UTC)) == []


def test_a_missed_night_is_caught_up_once_at_start(redis_db):
    start = datetime(2025, 1, 13, 9, 15, tzinfo=UTC)  # the scheduler was down at 02:00
    assert catch_up(redis_db, [ARCHIVE], start) == ["sched-archive-20250113T0200"]
    assert catch_up(redis_db, [ARCHIVE], start) == []  # a second instance, or a restart
    tick(redis_db, [ARCHIVE], start, datetime(2025, 1, 13, 23, 0, tzinfo=UTC))
    assert queued_ids(redis_db) == ["sched-archive-20250113T0200"]


def test_occurrence_ids_are_valid_rq_ids():
    import re

    assert re.fullmatch(r"[A-Za-z0-9_-]+", occurrence_id(ARCHIVE, datetime(2025, 1, 13, 2, 0, tzinfo=UTC)))


def test_the_scheduler_process_catches_up_once_even_with_two_instances(redis_db, process_env):
    import subprocess
    import sys
    import time
    from pathlib import Path

    env = process_env
    root = Path(__file__).resolve().parent.parent
    schedulers = [
        subprocess.Popen(
            [sys.executable, "worker.py", "scheduler"],
            cwd=root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    try:
        deadline = time.monotonic() + 30
        while len(queued_ids(redis_db)) < 6 and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1)
    finally:
        for process in schedulers:
            process.terminate()
            process.wait(timeout=10)
    ids = queued_ids(redis_db)
    now = datetime.now(UTC)
    every = scheduled_tasks(load_settings({}))  # archive, cleanup, verify, snapshot, alert check, notices
    expected = sorted(occurrence_id(task, previous_occurrence(task, now)) for task in every)
    assert ids == expected and len(ids) == 6
