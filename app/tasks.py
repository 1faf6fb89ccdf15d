"""RQ tasks: thin doors into the lifecycle core. Ids in, idempotent, safe to retry.

Each task runs inside the app context the worker provides, reports progress in its RQ job's
meta (``progress`` 0–100, ``result`` when done) and raises when something failed, so RQ retries
it with backoff and the failure shows.
"""

from __future__ import annotations

import os
import re
import socket
import time
import uuid
from datetime import datetime
from typing import Any

from redis import Redis
from rq import Queue, Retry, Worker, get_current_job
from rq.exceptions import NoSuchJobError
from rq.job import Job as RQJob
from rq.registry import StartedJobRegistry

from app.extensions import db, lifecycle, redis_connection, settings
from app.lifecycle import access, archival, bulk, deletion, passes, verification
from app.lifecycle.access import Actor
from app.lifecycle.events import SUPERSEDED, state_token
from app.lifecycle.naming import parse_job_id
from app.lifecycle.notices import NoticesUndelivered
from app.models import utcnow
from app.monitoring.alert_check import check_alerts as check_alerts_now
from app.monitoring.alert_check import webhook_notifier
from app.monitoring.snapshots import take_snapshot
from app.notices import send_notices_now

QUEUE_NAME = "agar"
TASK_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_TASK_STATES = {
    "queued": "queued",
    "deferred": "queued",
    "scheduled": "queued",
    "started": "started",
    "finished": "finished",
    "failed": "failed",
    "stopped": "failed",
    "canceled": "failed",
}
# One retry policy and one table of timeouts for every task, whoever enqueues it (a door, the CLI,
# the scheduler): a pass over all runs ("batch"), one run ("run"), a snapshot or a check ("short").
RETRY = Retry(max=3, interval=[30, 120, 600])
TIMEOUTS = {"batch": 6 * 3600, "run": 3600, "short": 600}
RESULT_TTL = 7 * 24 * 3600
FAILURE_TTL = 30 * 24 * 3600
INTERRUPTED_TASK = "interrupted: the worker running it stopped before it finished"


def task_queue(connection: Redis | None = None) -> Queue:
    """The queue every task goes on (the app's Redis unless ``connection`` is given)."""
    return Queue(QUEUE_NAME, connection=connection if connection is not None else redis_connection())


def enqueue(  # type: ignore[no-untyped-def]
    function: Any,
    *args: Any,
    timeout: str = "run",
    job_id: str | None = None,
    owner: str | None = None,
    description: str | None = None,
    meta: dict[str, Any] | None = None,
    connection: Redis | None = None,
    **kwargs: Any,
):
    """Put a task on the queue with our retry policy and timeout; return the RQ job.

    ``owner`` (a user id) is kept in the task's meta so the API shows a member only their tasks;
    ``meta`` adds to it (the scheduler's ``scheduled_for``). ``function`` may be an import path.
    """
    return task_queue(connection).enqueue(
        function,
        args=args,
        kwargs=kwargs,
        job_id=job_id,
        job_timeout=TIMEOUTS[timeout],
        retry=RETRY,
        result_ttl=RESULT_TTL,
        failure_ttl=FAILURE_TTL,
        description=description,
        meta={"progress": 0, "owner": owner, **(meta or {})},
    )


def task_state(task_id: str, actor: Actor) -> dict[str, Any] | None:
    """State, progress (0-100) and result or error of a task the user may see; None if there is none.

    Members see only the tasks they started; ``task_id`` must already match ``TASK_ID``.
    """
    try:
        task = RQJob.fetch(task_id, connection=redis_connection())
    except NoSuchJobError:
        return None
    if not access.owns(actor, task.meta.get("owner")):
        return None
    status = _TASK_STATES.get(task.get_status(refresh=False) or "queued", "queued")
    if status == "started" and _worker_gone(task.connection, task.worker_name):
        # Said as it is; the next worker to start (or RQ, once its heartbeat runs out) ends it in
        # the registries too, retrying it while it has attempts left. A GET changes nothing.
        return {"task_id": task.id, "status": "failed", "progress": 0, "error": INTERRUPTED_TASK}
    body: dict[str, Any] = {"task_id": task.id, "status": status, "progress": int(task.meta.get("progress", 0))}
    if "bytes_total" in task.meta:  # one archive or restore: how far, in bytes
        body["bytes_done"], body["bytes_total"] = task.meta.get("bytes_done", 0), task.meta["bytes_total"]
    if "runs" in task.meta:  # a bulk action: each run's outcome as it comes, the refused ones first
        body["runs"], body["refused"] = task.meta["runs"], task.meta.get("refused", [])
        body["action"] = task.meta.get("action")
    if status == "finished":
        body["progress"] = 100
        body["result"] = task.meta.get("result", task.return_value())
        if isinstance(body["result"], dict) and body["result"].get("outcome") == SUPERSEDED:
            body["status"] = SUPERSEDED  # it did nothing: the run changed since it was asked
    if status == "failed":
        latest = task.latest_result()
        body["error"] = (latest.exc_string or "failed").strip().splitlines()[-1] if latest else "failed"
        if "AbandonedJobError" in body["error"]:
            body["error"] = INTERRUPTED_TASK
    if status == "queued" and task.retries_left is not None:
        body.update(_retrying(task) or {})
    return body


def _retrying(task: RQJob) -> dict[str, Any] | None:
    """For a task waiting for its next attempt after a failure: ``retrying``, that attempt (1 is the
    first run), how many there can be, and the last attempt's error. None for one that never failed."""
    failed = int(task.meta.get("failed_attempts", 0))
    if not failed:
        return None
    return {
        "status": "retrying",
        "progress": 0,
        "attempt": failed + 1,
        "max_attempts": failed + (task.retries_left or 0) + 1,  # RQ counts retries_left down from Retry.max
        "error": task.meta.get("last_error") or "failed",
    }


def record_failed_attempt(task: RQJob, exc_string: str) -> None:
    """Count a failed attempt and keep its error in the task's meta (the worker calls this on every failure).

    RQ stores no error for an attempt it is about to retry; without this a task waiting for its retry
    would show as merely ``queued``.
    """
    lines = (exc_string or "").strip().splitlines()
    meta = task.get_meta(refresh=True)  # the task may have saved progress since the worker loaded it
    meta["failed_attempts"] = int(meta.get("failed_attempts", 0)) + 1
    meta["last_error"] = lines[-1][:500] if lines else "failed"
    task.save_meta()


def _worker_gone(connection: Any, name: str | None) -> bool:
    """Whether the worker named ``name`` is dead: its key gone, or on this host its process gone."""
    if not name:
        return True
    worker = Worker.find_by_key(Worker.redis_worker_namespace_prefix + name, connection=connection)
    if worker is None:
        return True
    if worker.hostname == socket.gethostname() and worker.pid:
        try:
            os.kill(worker.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
    return False


def end_interrupted_tasks(connection: Any) -> list[str]:
    """End the tasks a dead worker left ``started`` now, not when their heartbeat runs out.

    RQ ends a started task whose heartbeat expired (about 90 s) as abandoned: retried while it has
    attempts left, else failed. A task whose worker is known dead (its key gone, or its process
    gone on this host: a ``make run`` restart) is handed to the same mechanism at once.
    """
    registry = StartedJobRegistry(QUEUE_NAME, connection=connection)
    ended = []
    for task_id, execution_id in registry.get_job_and_execution_ids():
        try:
            task = RQJob.fetch(task_id, connection=connection)
        except NoSuchJobError:
            continue
        if _worker_gone(connection, task.worker_name):
            record_failed_attempt(task, INTERRUPTED_TASK)
            connection.zadd(registry.key, {f"{task_id}:{execution_id}": 1}, xx=True)  # its heartbeat: long past
            ended.append(task_id)
    if ended:
        registry.cleanup()
    return ended


def repair_at_worker_start() -> dict[str, Any]:
    """What a worker does before it takes work (SPEC §3): end the tasks a dead worker left started,
    then reconcile, so a killed archival leaves no ``.partial`` and its attempt shows as interrupted."""
    from app.lifecycle.reconcile import reconcile

    interrupted = end_interrupted_tasks(redis_connection())
    report = reconcile(lifecycle(), actor="worker start")
    return {"tasks_interrupted": interrupted, **report.as_dict()}


class _Progress:
    """Write ``progress`` into the RQ job's meta, at most twice a second."""

    def __init__(self) -> None:
        self.job = get_current_job()
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        if self.job is None or (time.monotonic() - self.last < 0.5 and done < total):
            return
        self.job.meta["progress"] = int(100 * done / total) if total else 100
        self.job.save_meta()
        self.last = time.monotonic()

    def bytes(self, done: int, total: int) -> None:
        """Progress of one archive or restore, in bytes (shown as ``bytes_done`` of ``bytes_total``)."""
        if self.job is None or (time.monotonic() - self.last < 0.5 and done < total):
            return
        self.job.meta.update(bytes_done=done, bytes_total=total)
        self(done, total)

    def finish(self, result: dict[str, Any]) -> dict[str, Any]:
        if self.job is not None:
            self.job.meta.update(progress=100, result=result)
            self.job.save_meta()
        return result


def _ids(job_ids: list[str] | None) -> list[uuid.UUID] | None:
    return [parse_job_id(value) for value in job_ids] if job_ids is not None else None


def _finish_pass(progress: _Progress, report: passes.PassReport) -> dict[str, Any]:
    result = progress.finish(report.as_dict())
    if report.failed:
        raise passes.PassIncomplete(f"{report.failed} run(s) failed: {'; '.join(report.errors[:5])}")
    return result


def _pass(run_pass, actor: str, before: str | None, job_ids: list[str] | None) -> dict:  # type: ignore[no-untyped-def]
    progress = _Progress()
    report = run_pass(
        lifecycle(),
        actor=actor,
        before=datetime.fromisoformat(before) if before else None,
        job_ids=_ids(job_ids),
        progress=progress,
    )
    return _finish_pass(progress, report)


def archive_old_runs(actor: str = "scheduler", before: str | None = None, job_ids: list[str] | None = None) -> dict:
    return _pass(passes.archive_old_runs, actor, before, job_ids)


def cleanup_old_runs(actor: str = "scheduler", before: str | None = None, job_ids: list[str] | None = None) -> dict:
    return _pass(passes.cleanup_old_runs, actor, before, job_ids)


def migrate_folder_names(actor: str = "scheduler", rename: bool = False) -> dict:
    progress = _Progress()
    return _finish_pass(
        progress, passes.migrate_folder_names(lifecycle(), actor=actor, rename=rename, progress=progress)
    )


def make_archives_seekable(actor: str = "scheduler", job_ids: list[str] | None = None) -> dict:
    """Rewrite archives written before seekable blocks (``flask runs make-seekable --enqueue``)."""
    progress = _Progress()
    return _finish_pass(
        progress, passes.make_archives_seekable(lifecycle(), actor=actor, job_ids=_ids(job_ids), progress=progress)
    )


def take_storage_snapshot() -> dict:
    """The hourly storage snapshot (idempotent within the hour)."""
    snapshot, taken = take_snapshot(db.session, settings().scraper_data_path, utcnow())
    return _Progress().finish({"snapshot_id": snapshot.id, "taken": taken})


def check_alerts() -> dict:
    """Open, update and resolve alerts (disk, archive failures, unusual deletions); POST new ones to the webhook."""
    s = settings()
    notify = webhook_notifier(s.alert_webhook_url)
    report = check_alerts_now(db.session, s.scraper_data_path, s.storage_alert_percent, utcnow(), notify)
    return _Progress().finish(report)


def enqueue_for_run(function: Any, job: Any, actor: str, *args: Any, owner: str | None = None):  # type: ignore[no-untyped-def]
    """Queue one run's action carrying the run's state now: an attempt (a retry above all) that finds
    the run changed since - undeleted, restored, deleted by someone else - ends ``superseded``."""
    return enqueue(function, str(job.id), actor, *args, owner=owner, expected_state=state_token(job))


def _act_on_run(operation: Any, job_id: str, **options: Any) -> dict:
    """Run one lifecycle operation on one run, its bytes reported as the task's progress."""
    progress = _Progress()
    outcome = operation(lifecycle(progress=progress.bytes), parse_job_id(job_id), **options)
    return progress.finish({"job_id": job_id, "outcome": outcome})


def archive_job(job_id: str, actor: str, reason: str | None = None, expected_state: str | None = None) -> dict:
    return _act_on_run(
        archival.archive_run, job_id, actor=actor, reason=reason, manual=True, expected_state=expected_state
    )


def restore_job(job_id: str, actor: str, reason: str | None = None, expected_state: str | None = None) -> dict:
    return _act_on_run(archival.restore_run, job_id, actor=actor, reason=reason, expected_state=expected_state)


def delete_job(
    job_id: str, actor: str, reason: str, strategy: str | None = None, expected_state: str | None = None
) -> dict:
    return _act_on_run(
        deletion.delete_run, job_id, actor=actor, reason=reason, strategy=strategy, expected_state=expected_state
    )


FINAL = ("succeeded", "skipped", SUPERSEDED, "failed")  # a run of a bulk task that is done with


def bulk_runs(ask: dict, runs: list[list[str]], actor: str) -> dict:
    """One bulk action (``app.lifecycle.bulk``) on the runs given as [id, state token] pairs; each
    run's outcome is in the task's meta as it comes (``runs``), so the page shows progress per run.

    A retry (the worker stopped) goes on with the runs not done yet: those done keep their outcome.
    """
    task = get_current_job()
    meta = task.meta if task is not None else {}
    states: list[dict[str, Any]] = meta.get("runs") or [{"job_id": job_id, "status": "queued"} for job_id, _ in runs]
    todo = [index for index, state in enumerate(states) if state["status"] not in FINAL]

    def on_run(position: int, state: dict[str, Any]) -> None:
        index = todo[position]
        states[index] = {**states[index], **state}
        if task is not None:
            done = sum(1 for entry in states if entry["status"] in FINAL)
            task.meta.update(runs=states, progress=int(100 * done / len(states)))
            task.save_meta()

    bulk.act_on_runs(
        lifecycle(),
        bulk.BulkAsk.of(ask),
        [(parse_job_id(runs[index][0]), runs[index][1]) for index in todo],
        actor=actor,
        on_run=on_run,
    )
    counts = {status: sum(1 for entry in states if entry["status"] == status) for status in FINAL}
    return _Progress().finish({"action": ask["action"], "runs": states, **counts})


class ArchivesMismatch(Exception):
    """A verification pass found archives that do not match their records (see the result and alerts)."""


def verify_archives(actor: str = "scheduler", job_ids: list[str] | None = None, all: bool = False) -> dict:
    """Re-read stored archives against their records, within VERIFY_MAX_BYTES_PER_RUN unless ``all``."""
    progress = _Progress()
    report = verification.verify_archives(
        lifecycle(),
        actor=actor,
        max_bytes=settings().verify_max_bytes_per_run,
        job_ids=_ids(job_ids),
        all=all,
        progress=progress,
    )
    result = progress.finish(report.as_dict())
    if report.mismatches:
        if progress.job is not None:
            # A verdict is final: a retry would only read other archives and, finding them good,
            # end "finished" and hide this failure.
            progress.job.retries_left = 0
        raise ArchivesMismatch(
            f"{report.outcomes['corrupt']} corrupt and {report.outcomes['missing']} missing archive(s): "
            + "; ".join(report.problems[:5])
        )
    if report.failed:
        raise passes.PassIncomplete(f"{report.failed} run(s) could not be verified: {'; '.join(report.errors[:5])}")
    return result


def send_deletion_notices() -> dict:
    """The daily digest to each owner of the runs the cleanup deletes within DELETE_NOTICE_DAYS (mail,
    webhook); raises when one could not be sent (a notice_failed alert is open), so RQ tries again."""
    progress = _Progress()
    report = send_notices_now()
    result = progress.finish(report.as_dict())
    if report.failed:
        raise NoticesUndelivered(f"{len(report.failed)} digest(s) not sent: {'; '.join(report.failed[:5])}")
    return result
