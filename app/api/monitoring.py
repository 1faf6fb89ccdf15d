"""What happened and how storage stands: background tasks, the audit, lifecycle events, storage, alerts."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import orjson
from flask import current_app, request
from redis.exceptions import RedisError
from sqlalchemy import select

from app.api import bp
from app.api.auth import current_user
from app.api.errors import ApiError
from app.api.openapi import documented
from app.api.params import in_date_range, job_id_param, pagination
from app.api.schemas import event_json, iso, page
from app.extensions import db, redis_connection, settings
from app.models import COUNT_CAP as HISTORY_COUNT_CAP
from app.models import (
    EVENT_OUTCOMES,
    LIFECYCLE_ACTIONS,
    Alert,
    Job,
    JobAudit,
    LifecycleEvent,
    StorageSnapshot,
    capped_count,
    count_rows,
    utcnow,
)
from app.monitoring import storage_stats as compute_storage_stats
from app.tasks import TASK_ID, task_state

# History tables only grow: their listings count exactly up to this many rows, then say "at least".
COUNT_CAP = HISTORY_COUNT_CAP
STATS_CACHE_KEY = "agar:cache:storage-stats:v2"  # "<fresh until, Unix time>\n<JSON>"
STATS_REFRESH_KEY = "agar:cache:storage-stats:refresh"
STATS_TTL = 30  # figures are remade once this old
STATS_KEEP = 3600  # stale figures are answered for at most this long while one request remakes them
STATS_REFRESH_TIMEOUT = 120  # a refresher that died frees the lock after this
_clock = time.time  # Unix time, shared by every web process through Redis


@bp.get("/tasks/<task_id>")
@documented(ok=(200, "Task"))
def get_task(task_id: str) -> Any:
    """State, progress (0–100) and result or error of a background task."""
    if not TASK_ID.match(task_id):
        raise ApiError(400, "a task id has only letters, digits, '_' and '-'", "invalid_id")
    user = current_user()
    body = task_state(task_id, user.id, user.is_admin)
    if body is None:
        raise ApiError(404, f"no task {task_id}")
    return body


def _admins_only(what: str) -> None:
    """Refuse a member: storage figures and alerts are the whole site's (every user's runs, the disk)."""
    if not current_user().is_admin:
        raise ApiError(403, f"only admins see {what}: they cover every user's runs and the disk")


def _owned(query: Any, job_id_column: Any) -> Any:
    user = current_user()
    if user.is_admin:
        return query
    return query.where(job_id_column.in_(select(Job.id).where(Job.created_by == user.id)))


@bp.get("/audit")
@documented(
    ok=(200, "Page[Audit]"), query=("limit", "offset", "job_id", "strategy", "deleted_by", "start_date", "end_date")
)
def list_audit() -> Any:
    """Deletion audit, newest first: ``job_id``, ``strategy``, ``deleted_by``, ``start_date``/``end_date``."""
    args = request.args
    limit, offset = pagination(args)
    user = current_user()
    query = select(JobAudit)
    if not user.is_admin:
        query = query.where(JobAudit.created_by == user.id)
    if args.get("job_id"):
        query = query.where(JobAudit.job_id == job_id_param(args["job_id"]))
    if args.get("strategy"):
        if args["strategy"] not in ("soft", "hard"):
            raise ApiError(400, "strategy must be soft or hard")
        query = query.where(JobAudit.strategy == args["strategy"])
    if args.get("deleted_by"):
        query = query.where(JobAudit.deleted_by == args["deleted_by"][:64])
    query = in_date_range(query, JobAudit.deleted_at, args)
    total, capped = capped_count(db.session, query, COUNT_CAP)
    rows = db.session.scalars(query.order_by(JobAudit.deleted_at.desc(), JobAudit.id).limit(limit).offset(offset))
    columns = [c.key for c in JobAudit.__table__.columns]
    items = [
        {
            k: (iso(v) if hasattr(v, "isoformat") else str(v) if k in ("id", "job_id", "created_by") and v else v)
            for k in columns
            for v in [getattr(row, k)]
        }
        for row in rows
    ]
    return page(items, total, limit, offset, capped=capped)


@bp.get("/events")
@documented(
    ok=(200, "Page[Event]"), query=("limit", "offset", "job_id", "action", "outcome", "actor", "start_date", "end_date")
)
def list_events() -> Any:
    """Lifecycle events, newest first: ``job_id``, ``action``, ``outcome``, ``actor``, date range."""
    args = request.args
    limit, offset = pagination(args)
    query = _owned(select(LifecycleEvent), LifecycleEvent.job_id)
    if args.get("job_id"):
        query = query.where(LifecycleEvent.job_id == job_id_param(args["job_id"]))
    if args.get("action"):
        if args["action"] not in LIFECYCLE_ACTIONS:
            raise ApiError(400, f"action must be one of {', '.join(LIFECYCLE_ACTIONS)}")
        query = query.where(LifecycleEvent.action == args["action"])
    if args.get("outcome"):
        if args["outcome"] not in EVENT_OUTCOMES:
            raise ApiError(400, f"outcome must be one of {', '.join(EVENT_OUTCOMES)}")
        query = query.where(LifecycleEvent.outcome == args["outcome"])
    if args.get("actor"):
        query = query.where(LifecycleEvent.actor == args["actor"][:64])
    query = in_date_range(query, LifecycleEvent.started_at, args)
    total, capped = capped_count(db.session, query, COUNT_CAP)
    rows = db.session.scalars(
        query.order_by(LifecycleEvent.started_at.desc(), LifecycleEvent.id.desc()).limit(limit).offset(offset)
    )
    return page([event_json(event) for event in rows], total, limit, offset, capped=capped)


@bp.get("/storage/stats")
@documented(ok=(200, "StorageStats"))
def storage_stats() -> Any:
    """Usage by tier, compression savings, the archive success rate over 30 days, and the disk.

    Admins get the site's figures; a member those of their own runs, with ``disk`` null.

    Summing a tier reads every row of it (most runs, over time, are purged: about a second at a
    million runs), so the figures are shared through Redis and ``as_of`` says when they were
    made. They are remade once STATS_TTL seconds old, by one request alone (a Redis lock): the
    others go on answering the figures they have until the new ones are in, so no request
    waits for a recount but the one making it.
    """
    user = current_user()
    if not user.is_admin:  # their own runs' figures: no disk (it holds everyone's), not shared in the cache
        return {"as_of": iso(utcnow()), **compute_storage_stats(db.session, settings().scraper_data_path, user.id)}
    connection = redis_connection()
    try:
        cached = connection.get(STATS_CACHE_KEY)
    except RedisError:
        cached = None
    fresh_until, _, body = (cached or b"").partition(b"\n")
    try:
        stale = _clock() >= float(fresh_until)
    except ValueError:  # nothing cached (or not in this form)
        body = b""
    if body and (not stale or not _may_refresh(connection)):
        return current_app.response_class(body, mimetype="application/json")
    stats = {"as_of": iso(utcnow()), **_compute_storage_stats()}
    try:
        payload = f"{_clock() + STATS_TTL}\n".encode() + orjson.dumps(stats)
        connection.set(STATS_CACHE_KEY, payload, ex=STATS_KEEP)
        connection.delete(STATS_REFRESH_KEY)
    except RedisError:
        pass  # without Redis every request computes: slower, still right
    return stats


def _may_refresh(connection: Any) -> bool:
    """Whether this request is the one to remake stale figures (no other is at it)."""
    try:
        return bool(connection.set(STATS_REFRESH_KEY, "1", nx=True, ex=STATS_REFRESH_TIMEOUT))
    except RedisError:
        return True


def _compute_storage_stats() -> dict[str, Any]:
    return compute_storage_stats(db.session, settings().scraper_data_path)


@bp.get("/storage/trend")
@documented(ok=(200, "Page[Snapshot]"), query=("limit", "offset", "start_date", "end_date"))
def storage_trend() -> Any:
    """Storage snapshots over time (oldest first), for charts: ``start_date``/``end_date``, ``limit``."""
    _admins_only("storage figures")
    args = request.args
    limit, offset = pagination(args)
    query = select(StorageSnapshot)
    query = in_date_range(query, StorageSnapshot.taken_at, args)
    total = count_rows(db.session, query)
    rows = db.session.scalars(query.order_by(StorageSnapshot.taken_at).limit(limit).offset(offset))
    columns = [c.key for c in StorageSnapshot.__table__.columns if c.key != "id"]
    items = [{k: iso(getattr(r, k)) if k == "taken_at" else getattr(r, k) for k in columns} for r in rows]
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
    items = [
        {
            "id": a.id,
            "kind": a.kind,
            "severity": a.severity,
            "message": a.message,
            "data": a.data,
            "created_at": iso(a.created_at),
            "resolved_at": iso(a.resolved_at),
            "open": a.resolved_at is None,
        }
        for a in rows
    ]
    return page(items, total, limit, offset)
