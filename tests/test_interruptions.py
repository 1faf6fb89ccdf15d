"""A retry never acts on a run that changed, and interrupted work is seen and repaired (issue 9, points 4-5).

A task carries the run's state when it was asked (``state_token``); an attempt that finds the
run changed ends ``superseded`` and does nothing. A killed attempt leaves a failed lifecycle event
("interrupted"), a task whose worker died does not stay ``started``, and a worker reconciles
when it starts.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rq import Queue, Retry
from sqlalchemy import select

from app import tasks
from app.lifecycle import archival, deletion
from app.lifecycle.events import INTERRUPTED, state_token
from app.lifecycle.locks import RunBusy
from app.lifecycle.naming import find_run_folder
from app.models import LifecycleEvent
from tests.support import run_burst_worker, tree

ROOT = Path(__file__).resolve().parent.parent


def last_event(lc, job_id, action):
    lc.session.expire_all()
    query = select(LifecycleEvent).where(LifecycleEvent.job_id == job_id, LifecycleEvent.action == action)
    return lc.session.scalars(query.order_by(LifecycleEvent.id.desc()).limit(1)).first()


def test_a_delete_retried_after_the_owner_undeleted_and_restored_does_nothing(lc, make_run, member):
    """The issue's scenario: the delete lost the lock race, the owner changed the run, RQ retried."""
    job = make_run(days_ago=40, owner=member.user.id)
    archival.archive_run(lc, job.id, actor="scheduler")
    asked_against = state_token(archival.load_run(lc, job.id))

    with lc.locks.run(job.id), pytest.raises(RunBusy):  # the first attempt loses the race
        tasks.delete_job(str(job.id), "max", "tidy up", "soft", expected_state=asked_against)
    deletion.delete_run(lc, job.id, actor="olga", reason="mistake", strategy="soft")
    deletion.undelete_run(lc, job.id, actor="max")
    archival.restore_run(lc, job.id, actor="max")

    result = tasks.delete_job(str(job.id), "max", "tidy up", "soft", expected_state=asked_against)
    assert result["outcome"] == "superseded"
    row = archival.load_run(lc, job.id)
    assert row.deleted_at is None and row.restored_at is not None
    assert find_run_folder(lc.settings.jobs_path, row.folder_name, row.id) is not None
    event = last_event(lc, job.id, "delete")
    assert event.outcome == "skipped" and event.error.startswith("superseded")


@pytest.mark.parametrize("action", ["archive", "restore"])
def test_archive_and_restore_tasks_are_superseded_too(lc, make_run, action):
    job = make_run(days_ago=40)
    if action == "restore":
        archival.archive_run(lc, job.id, actor="scheduler")
    token = state_token(archival.load_run(lc, job.id))
    deletion.delete_run(lc, job.id, actor="ada", reason="changed meanwhile", strategy="soft")
    task = tasks.archive_job if action == "archive" else tasks.restore_job
    assert task(str(job.id), "ada", expected_state=token)["outcome"] == "superseded"
    assert archival.load_run(lc, job.id).deleted_at is not None


@pytest.mark.slow
def test_a_queued_delete_whose_run_changed_before_it_ran_shows_superseded(lc, make_run, admin, process_env):
    job = make_run(days_ago=40)
    archival.archive_run(lc, job.id, actor="scheduler")
    response = admin.delete(f"/api/scraper/jobs/{job.id}", json={"reason": "old"})
    assert response.status_code == 202
    task_id = response.json["task_id"]
    archival.restore_run(lc, job.id, actor="olga")  # someone restores it before a worker takes the task
    lc.session.commit()
    run_burst_worker(process_env)
    body = admin.get(f"/api/scraper/tasks/{task_id}").json
    assert body["status"] == "superseded" and body["result"]["outcome"] == "superseded"
    assert archival.load_run(lc, job.id).deleted_at is None


@pytest.mark.slow
def test_a_queued_delete_of_an_unchanged_run_still_deletes(lc, make_run, admin, process_env):
    job = make_run(days_ago=40)
    archival.archive_run(lc, job.id, actor="scheduler")
    task_id = admin.delete(f"/api/scraper/jobs/{job.id}", json={"reason": "old"}).json["task_id"]
    lc.session.commit()
    run_burst_worker(process_env)
    assert admin.get(f"/api/scraper/tasks/{task_id}").json["status"] == "finished"
    assert archival.load_run(lc, job.id).deleted_at is not None


@pytest.mark.slow
def test_a_killed_archival_is_recorded_interrupted_and_repaired_when_a_worker_starts(lc, make_run, process_env):
    job = make_run(days_ago=40)
    folder = find_run_folder(lc.settings.jobs_path, job.folder_name, job.id)
    original = tree(folder)
    lc.session.commit()
    killed = subprocess.run(
        [sys.executable, "-m", "tests.fault_runner", "archive", str(job.id), "archive.written"],
        cwd=ROOT,
        env=process_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert list(lc.store.partials())  # what SPEC §3 says the worker repairs at start
    assert last_event(lc, job.id, "archive").outcome == "started"
    deadline = time.monotonic() + 10
    while lc.locks.is_locked(job.id):
        assert time.monotonic() < deadline
        time.sleep(0.2)

    run_burst_worker(process_env)  # nothing queued: the worker only starts, repairs, and stops

    assert list(lc.store.partials()) == []
    event = last_event(lc, job.id, "archive")
    assert event.outcome == "failed" and event.error == INTERRUPTED
    assert tree(folder) == original
    from app.monitoring.alert_check import alert_conditions

    failures = alert_conditions(lc.session, lc.settings.scraper_data_path, 100, lc.now())["archive_failed"]
    assert failures is not None  # the alerts see it


def start_worker(env):
    return subprocess.Popen(
        [sys.executable, "worker.py"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: killed with its work horse, as a crash would
    )


def wait_for(predicate, seconds=30.0):
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.parametrize("retry", [None, Retry(max=2, interval=[600])])
def test_a_task_whose_worker_was_killed_ends_interrupted_not_started_forever(redis_db, admin, process_env, retry):
    queue = Queue(tasks.QUEUE_NAME, connection=redis_db)
    task = queue.enqueue("time.sleep", 60, retry=retry, meta={"progress": 0})
    worker = start_worker(process_env)
    try:
        wait_for(lambda: task.get_status(refresh=True) == "started")
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
    body = admin.get(f"/api/scraper/tasks/{task.id}").json
    assert body["status"] == "failed" and body["error"].startswith("interrupted")
    assert task.get_status(refresh=True) == "started"  # a GET changes nothing

    run_burst_worker(process_env)  # the next worker to start ends it in RQ's registries too
    body = admin.get(f"/api/scraper/tasks/{task.id}").json
    if retry is None:
        assert body["status"] == "failed" and body["error"].startswith("interrupted")
        assert task.get_status(refresh=True) == "failed"
    else:
        assert body["status"] == "retrying" and body["attempt"] == 2 and body["error"].startswith("interrupted")
