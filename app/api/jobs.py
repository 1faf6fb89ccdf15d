"""Registering runs and reading them: ``/api/scraper/jobs``."""

from __future__ import annotations

import json
from typing import Any

from flask import request, url_for
from sqlalchemy import bindparam, select

from app.api import bp
from app.api.auth import current_user
from app.api.errors import ApiError
from app.api.listing import run_page
from app.api.openapi import documented
from app.api.params import dates, job_id_param, json_body, pagination, text_field
from app.api.policies import run_json
from app.api.schemas import EVENT_COLUMNS, JOB_COLUMNS, event_json
from app.extensions import db, settings
from app.lifecycle import access, accesses, queries
from app.lifecycle.errors import RunNotFound
from app.lifecycle.queries import parse_timestamp
from app.lifecycle.runs import register_run, update_run
from app.models import JOB_STATUSES, Job, utcnow
from app.names import NameRefused, check_visible_name

_IMPORT_FIELDS = {"status", "created_at", "started_at", "completed_at"}


def visible_job(raw_id: str) -> Job:
    """Return the run if the caller may see it; a run of someone else's is simply not found."""
    job = db.session.get(Job, job_id_param(raw_id))
    if job is None or not access.may_see(current_user(), job):
        raise RunNotFound(f"no run {raw_id}")
    return job


def require(action: str, job: Job) -> None:
    """Refuse now what the run's lock would refuse later: the rules of ``app.lifecycle.access``."""
    held = access.hold_on(db.session, job, action)
    access.require(current_user(), action, job, now=utcnow(), grace_days=settings().delete_grace_days, held=held)


def used(job: Job, kind: str) -> None:
    """A person used the run through the API (``app.lifecycle.accesses``: what keep_after_access_days reads)."""
    user = current_user()
    accesses.record_access(db.session, job, kind, by=user.username, by_id=user.id, now=utcnow())


def _stats_field(body: dict[str, Any]) -> dict[str, Any] | None:
    stats = body.get("stats")
    if stats is not None and not isinstance(stats, dict):
        raise ApiError(400, "stats must be a JSON object")
    return stats


def _visible_text(body: dict[str, Any], name: str) -> str:
    """A required run name or scraper name that shows as itself (no bidi, zero-width or control characters)."""
    raw = body.get(name)
    if isinstance(raw, str):
        try:
            check_visible_name(raw, name)
        except NameRefused as error:
            raise ApiError(400, str(error)) from None
    return text_field(body, name, required=True)  # type: ignore[return-value]


# orjson reads integers from -2^63 to 2^64-1 exactly and writes the same range; one outside it
# arrives as a float (18446744073709551616 → 1.8446744073709552e19), silently inexact.
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1


def _refuse_inexact_integers(stats: dict[str, Any] | None) -> dict[str, Any] | None:
    """Refuse stats holding an integer orjson cannot keep exact; every other number passes as sent."""
    pending: list[Any] = [stats]
    suspect = False
    while pending and not suspect:  # a loop, not recursion: stats may nest deeply
        value = pending.pop()
        if isinstance(value, dict):
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
        elif isinstance(value, float) and value.is_integer() and abs(value) >= 2**63:
            suspect = True
    if not suspect:
        return stats
    # A float this large is either an overflowed integer or a genuine float such as 1e20: the text tells.

    def exact(digits: str) -> int:
        number = int(digits)
        if not _INT_MIN <= number <= _INT_MAX:
            raise ApiError(400, "stats integers must lie between -2^63 and 2^64-1; send larger ones as strings")
        return number

    try:
        json.loads(request.get_data(), parse_int=exact)
    except (RecursionError, ValueError):
        raise ApiError(400, "stats could not be read exactly") from None
    return stats


@bp.post("/jobs")
@documented(ok=(201, "Job"), body="NewJob")
def create_job() -> Any:
    """Register a run and create its folder; admins may import finished runs with their history."""
    body = json_body({"id", "name", "scraper", "stats", *_IMPORT_FIELDS})
    user = current_user()
    importing = _IMPORT_FIELDS & body.keys()
    if importing:
        access.require_admin(user, f"may set {', '.join(sorted(importing))} (importing runs)")
    status = body.get("status", "pending")
    if not isinstance(status, str) or status not in JOB_STATUSES:
        raise ApiError(400, f"status must be one of {', '.join(JOB_STATUSES)}")
    stamps = {
        name: parse_timestamp(body[name], name)
        for name in ("created_at", "started_at", "completed_at")
        if body.get(name) is not None
    }
    job = register_run(
        db.session,
        settings().jobs_path,
        name=_visible_text(body, "name"),
        scraper=_visible_text(body, "scraper"),
        created_by=user.id,
        job_id=job_id_param(body["id"]) if body.get("id") is not None else None,
        status=status,
        stats=_refuse_inexact_integers(_stats_field(body)),
        **stamps,
    )
    return run_json(job), 201, {"Location": url_for("api.get_job", job_id=str(job.id))}


@bp.get("/jobs")
@documented(
    ok=(200, "Page[Job]"), query=("limit", "offset", "cursor", "status", "q", "scraper", "start_date", "end_date")
)
def list_jobs() -> Any:
    """List active runs, newest first, filtered by status, text, and a created_at range."""
    args = request.args
    limit, offset = pagination(args)
    start, end = dates(args)
    return run_page(
        current_user(),
        "active",
        limit,
        offset,
        statuses=queries.statuses_of(args.get("status")),
        scraper=args.get("scraper") or None,  # ``?scraper=`` names no scraper
        text=queries.search_text(args.get("q")),
        start=start,
        end=end,
    )


# Built once: building a SELECT of every column costs more than running it.
_RUN_BY_ID = select(*JOB_COLUMNS).where(Job.id == bindparam("job_id"))
_HISTORY = queries.run_history(bindparam("job_id"), *EVENT_COLUMNS)


@bp.get("/jobs/<job_id>")
@documented(ok=(200, "JobWithHistory"))
def get_job(job_id: str) -> Any:
    """One run in any tier, with its lifecycle history (newest first)."""
    connection = db.session.connection()  # Core rows, not ORM objects: this is the API's hottest read
    job = connection.execute(_RUN_BY_ID, {"job_id": job_id_param(job_id)}).first()
    if job is None or not access.may_see(current_user(), job):
        raise RunNotFound(f"no run {job_id}")
    events = connection.execute(_HISTORY, {"job_id": job.id})
    return {**run_json(job), "events": [event_json(event) for event in events]}


@bp.patch("/jobs/<job_id>")
@documented(ok=(200, "Job"), body="JobUpdate")
def patch_job(job_id: str) -> Any:
    """Status and stats updates from the scraper; status only moves forward."""
    job = visible_job(job_id)
    body = json_body({"status", "stats"})
    status = body.get("status")
    if status is not None and (not isinstance(status, str) or status not in JOB_STATUSES):
        raise ApiError(400, f"status must be one of {', '.join(JOB_STATUSES)}")
    update_run(db.session, settings().jobs_path, job, status=status, stats=_refuse_inexact_integers(_stats_field(body)))
    return run_json(job)
