"""Real RQ worker processes against real Redis: tasks run, report progress, and never double-archive."""

import uuid
from pathlib import Path

import pytest
from rq import Queue
from rq.job import Job as RQJob
from sqlalchemy import func, select

from app import tasks
from app.lifecycle.naming import find_run_folder
from app.models import Job, LifecycleEvent
from tests.support import run_burst_worker

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


@pytest.fixture
def worker_env(process_env):
    return process_env


def run_workers(env, count=1):
    return run_burst_worker(env, count)


def test_a_worker_runs_the_nightly_archive_task(lc, make_run, redis_db, worker_env):
    due = [make_run(days_ago=10) for _ in range(3)]
    young = make_run(days_ago=1)
    lc.session.commit()
    queue = Queue(tasks.QUEUE_NAME, connection=redis_db)
    rq_job = queue.enqueue(tasks.archive_old_runs, "scheduler")
    run_workers(worker_env)
    rq_job = RQJob.fetch(rq_job.id, connection=redis_db)
    assert rq_job.get_status() == "finished"
    assert rq_job.meta["progress"] == 100
    assert rq_job.meta["result"]["succeeded"] == 3
    lc.session.expire_all()
    for job in due:
        row = lc.session.get(Job, job.id)
        assert row.archived_at is not None and lc.store.exists(row.archive_path)
    assert lc.session.get(Job, young.id).archived_at is None


def test_per_run_tasks_archive_restore_delete(lc, make_run, redis_db, worker_env):
    job = make_run(days_ago=10)
    lc.session.commit()
    queue = Queue(tasks.QUEUE_NAME, connection=redis_db)
    archive = queue.enqueue(tasks.archive_job, str(job.id), "ada", "manual")
    run_workers(worker_env)
    restore = queue.enqueue(tasks.restore_job, str(job.id), "ada")
    run_workers(worker_env)
    lc.session.expire_all()
    assert lc.session.get(Job, job.id).restored_at is not None
    assert find_run_folder(lc.settings.jobs_path, job.folder_name, job.id) is not None
    delete = queue.enqueue(tasks.delete_job, str(job.id), "ada", "no longer needed")
    run_workers(worker_env)
    for rq_job in (archive, restore, delete):
        fetched = RQJob.fetch(rq_job.id, connection=redis_db)
        assert fetched.get_status() == "finished" and fetched.meta["result"]["outcome"] == "succeeded"
    lc.session.expire_all()
    assert lc.session.get(Job, job.id).deleted_by == "ada"


def test_a_failing_task_fails_loudly_and_is_scheduled_for_retry(lc, redis_db, worker_env):
    rq_job = tasks.enqueue(tasks.archive_job, str(uuid.uuid4()), "ada")
    run_workers(worker_env)
    fetched = RQJob.fetch(rq_job.id, connection=redis_db)
    assert fetched.get_status() in ("scheduled", "failed")
    assert fetched.retries_left == 2


def test_two_workers_racing_over_200_due_runs_archive_each_exactly_once(lc, make_run, redis_db, worker_env):
    runs = [make_run({"r.json": f'{{"n": {i}}}'}, days_ago=10) for i in range(200)]
    lc.session.commit()
    queue = Queue(tasks.QUEUE_NAME, connection=redis_db)
    first = queue.enqueue(tasks.archive_old_runs, "scheduler", job_timeout=600)
    second = queue.enqueue(tasks.archive_old_runs, "scheduler", job_timeout=600)
    run_workers(worker_env, count=2)
    fetched = [RQJob.fetch(j.id, connection=redis_db) for j in (first, second)]
    assert [j.get_status() for j in fetched] == ["finished", "finished"], [
        j.latest_result().exc_string for j in fetched
    ]
    results = [j.meta["result"] for j in fetched]
    assert sum(r["succeeded"] for r in results) == 200
    assert sum(r["failed"] for r in results) == 0
    lc.session.expire_all()
    succeeded = lc.session.execute(
        select(LifecycleEvent.job_id, func.count())
        .where(LifecycleEvent.action == "archive", LifecycleEvent.outcome == "succeeded")
        .group_by(LifecycleEvent.job_id)
    ).all()
    assert len(succeeded) == 200 and {count for _id, count in succeeded} == {1}
    keys = list(lc.store.keys())
    assert len(keys) == 200 and list(lc.store.partials()) == []
    assert all(lc.session.get(Job, run.id).archive_path in keys for run in runs)
