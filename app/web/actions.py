"""The dashboard's run actions: archive, restore, delete, undelete, extend — forms posted in place by HTMX.

Each asks the same rules (``app.lifecycle.access``) and starts the same RQ task as its JSON API
twin; a browser without JavaScript posts the form and follows the redirect back to the run.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

from flask import flash, redirect, render_template, request, url_for

from app import tasks
from app.extensions import lifecycle, settings
from app.lifecycle import access, deletion, queries
from app.models import Job
from app.web import Refused, bp, web_user
from app.web.rows import fresh, list_tier, render_row
from app.web.runs import require, used, visible_run

# The long work each button starts, and what the page says while it runs.
TASKS = {
    "archive": (tasks.archive_job, "Archiving"),
    "restore": (tasks.restore_job, "Restoring"),
    "delete": (tasks.delete_job, "Deleting"),
}


def _reason(*, required: bool) -> str | None:
    return queries.reason_text(request.form.get("reason"), required=required)


def _start(action: str, job: Job, *args: Any) -> Any:
    """Queue the action's task and show its progress: in place for HTMX, on the run's page otherwise."""
    user = web_user()
    function, label = TASKS[action]
    task = tasks.enqueue_for_run(function, job, user.username, *args, owner=str(user.id))
    row = _row()
    if row is not None:  # a runs list's row: the row again, its progress in place
        state = {"task_id": task.id, "status": "queued", "progress": 0}
        return render_row(job, row, task=state, label=label)
    if request.headers.get("HX-Request"):
        state = {"task_id": task.id, "status": "queued", "progress": 0}
        return render_template("_task.html", task=state, label=label, job=job)
    return redirect(url_for("web.run", job_id=job.id, task=task.id, doing=label))


def _row() -> str | None:
    """The list a row's button was pressed in (HTMX only: without JavaScript the run's page answers)."""
    return list_tier(request.form.get("row")) if request.headers.get("HX-Request") else None


def _back_to(job: Job, done: str) -> Any:
    row = _row()
    if row is not None:
        return render_row(fresh(job), row, note=done)
    flash(done)
    url = url_for("web.run", job_id=job.id)
    if request.headers.get("HX-Request"):
        return "", 204, {"HX-Redirect": url}
    return redirect(url)


@bp.post("/runs/<job_id>/archive")
def archive(job_id: str) -> Any:
    job = visible_run(job_id)
    require("archive", job)
    return _start("archive", job, _reason(required=False))


@bp.post("/runs/<job_id>/restore")
def restore(job_id: str) -> Any:
    job = visible_run(job_id)
    require("restore", job)
    used(job, "restored")
    return _start("restore", job, _reason(required=False))


@bp.post("/runs/<job_id>/delete")
def delete(job_id: str) -> Any:
    job = visible_run(job_id)
    reason = _reason(required=True)
    if request.form.get("confirm") != "yes":
        raise Refused(400, "confirm the deletion")
    action = access.deletion_action(web_user(), request.form.get("strategy") or None, settings().deletion_strategy)
    require(action, job)
    return _start("delete", job, reason, access.STRATEGY_OF[action])


@bp.post("/runs/<job_id>/undelete")
def undelete(job_id: str) -> Any:
    job = visible_run(job_id)
    require("undelete", job)
    deletion.undelete_run(lifecycle(), job.id, actor=web_user().username, reason=_reason(required=False))
    return _back_to(job, "The run is back.")


def keep_until(raw: str) -> datetime | None:
    """The end of the day an admin picked to keep the run until (a day still to come), or None."""
    if not raw:
        return None
    try:
        until = datetime.combine(date.fromisoformat(raw), time.max, UTC)
    except ValueError:
        raise Refused(400, f"{raw[:40]!r} is not a date (YYYY-MM-DD)") from None
    if until <= datetime.now(UTC):
        raise Refused(400, "keep it until a day still to come")
    return until


@bp.post("/runs/<job_id>/retention")
def extend(job_id: str) -> Any:
    job = visible_run(job_id)
    require("extend", job)
    reason = _reason(required=True)
    keep_forever = request.form.get("keep_forever") == "yes"
    retain_until = keep_until(request.form.get("retain_until", "").strip())
    if retain_until is None and not keep_forever:
        raise Refused(400, "choose a date to keep it until, or keep it forever")
    deletion.extend_retention(
        lifecycle(),
        job.id,
        actor=web_user().username,
        reason=reason,
        retain_until=retain_until,
        keep_forever=True if keep_forever else None,  # type: ignore[arg-type]
    )
    return _back_to(job, "Retention extended.")
