"""RQ tasks: thin doors into the lifecycle core. Ids in, idempotent, safe to retry.

Each task runs inside the app context the worker provides, reports progress in its RQ job's
meta (``progress`` 0–100, ``result`` when done) and raises when something failed, so RQ retries
it with backoff and the failure shows.
"""

from __future__ import annotations

import re
import time
import uuid
from datetime import datetime
from typing import Any

from rq import Queue, Retry, get_current_job
from rq.exceptions import NoSuchJobError
from rq.job import Job as RQJob

from app.extensions import db, lifecycle, redis_connection, settings
from app.lifecycle import archival, deletion, passes
from app.lifecycle.naming import parse_job_id
from app.models import utcnow
from app.monitoring import check_alerts as check_alerts_now
from app.monitoring import take_snapshot, webhook_notifier

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
RETRY = Retry(max=3, interval=[30, 120, 600])
TIMEOUTS = {"batch": 6 * 3600, "run": 3600}


def enqueue(  # type: ignore[no-untyped-def]
    function: Any, *args: Any, timeout: str = "run", job_id: str | None = None, owner: str | None = None, **kwargs: Any
):
    """Put a task on the queue with our retry policy and timeout; return the RQ job.

    ``owner`` (a user id) is kept in the task's meta so the API shows a member only their tasks.
    """
    queue = Queue(QUEUE_NAME, connection=redis_connection())
    return queue.enqueue(
        function,
        args=args,
        kwargs=kwargs,
        job_id=job_id,
        job_timeout=TIMEOUTS[timeout],
        retry=RETRY,
        result_ttl=7 * 24 * 3600,
        failure_ttl=30 * 24 * 3600,
        meta={"progress": 0, "owner": owner},
    )


def task_state(task_id: str, user_id: uuid.UUID, is_admin: bool) -> dict[str, Any] | None:
    """State, progress (0-100) and result or error of a task the user may see; None if there is none.

    Members see only the tasks they started; ``task_id`` must already match ``TASK_ID``.
    """
    try:
        task = RQJob.fetch(task_id, connection=redis_connection())
    except NoSuchJobError:
        return None
    if not is_admin and task.meta.get("owner") != str(user_id):
        return None
    status = _TASK_STATES.get(task.get_status(refresh=False) or "queued", "queued")
    body: dict[str, Any] = {"task_id": task.id, "status": status, "progress": int(task.meta.get("progress", 0))}
    if status == "finished":
        body["progress"] = 100
        body["result"] = task.meta.get("result", task.return_value())
    if status == "failed":
        latest = task.latest_result()
        body["error"] = (latest.exc_string or "failed").strip().splitlines()[-1] if latest else "failed"
    return body


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


def take_storage_snapshot() -> dict:
    """The hourly storage snapshot (idempotent within the hour)."""
    snapshot, taken = take_snapshot(db.session, settings().scraper_data_path, utcnow())
    return _Progress().finish({"snapshot_id": snapshot.id, "taken": taken})


def check_alerts() -> dict:
    """Open, update and resolve alerts (disk, archive failures); POST new ones to the webhook."""
    s = settings()
    notify = webhook_notifier(s.alert_webhook_url)
    report = check_alerts_now(db.session, s.scraper_data_path, s.storage_alert_percent, utcnow(), notify)
    return _Progress().finish(report)


def archive_job(job_id: str, actor: str, reason: str | None = None) -> dict:
    outcome = archival.archive_run(lifecycle(), parse_job_id(job_id), actor=actor, reason=reason, manual=True)
    return _Progress().finish({"job_id": job_id, "outcome": outcome})


def restore_job(job_id: str, actor: str, reason: str | None = None) -> dict:
    outcome = archival.restore_run(lifecycle(), parse_job_id(job_id), actor=actor, reason=reason)
    return _Progress().finish({"job_id": job_id, "outcome": outcome})


def delete_job(job_id: str, actor: str, reason: str, strategy: str | None = None) -> dict:
    outcome = deletion.delete_run(lifecycle(), parse_job_id(job_id), actor=actor, reason=reason, strategy=strategy)
    return _Progress().finish({"job_id": job_id, "outcome": outcome})
