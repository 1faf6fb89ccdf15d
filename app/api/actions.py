"""Acting on one run: archive, restore, delete, undelete, retention (``/api/scraper/jobs/{id}/…``).

Long work (archive, restore, delete) is handed to RQ and answered 202 with a task; the state the
run must be in is checked first so a doomed request is a 409 now, not a failed task later.
"""

from __future__ import annotations

from typing import Any

from flask import request, url_for

from app import tasks
from app.api import bp
from app.api.auth import current_user
from app.api.errors import ApiError
from app.api.jobs import require, used, visible_job
from app.api.openapi import documented
from app.api.params import json_body
from app.api.policies import run_json
from app.extensions import lifecycle, settings
from app.lifecycle import access, deletion, queries
from app.lifecycle.queries import parse_timestamp
from app.lifecycle.runs import load_run
from app.models import Job


def accepted(rq_job: Any) -> Any:
    location = url_for("api.get_task", task_id=rq_job.id)
    return {"task_id": rq_job.id, "status": "queued"}, 202, {"Location": location}


def enqueue_for(task: Any, job: Job, *args: Any) -> Any:
    """Hand one run's action to RQ on behalf of the caller → 202."""
    user = current_user()
    return accepted(tasks.enqueue_for_run(task, job, user.username, *args, owner=str(user.id)))


def _reason(body: dict[str, Any], *, required: bool) -> str | None:
    return queries.reason_text(body.get("reason"), required=required)


def _optional_body(allowed: set[str]) -> dict[str, Any]:
    """The JSON body of an action whose fields are all optional: no body, or an empty one, is ``{}``."""
    # Clients send "Content-Type: application/json" with nothing after it (curl -H … -X POST, fetch
    # without a body); only bytes that are there must be a JSON object.
    if not request.get_data(cache=True).strip():
        return {}
    return json_body(allowed)


def _start(action: str, task: Any, job_id: str) -> Any:
    """An action whose only field is an optional reason: checked by the rules, then queued → 202."""
    job = visible_job(job_id)
    body = _optional_body({"reason"})
    require(action, job)
    if action == "restore":
        used(job, "restored")
    return enqueue_for(task, job, _reason(body, required=False))


@bp.post("/jobs/<job_id>/archive")
@documented(ok=(202, "Accepted"), body="Reason")
def archive_now(job_id: str) -> Any:
    """Archive the run now (a manual override of the age rule) → 202 with a task."""
    return _start("archive", tasks.archive_job, job_id)


@bp.post("/jobs/<job_id>/restore")
@documented(ok=(202, "Accepted"), body="Reason")
def restore_now(job_id: str) -> Any:
    """Restore a working copy of an archived run into jobs/ → 202 with a task."""
    return _start("restore", tasks.restore_job, job_id)


@bp.delete("/jobs/<job_id>")
@documented(ok=(202, "Accepted"), body="Deletion")
def delete_now(job_id: str) -> Any:
    """Delete the run now, with a reason → 202 with a task. Admins alone may hard-delete."""
    job = visible_job(job_id)
    body = json_body({"reason", "strategy"})
    reason = _reason(body, required=True)
    action = access.deletion_action(current_user(), body.get("strategy"), settings().deletion_strategy)
    require(action, job)
    return enqueue_for(tasks.delete_job, job, reason, access.STRATEGY_OF[action])


@bp.post("/jobs/<job_id>/undelete")
@documented(ok=(200, "Job"), body="Reason")
def undelete_job(job_id: str) -> Any:
    """Bring a soft-deleted run back within its grace period → 200 with the run."""
    job = visible_job(job_id)
    body = _optional_body({"reason"})
    require("undelete", job)
    deletion.undelete_run(lifecycle(), job.id, actor=current_user().username, reason=_reason(body, required=False))
    return run_json(load_run(lifecycle(), job.id))


@bp.post("/jobs/<job_id>/retention")
@documented(ok=(200, "Job"), body="Retention")
def extend_job_retention(job_id: str) -> Any:
    """Protect the run: ``retain_until`` and/or ``keep_forever``, with a ``reason`` → 200 with the run."""
    job = visible_job(job_id)
    body = json_body({"retain_until", "keep_forever", "reason"})
    user = current_user()
    require("extend", job)
    reason = _reason(body, required=True)
    keep_forever = body.get("keep_forever")
    if keep_forever is not None and not isinstance(keep_forever, bool):
        raise ApiError(400, "keep_forever must be true or false")
    retain_until = parse_timestamp(body["retain_until"], "retain_until") if body.get("retain_until") else None
    if retain_until is None and keep_forever is None:
        raise ApiError(400, "give retain_until or keep_forever")
    deletion.extend_retention(
        lifecycle(),
        job.id,
        actor=user.username,
        reason=reason,
        retain_until=retain_until,
        keep_forever=keep_forever,  # type: ignore[arg-type]
    )
    return run_json(load_run(lifecycle(), job.id))
