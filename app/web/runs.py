"""The dashboard's run pages: the runs of each tier, the archived runs by day, one run with its history."""

from __future__ import annotations

from typing import Any

from flask import flash, make_response, redirect, render_template, request, url_for
from sqlalchemy import func, select

from app import tasks
from app.downloads import archive_download
from app.extensions import db, lifecycle, settings
from app.lifecycle import access, accesses, preview, queries, retention
from app.lifecycle.errors import RunNotFound
from app.lifecycle.members import require_archive
from app.lifecycle.naming import parse_job_id, run_folder_name
from app.lifecycle.notices import notices_of_run
from app.lifecycle.runs import tier_of
from app.models import ArchiveMember, Job, User, capped_count, utcnow
from app.web import Refused, bp, error_page, web_user

PAGE_SIZE = 50
TIER_LABELS = {"active": "Active", "archived": "Archived", "deleted": "Deleted"}
MEMBERS_SHOWN = 200  # the rest through the API's member list


def page_of(raw: str | None) -> tuple[int, int]:
    """The page number the query asks for, and the offset it starts at."""
    return queries.page_offset(raw, PAGE_SIZE)


def owner_names(ids: set[Any]) -> dict[Any, str]:
    """The usernames of these user ids (for an admin's Owner column)."""
    ids.discard(None)
    if not ids:
        return {}
    return dict(db.session.execute(select(User.id, User.username).where(User.id.in_(ids))).all())


def _newest_first(query: Any, offset: int, *, few: bool = False) -> list[Job]:
    return db.session.scalars(queries.newest_runs_page(query, PAGE_SIZE, offset, few=few)).all()


@bp.get("/")
def index() -> Any:
    return redirect(url_for("web.runs"))


@bp.get("/runs")
def runs() -> Any:
    """A tier's runs, newest first; with ``q``, the runs the text finds in every tier.

    A search counts its matches in each tier (the tabs), shows the asked tier or, when it has none,
    the first tier that has; a plain search (Enter, no JavaScript) that finds exactly one run opens
    it. Search-as-you-type (HTMX) gets the list alone, never a jump while the user types.
    """
    user = web_user()
    asked = request.args.get("tier", "active")
    if asked not in TIER_LABELS:
        raise Refused(400, "tier must be active, archived or deleted")
    text = queries.search_text(request.args.get("q"))
    number, offset = page_of(request.args.get("page"))
    # A history restore (Back, nothing cached) asks through HTMX too, but for the whole page.
    htmx = bool(request.headers.get("HX-Request")) and not request.headers.get("HX-History-Restore-Request")
    counts = {name: capped_count(db.session, queries.runs_in_tier(user, name, text=text)) for name in TIER_LABELS}
    tier = asked
    if text and counts[asked][0] == 0:
        tier = next((name for name in TIER_LABELS if counts[name][0]), asked)
    found = sum(count for count, _more in counts.values())
    # A search's count says whether its runs are few: then they are found first and sorted after.
    rows = _newest_first(queries.runs_in_tier(user, tier, text=text), offset, few=bool(text) and not counts[tier][1])
    shown = counts[tier][0]
    if text and found == 1 and not htmx and len(rows) == 1:
        response = redirect(url_for("web.run", job_id=rows[0].id))
    else:
        response = make_response(
            render_template(
                "runs.html",
                fragment=htmx,
                tier=tier,
                asked=asked,
                tiers=TIER_LABELS,
                counts=counts,
                jobs=rows,
                owners=owner_names({job.created_by for job in rows}) if user.is_admin else {},
                q=text,
                found=found,
                page=number,
                pages=max(1, -(-shown // PAGE_SIZE)),
                shown=shown,
            )
        )
    response.vary.add("HX-Request")  # the list alone or the whole page: caches must not mix them
    return response


@bp.get("/archive")
def archive_page() -> Any:
    """The archived runs, by the day they started, with what their archives saved."""
    user = web_user()
    start_raw, end_raw = request.args.get("from", "").strip(), request.args.get("to", "").strip()
    start, end = queries.date_range(start_raw, end_raw, ("from", "to"))
    number, offset = page_of(request.args.get("page"))
    query = queries.runs_in_tier(user, "archived", start=start, end=end)
    # One grouped pass over the range, in the index that carries these columns (ix_jobs_archived_totals).
    by_codec = db.session.execute(
        select(
            Job.compression,
            func.count(),
            func.coalesce(func.sum(Job.size_bytes), 0),
            func.coalesce(func.sum(Job.archive_size_bytes), 0),
        )
        .where(query.whereclause)
        .group_by(Job.compression)
        .order_by(Job.compression)
    ).all()
    runs_count = sum(int(count) for _codec, count, _original, _stored in by_codec)
    original = sum(int(size) for _codec, _count, size, _stored in by_codec)
    stored = sum(int(size) for _codec, _count, _original, size in by_codec)
    rows = _newest_first(query, offset)
    filters = {key: value for key, value in (("from", start_raw), ("to", end_raw)) if value}
    return render_template(
        "archive.html",
        jobs=rows,
        owners=owner_names({job.created_by for job in rows}) if user.is_admin else {},
        totals={"runs": int(runs_count), "original": int(original), "stored": int(stored)},
        codecs=[(codec or "?", int(count)) for codec, count, _original, _stored in by_codec],
        start=start_raw,
        end=end_raw,
        filters=filters,
        page=number,
        pages=max(1, -(-min(int(runs_count), queries.MAX_OFFSET) // PAGE_SIZE)),
    )


def visible_run(raw_id: str) -> Job:
    """The run if the user may see it; someone else's run is simply not found."""
    job = db.session.get(Job, parse_job_id(raw_id))
    if job is None or not access.may_see(web_user(), job):
        raise RunNotFound(raw_id)
    return job


def require(action: str, job: Job) -> None:
    """Refuse what the run's lock would refuse later: the rules of ``app.lifecycle.access``."""
    held = access.hold_on(db.session, job, action)
    access.require(web_user(), action, job, now=utcnow(), grace_days=settings().delete_grace_days, held=held)


@bp.get("/runs/<job_id>")
def run(job_id: str) -> Any:
    job = visible_run(job_id)
    user = web_user()
    used(job, "opened")
    events = db.session.scalars(queries.run_history(job.id)).all()
    task_id = request.args.get("task", "")
    task = None
    if task_id and tasks.TASK_ID.match(task_id):
        task = tasks.task_state(task_id, user)
    owner = db.session.get(User, job.created_by) if job.created_by else None
    members: list[tuple[str, int]] = []
    member_count, member_count_more = 0, False
    if tier_of(job) == "archived":
        in_archive = select(ArchiveMember).where(ArchiveMember.job_id == job.id, ArchiveMember.kind == "file")
        rows = db.session.scalars(in_archive.order_by(ArchiveMember.id).limit(MEMBERS_SHOWN)).all()
        members = [(member.path, member.size) for member in rows]
        member_count = capped_count(db.session, in_archive)[0]
    elif tier_of(job) == "active":
        try:
            members, member_count, member_count_more = preview.folder_files(lifecycle(), job)
        except preview.NoFilesHere:
            pass  # no folder (yet, or any more): the page says what the run is without its files
    s = settings()
    return render_template(
        "run.html",
        members=members,
        member_count=member_count,
        member_count_more=member_count_more,
        job=job,
        tier=tier_of(job),
        folder=run_folder_name(job.folder_name, job.id) if job.folder_name else str(job.id),
        owner=owner.username if owner else None,
        events=events,
        task=task,
        task_label=request.args.get("doing", ""),
        can=access.possible_actions(
            user,
            job,
            now=utcnow(),
            grace_days=s.delete_grace_days,
            configured_strategy=s.deletion_strategy,
            held=access.hold_on(db.session, job),
        ),
        settings=s,
        grace_until=access.grace_ends(job, s.delete_grace_days),
        deletion_notices=notices_of_run(db.session, job.id),
        retention=retention.explain_runs(
            db.session, retention.load_rules(db.session, s), [job], now=utcnow(), grace_days=s.delete_grace_days
        )[0],
    )


@bp.get("/runs/<job_id>/download")
def download(job_id: str) -> Any:
    job = visible_run(job_id)
    require("download", job)
    require_archive(lifecycle(), job)
    used(job, "downloaded")
    return archive_download(job)


def used(job: Job, kind: str) -> None:
    """A person used the run from the dashboard (``app.lifecycle.accesses``: what keep_after_access_days reads)."""
    user = web_user()
    accesses.record_access(db.session, job, kind, by=user.username, by_id=user.id, now=utcnow())


@bp.get("/tasks/<task_id>")
def task(task_id: str) -> Any:
    """The progress of a task the user started: polled by HTMX until it ends, then back to the run."""
    if not tasks.TASK_ID.match(task_id):
        return error_page(400, "a task id has only letters, digits, '_' and '-'")
    user = web_user()
    state = tasks.task_state(task_id, user)
    if state is None:
        return error_page(404, "There is no such task, or it is not yours to see.")
    job = visible_run(request.args.get("job", ""))
    label = request.args.get("doing", "Working")[:40]
    if state["status"] == "finished":
        flash(f"{label} finished.")
        return "", 204, {"HX-Redirect": url_for("web.run", job_id=job.id)}
    return render_template("_task.html", task=state, label=label, job=job)
