"""A row of the runs lists: what it offers, and the row again after one of its buttons.

A row's button posts the run's own action (``app.web.actions``) with ``row`` (the list's tier):
HTMX swaps the row for itself with the task's progress (polled through ``/tasks/<id>?row=``), and
again with the run as it is once the task ends, saying where the run went if it left the list.
"""

from __future__ import annotations

from typing import Any

from flask import render_template, request

from app import tasks
from app.extensions import db, settings
from app.lifecycle import access, bulk, retention
from app.lifecycle.runs import tier_of
from app.models import Job, utcnow
from app.web import Refused, bp, web_user
from app.web.runs import TIER_LABELS, owner_names, visible_run


@bp.app_template_global()
def row_actions(jobs: list[Job]) -> dict[Any, Any]:
    """What each row of a runs list offers its user: ``access.possible_actions`` per run, the legal
    holds read from the rules in memory (a page of runs asks no query per row)."""
    user, s, now = web_user(), settings(), utcnow()
    rules = retention.cached_rules(db.session, s)
    return {
        job.id: access.possible_actions(
            user,
            job,
            now=now,
            grace_days=s.delete_grace_days,
            configured_strategy=s.deletion_strategy,
            held=access.held_by(rules, job),
        )
        for job in jobs
    }


@bp.app_template_global()
def bulk_offered(tier: str) -> list[tuple[str, str]]:
    """The bulk actions a tier's list offers, with their labels."""
    return [(action, bulk.LABELS[action]) for action in bulk.OFFERED.get(tier, ())]


def list_tier(raw: str | None) -> str | None:
    """The list a row or a bulk form was posted from (``row``/``tier``), if it names one."""
    return raw if raw in TIER_LABELS else None


def render_row(job: Job, tier: str, *, task: dict[str, Any] | None = None, label: str = "", note: str = "") -> Any:
    """One row of a runs list, as the list shows it (its owner column for admins)."""
    user = web_user()
    return render_template(
        "_run_row.html",
        job=job,
        tier=tier,
        can=row_actions([job])[job.id],
        owners=owner_names({job.created_by}) if user.is_admin else {},
        task=task,
        label=label,
        note=note,
        moved=tier_of(job) != tier,
        now_tier=tier_of(job),
    )


def fresh(job: Job) -> Job:
    """The run as the database has it now (an action in this request changed it)."""
    return db.session.get(Job, job.id, populate_existing=True) or job


@bp.get("/runs/<job_id>/row")
def run_row(job_id: str) -> Any:
    """The run's row of the ``tier`` list; with ``task``, its progress, until the task ends: then the
    row as the run is, saying what was done (HTMX polls this while the task runs)."""
    tier = list_tier(request.args.get("tier"))
    if tier is None:
        raise Refused(400, "tier must be active, archived or deleted")
    job = visible_run(job_id)
    label = request.args.get("doing", "Working")[:40]
    task_id = request.args.get("task", "")
    if not task_id:
        return render_row(job, tier)
    if not tasks.TASK_ID.match(task_id):
        raise Refused(400, "a task id has only letters, digits, '_' and '-'")
    state = tasks.task_state(task_id, web_user())
    if state is None:
        raise Refused(404, "There is no such task, or it is not yours to see.")
    if state["status"] == "finished":
        return render_row(job, tier, note=f"{label} finished.")
    return render_row(job, tier, task=state, label=label)
