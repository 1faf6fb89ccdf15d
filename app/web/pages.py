"""The dashboard's pages: the runs of each tier, one run with its history and actions."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from sqlalchemy import func, select

from app import tasks
from app.actions import (
    Refused,
    check_archive,
    check_restore,
    check_retention,
    check_undelete,
    deletion_strategy,
    require_tier,
)
from app.downloads import archive_download
from app.extensions import db, lifecycle, settings
from app.lifecycle import deletion
from app.lifecycle.errors import RunNotFound
from app.lifecycle.naming import parse_job_id, run_folder_name
from app.lifecycle.runs import is_active, is_archived, matching_text, runs_visible_to, tier_of
from app.models import COUNT_CAP, FINISHED_STATUSES, ArchiveMember, Job, LifecycleEvent, User, capped_count
from app.names import field_with_nul
from app.web import bp, error_page, web_user

PAGE_SIZE = 50
TIERS = {
    "active": ("Active", is_active),
    "archived": ("Archived", is_archived),
    "deleted": ("Deleted", lambda: Job.deleted_at.is_not(None)),
}
# The long work each button starts, and what the page says while it runs.
TASKS = {
    "archive": (tasks.archive_job, "Archiving"),
    "restore": (tasks.restore_job, "Restoring"),
    "delete": (tasks.delete_job, "Deleting"),
}
MAX_REASON = 1000
MEMBERS_SHOWN = 200  # the rest through the API's member list


# -- what every request may hold --------------------------------------------------------------------


@bp.before_request
def refuse_unstorable_input() -> Any:
    """Refuse a NUL byte in the path, the query or a form: PostgreSQL text cannot hold one (psycopg raises)."""
    if "\x00" in request.path:
        raise Refused(400, "the address must not contain a NUL byte")
    for where, fields in (("query parameter", request.args), ("form field", request.form)):
        if (name := field_with_nul(fields.items(multi=True))) is not None:
            raise Refused(400, f"the {where} {name!r} must not contain a NUL byte")
    return None


@bp.get("/")
def index() -> Any:
    return redirect(url_for("web.runs"))


# -- the runs of a tier ----------------------------------------------------------------------------


def _page_number(raw: str | None) -> int:
    if raw is None or raw == "":
        return 1
    if not raw.isdigit() or not 1 <= int(raw) <= COUNT_CAP // PAGE_SIZE + 1:
        raise Refused(400, f"page must be a whole number from 1 to {COUNT_CAP // PAGE_SIZE + 1}")
    return int(raw)


@bp.get("/runs")
def runs() -> Any:
    user = web_user()
    tier = request.args.get("tier", "active")
    if tier not in TIERS:
        raise Refused(400, "tier must be active, archived or deleted")
    text = request.args.get("q", "").strip()
    if len(text) > 200:
        raise Refused(400, "the search text is at most 200 characters")
    number = _page_number(request.args.get("page"))
    visible = runs_visible_to(user.id, user.is_admin)
    counts = {name: capped_count(db.session, visible.where(condition())) for name, (_, condition) in TIERS.items()}
    query = visible.where(TIERS[tier][1]())
    if text:
        query = matching_text(query, text)
    shown = capped_count(db.session, query)[0] if text else counts[tier][0]
    rows = db.session.scalars(
        query.order_by(Job.created_at.desc(), Job.id.desc()).limit(PAGE_SIZE).offset((number - 1) * PAGE_SIZE)
    ).all()
    owners = _owner_names({job.created_by for job in rows}) if user.is_admin else {}
    return render_template(
        "runs.html",
        tier=tier,
        tiers={name: label for name, (label, _condition) in TIERS.items()},
        counts=counts,
        jobs=rows,
        owners=owners,
        q=text,
        page=number,
        pages=max(1, -(-shown // PAGE_SIZE)),
        shown=shown,
    )


def _date_arg(name: str, *, end: bool = False) -> date | None:
    """A day from the query; an ``end`` day, whose whole day is included, must have a day after it."""
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        raise Refused(400, f"{name}: {raw[:40]!r} is not a date (YYYY-MM-DD)") from None
    if end and day == date.max:  # the range stops where the next day starts, and 10000-01-01 is no date
        raise Refused(400, f"{name}: the last day a range can end on is {date.max - timedelta(days=1)}")
    return day


@bp.get("/archive")
def archive_page() -> Any:
    """The archived runs, by the day they started, with what their archives saved."""
    user = web_user()
    start, end = _date_arg("from"), _date_arg("to", end=True)
    if start and end and end < start:
        raise Refused(400, "the range ends before it starts")
    number = _page_number(request.args.get("page"))
    query = runs_visible_to(user.id, user.is_admin).where(is_archived())
    if start:
        query = query.where(Job.created_at >= datetime.combine(start, time.min, UTC))
    if end:
        query = query.where(Job.created_at < datetime.combine(end, time.min, UTC) + timedelta(days=1))
    condition = query.whereclause
    runs_count, original, stored = db.session.execute(
        select(
            func.count(), func.coalesce(func.sum(Job.size_bytes), 0), func.coalesce(func.sum(Job.archive_size_bytes), 0)
        ).where(condition)
    ).one()
    codecs = db.session.execute(
        select(Job.compression, func.count()).where(condition).group_by(Job.compression).order_by(Job.compression)
    ).all()
    rows = db.session.scalars(
        query.order_by(Job.created_at.desc(), Job.id.desc()).limit(PAGE_SIZE).offset((number - 1) * PAGE_SIZE)
    ).all()
    filters = {key: value.isoformat() for key, value in (("from", start), ("to", end)) if value}
    return render_template(
        "archive.html",
        jobs=rows,
        owners=_owner_names({job.created_by for job in rows}) if user.is_admin else {},
        totals={"runs": int(runs_count), "original": int(original), "stored": int(stored)},
        codecs=[(codec or "?", int(count)) for codec, count in codecs],
        start=start,
        end=end,
        filters=filters,
        page=number,
        pages=max(1, -(-min(int(runs_count), COUNT_CAP) // PAGE_SIZE)),
    )


def _owner_names(ids: set[Any]) -> dict[Any, str]:
    ids.discard(None)
    if not ids:
        return {}
    return dict(db.session.execute(select(User.id, User.username).where(User.id.in_(ids))).all())


# -- one run -----------------------------------------------------------------------------------------


def visible_run(raw_id: str) -> Job:
    job = db.session.get(Job, parse_job_id(raw_id))
    user = web_user()
    if job is None or not (user.is_admin or job.created_by == user.id):
        raise RunNotFound(raw_id)
    return job


@bp.get("/runs/<job_id>")
def run(job_id: str) -> Any:
    job = visible_run(job_id)
    user = web_user()
    events = db.session.scalars(
        select(LifecycleEvent)
        .where(LifecycleEvent.job_id == job.id)
        .order_by(LifecycleEvent.started_at.desc(), LifecycleEvent.id.desc())
        .limit(100)
    ).all()
    task_id = request.args.get("task", "")
    task = None
    if task_id and tasks.TASK_ID.match(task_id):
        task = tasks.task_state(task_id, user.id, user.is_admin)
    owner = db.session.get(User, job.created_by) if job.created_by else None
    members, member_count = [], 0
    if tier_of(job) == "archived":
        in_archive = select(ArchiveMember).where(ArchiveMember.job_id == job.id, ArchiveMember.kind == "file")
        members = db.session.scalars(in_archive.order_by(ArchiveMember.id).limit(MEMBERS_SHOWN)).all()
        member_count = capped_count(db.session, in_archive)[0]
    return render_template(
        "run.html",
        members=members,
        member_count=member_count,
        job=job,
        tier=tier_of(job),
        folder=run_folder_name(job.folder_name, job.id) if job.folder_name else str(job.id),
        owner=owner.username if owner else None,
        events=events,
        task=task,
        task_label=request.args.get("doing", ""),
        can=_possible_actions(job),
        settings=settings(),
        grace_until=_grace_until(job),
    )


def _possible_actions(job: Job) -> dict[str, bool]:
    user = web_user()
    tier = tier_of(job)
    finished = job.status in FINISHED_STATUSES
    return {
        "archive": tier == "active" and finished,
        "restore": tier == "archived",
        "download": tier == "archived" and bool(job.archive_path),
        "extend": tier != "deleted" and (user.is_admin or job.created_by == user.id),
        "delete": finished and tier != "deleted",
        "undelete": tier == "deleted" and job.purged_at is None,
        "choose_strategy": user.is_admin,
    }


def _grace_until(job: Job) -> datetime | None:
    if job.deleted_at is None or job.purged_at is not None:
        return None
    return job.deleted_at + timedelta(days=settings().delete_grace_days)


def _reason(*, required: bool) -> str | None:
    reason = request.form.get("reason", "").strip()
    if len(reason) > MAX_REASON:
        raise Refused(400, f"the reason is at most {MAX_REASON} characters")
    if required and not reason:
        raise Refused(400, "say why: a reason is required")
    return reason or None


def _start(action: str, job: Job, *args: Any) -> Any:
    """Queue the action's task and show its progress: in place for HTMX, on the run's page otherwise."""
    user = web_user()
    function, label = TASKS[action]
    task = tasks.enqueue_for_run(function, job, user.username, *args, owner=str(user.id))
    if request.headers.get("HX-Request"):
        state = {"task_id": task.id, "status": "queued", "progress": 0}
        return render_template("_task.html", task=state, label=label, job=job)
    return redirect(url_for("web.run", job_id=job.id, task=task.id, doing=label))


@bp.post("/runs/<job_id>/archive")
def archive(job_id: str) -> Any:
    job = visible_run(job_id)
    check_archive(job)
    return _start("archive", job, _reason(required=False))


@bp.post("/runs/<job_id>/restore")
def restore(job_id: str) -> Any:
    job = visible_run(job_id)
    check_restore(job)
    return _start("restore", job, _reason(required=False))


@bp.post("/runs/<job_id>/delete")
def delete(job_id: str) -> Any:
    job = visible_run(job_id)
    reason = _reason(required=True)
    if request.form.get("confirm") != "yes":
        raise Refused(400, "confirm the deletion")
    asked = request.form.get("strategy") or None
    strategy = deletion_strategy(job, web_user(), asked, settings().deletion_strategy)
    return _start("delete", job, reason, strategy)


@bp.post("/runs/<job_id>/undelete")
def undelete(job_id: str) -> Any:
    job = visible_run(job_id)
    check_undelete(job)
    deletion.undelete_run(lifecycle(), job.id, actor=web_user().username, reason=_reason(required=False))
    flash("The run is back.")
    return _back_to(job)


@bp.post("/runs/<job_id>/retention")
def extend(job_id: str) -> Any:
    job = visible_run(job_id)
    user = web_user()
    check_retention(job, user)
    require_tier(job, "active", "archived")
    reason = _reason(required=True)
    keep_forever = request.form.get("keep_forever") == "yes"
    raw_date = request.form.get("retain_until", "").strip()
    retain_until = None
    if raw_date:
        try:
            retain_until = datetime.combine(date.fromisoformat(raw_date), time.max, UTC)
        except ValueError:
            raise Refused(400, f"{raw_date!r} is not a date (YYYY-MM-DD)") from None
        if retain_until <= datetime.now(UTC):
            raise Refused(400, "keep it until a day still to come")
    if retain_until is None and not keep_forever:
        raise Refused(400, "choose a date to keep it until, or keep it forever")
    deletion.extend_retention(
        lifecycle(),
        job.id,
        actor=user.username,
        reason=reason,
        retain_until=retain_until,
        keep_forever=True if keep_forever else None,  # type: ignore[arg-type]
    )
    flash("Retention extended.")
    return _back_to(job)


def _back_to(job: Job) -> Any:
    url = url_for("web.run", job_id=job.id)
    if request.headers.get("HX-Request"):
        return "", 204, {"HX-Redirect": url}
    return redirect(url)


@bp.get("/runs/<job_id>/download")
def download(job_id: str) -> Any:
    job = visible_run(job_id)
    require_tier(job, "archived")
    return archive_download(job)


@bp.get("/tasks/<task_id>")
def task(task_id: str) -> Any:
    """The progress of a task the user started: polled by HTMX until it ends, then back to the run."""
    if not tasks.TASK_ID.match(task_id):
        return error_page(400, "a task id has only letters, digits, '_' and '-'")
    user = web_user()
    state = tasks.task_state(task_id, user.id, user.is_admin)
    if state is None:
        return error_page(404, "There is no such task, or it is not yours to see.")
    job = visible_run(request.args.get("job", ""))
    label = request.args.get("doing", "Working")[:40]
    if state["status"] == "finished":
        flash(f"{label} finished.")
        return "", 204, {"HX-Redirect": url_for("web.run", job_id=job.id)}
    return render_template("_task.html", task=state, label=label, job=job)
