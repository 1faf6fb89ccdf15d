"""What happened and how storage stands: background tasks, the audit, lifecycle events, storage, alerts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flask import current_app, request
from sqlalchemy import Select, bindparam, select

from app.api import bp
from app.api.auth import current_user
from app.api.errors import ApiError
from app.api.listing import Statements, page_total, statements_for, viewer
from app.api.openapi import documented
from app.api.params import dates, job_id_param, json_body, pagination
from app.api.schemas import AUDIT, EVENT_COLUMNS, alert_json, audit_json, event_json, iso, page, snapshot_json
from app.extensions import db, redis_connection, settings
from app.lifecycle import access, deletion_limits, queries
from app.models import COUNT_CAP as HISTORY_COUNT_CAP
from app.models import (
    Alert,
    StorageSnapshot,
    count_rows,
    utcnow,
)
from app.monitoring import forecast
from app.monitoring.figures import site_figures_json
from app.monitoring.figures import storage_stats as compute_storage_stats
from app.monitoring.scrapers import scraper_stats
from app.tasks import TASK_ID, task_state

# History tables only grow: their listings count exactly up to this many rows, then say "at least".
COUNT_CAP = HISTORY_COUNT_CAP


@bp.get("/tasks/<task_id>")
@documented(ok=(200, "Task"))
def get_task(task_id: str) -> Any:
    """State, progress (0–100) and result or error of a background task."""
    if not TASK_ID.match(task_id):
        raise ApiError(400, "a task id has only letters, digits, '_' and '-'", "invalid_id")
    user = current_user()
    body = task_state(task_id, user)
    if body is None:
        raise ApiError(404, f"no task {task_id}")
    return body


def _admins_only(what: str) -> None:
    """Refuse a member: storage figures and alerts are the whole site's (every user's runs, the disk)."""
    access.require_admin(current_user(), f"see {what}: they cover every user's runs and the disk")


def _history_statements(query: Select, columns: tuple[Any, ...], order: tuple[Any, ...]) -> Statements:
    """``query``'s rows, and a page of them: ``columns`` as Core rows (no ORM objects), ``limit``/``offset`` bound."""
    page_query = query.with_only_columns(*columns).order_by(*order)
    return Statements(query, page_query.limit(bindparam("limit")).offset(bindparam("offset")))


def _history_page(
    statements: Statements, values: dict[str, Any], to_json: Callable[[Any], dict[str, Any]]
) -> dict[str, Any]:
    """The page ``statements`` select with ``values``, each row as ``to_json`` writes it, and its total."""
    limit, offset = values["limit"], values["offset"]
    rows = db.session.connection().execute(statements.page, values).all()
    total, capped = page_total(statements.matching, len(rows), limit, offset, cap=COUNT_CAP, values=values)
    return page([to_json(row) for row in rows], total, limit, offset, capped=capped)


@bp.get("/audit")
@documented(
    ok=(200, "Page[Audit]"), query=("limit", "offset", "job_id", "strategy", "deleted_by", "start_date", "end_date")
)
def list_audit() -> Any:
    """Deletion audit, newest first: ``job_id``, ``strategy``, ``deleted_by``, ``start_date``/``end_date``."""
    args = request.args
    limit, offset = pagination(args)
    start, end = dates(args)
    actor = current_user()
    job_id = job_id_param(args["job_id"]) if args.get("job_id") else None
    strategy, deleted_by = args.get("strategy"), args.get("deleted_by")
    values = {"viewer": actor.id, "job_id": job_id, "start": start, "end": end, "limit": limit, "offset": offset}
    order = queries.NEWEST_DELETIONS_FIRST
    if deleted_by:  # built for this request: the rule cuts the name it matches to 64 characters
        query = queries.audit_of(actor, job_id=job_id, strategy=strategy, deleted_by=deleted_by, start=start, end=end)
        return _history_page(_history_statements(query, AUDIT.columns, order), values, audit_json)

    def build() -> Statements:  # ``audit_of`` checks the strategy: only good ones are kept
        query = queries.audit_of(
            viewer(actor),
            job_id=bindparam("job_id") if job_id is not None else None,
            strategy=strategy,
            start=bindparam("start") if start is not None else None,
            end=bindparam("end") if end is not None else None,
        )
        return _history_statements(query, AUDIT.columns, order)

    key = ("audit", actor.is_admin, job_id is not None, strategy or None, start is not None, end is not None)
    return _history_page(statements_for(key, build), values, audit_json)


@bp.get("/events")
@documented(
    ok=(200, "Page[Event]"), query=("limit", "offset", "job_id", "action", "outcome", "actor", "start_date", "end_date")
)
def list_events() -> Any:
    """Lifecycle events, newest first: ``job_id``, ``action``, ``outcome``, ``actor``, date range."""
    args = request.args
    limit, offset = pagination(args)
    start, end = dates(args)
    actor = current_user()
    job_id = job_id_param(args["job_id"]) if args.get("job_id") else None
    action, outcome, by = args.get("action"), args.get("outcome"), args.get("actor")
    values = {"viewer": actor.id, "job_id": job_id, "start": start, "end": end, "limit": limit, "offset": offset}
    order = queries.NEWEST_EVENTS_FIRST
    if by:  # built for this request: the rule cuts the name it matches to 64 characters
        query = queries.events_of(actor, job_id=job_id, action=action, outcome=outcome, by=by, start=start, end=end)
        return _history_page(_history_statements(query, EVENT_COLUMNS, order), values, event_json)

    def build() -> Statements:  # ``events_of`` checks the action and outcome: only good ones are kept
        query = queries.events_of(
            viewer(actor),
            job_id=bindparam("job_id") if job_id is not None else None,
            action=action,
            outcome=outcome,
            start=bindparam("start") if start is not None else None,
            end=bindparam("end") if end is not None else None,
        )
        return _history_statements(query, EVENT_COLUMNS, order)

    key = (
        "events",
        actor.is_admin,
        job_id is not None,
        action or None,
        outcome or None,
        start is not None,
        end is not None,
    )
    return _history_page(statements_for(key, build), values, event_json)


@bp.get("/storage/stats")
@documented(ok=(200, "StorageStats"))
def storage_stats() -> Any:
    """Usage by tier, compression savings, the archive success rate over 30 days, and the disk.

    Admins get the site's figures; a member those of their own runs, with ``disk`` null.
    The site's figures come from the cache the storage page and ``/metrics`` share (made at
    most STATS_TTL seconds ago, app.monitoring.figures); ``as_of`` says when they were made.
    """
    user = current_user()
    if not user.is_admin:  # their own runs' figures: no disk (it holds everyone's), not shared in the cache
        return {"as_of": iso(utcnow()), **compute_storage_stats(db.session, settings().scraper_data_path, user)}
    body = site_figures_json(db.session, settings().scraper_data_path, redis_connection())
    return current_app.response_class(body, mimetype="application/json")


@bp.get("/scrapers/stats")
@documented(ok=(200, "ScraperStats"), query=("days",))
def scrapers_stats() -> Any:
    """Run patterns per scraper over the last ``days`` (1–365, default 30) and its bytes per tier now.

    Runs per day, failure rate, median size, bytes per tier (app.monitoring.scrapers). Admins get
    every scraper; a member the scrapers of their own runs, counted over their own runs.
    """
    days = forecast.days_asked(request.args.get("days"))
    return scraper_stats(db.session, current_user(), days=days, now=utcnow())


@bp.get("/storage/trend")
@documented(ok=(200, "Page[Snapshot]"), query=("limit", "offset", "start_date", "end_date"))
def storage_trend() -> Any:
    """Storage snapshots over time (oldest first), for charts: ``start_date``/``end_date``, ``limit``."""
    _admins_only("storage figures")
    args = request.args
    limit, offset = pagination(args)
    query = select(StorageSnapshot)
    query = queries.in_date_range(query, StorageSnapshot.taken_at, *dates(args))
    total = count_rows(db.session, query)
    rows = db.session.scalars(query.order_by(StorageSnapshot.taken_at).limit(limit).offset(offset))
    items = [snapshot_json(row) for row in rows]
    return page(items, total, limit, offset)


@bp.get("/alerts")
@documented(ok=(200, "Page[Alert]"), query=("limit", "offset"))
def list_alerts() -> Any:
    """Open alerts and those resolved in the last 7 days, newest first."""
    _admins_only("alerts")
    limit, offset = pagination(request.args)
    recent = utcnow() - timedelta(days=7)
    query = select(Alert).where(Alert.resolved_at.is_(None) | (Alert.resolved_at >= recent))
    total = count_rows(db.session, query)
    rows = db.session.scalars(query.order_by(Alert.created_at.desc(), Alert.id.desc()).limit(limit).offset(offset))
    items = [alert_json(row) for row in rows]
    return page(items, total, limit, offset)


@bp.post("/lifecycle/confirm-deletions")
@documented(ok=(200, "Alert"), body="ConfirmDeletions")
def confirm_deletions() -> Any:
    """Release the cleanup pass the deletion limit holds (admins, with a ``reason``) → 200 with the alert.

    The ``deletion_limit`` alert is resolved with who confirmed and why; the next cleanup pass
    deletes what was held (app.lifecycle.deletion_limits). 409 when no pass is held.
    """
    user = current_user()
    access.require_admin(user, "confirm deletions held by the deletion limit")
    body = json_body({"reason"}) if request.get_data(cache=True).strip() else {}  # no body: "say why"
    alert = deletion_limits.confirm_deletions(db.session, actor=user.username, reason=body.get("reason"), now=utcnow())
    return alert_json(alert)


@bp.get("/storage/forecast")
@documented(ok=(200, "StorageForecast"), query=("days",))
def storage_forecast() -> Any:
    """Bytes per tier and the disk's use for each of the next ``days`` (1–365, default 30), projected from
    the recent arrival of runs, the measured compression ratio and the retention policies (admins)."""
    _admins_only("the storage forecast")
    days = forecast.days_asked(request.args.get("days"))
    return forecast.site_forecast(db.session, settings(), days=days, now=utcnow())
