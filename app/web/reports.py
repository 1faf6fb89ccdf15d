"""The dashboard's reports: storage (charts and alerts) and the audit trail."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import render_template, request
from sqlalchemy import select

from app.actions import Refused
from app.extensions import db, lifecycle, settings
from app.lifecycle.reconcile import reconcile
from app.models import EVENT_OUTCOMES, LIFECYCLE_ACTIONS, Alert, Job, JobAudit, LifecycleEvent, StorageSnapshot, utcnow
from app.monitoring import daily_activity, storage_stats
from app.web import bp, charts, web_user
from app.web.pages import PAGE_SIZE, _page_number

CHART_DAYS = 30


@bp.get("/storage")
def storage() -> Any:
    """Storage figures: an admin's cover the site (the disk, its trend, alerts); a member's, their own runs."""
    user = web_user()
    owner = None if user.is_admin else user.id
    now = utcnow()
    stats = storage_stats(db.session, settings().scraper_data_path, owner)
    days = daily_activity(db.session, CHART_DAYS, now, owner)
    snapshots = (
        db.session.scalars(
            select(StorageSnapshot)
            .where(StorageSnapshot.taken_at >= now - timedelta(days=CHART_DAYS))
            .order_by(StorageSnapshot.taken_at)
        ).all()
        if user.is_admin  # snapshots are of the whole site
        else []
    )
    figures = {
        "tiers-now": charts.tiers_now(stats),
        "savings": charts.savings_per_day(days),
        "success": charts.archive_success(days),
        "deletions": charts.deletions_per_day(days),
    }
    if len(snapshots) >= 2:
        figures["trend"] = charts.tiers_over_time(snapshots)
    alerts = (
        db.session.scalars(
            select(Alert).where(Alert.resolved_at.is_(None)).order_by(Alert.created_at.desc()).limit(50)
        ).all()
        if user.is_admin
        else []
    )
    disk = stats["disk"]
    return render_template(
        "storage.html",
        stats=stats,
        days=days,
        figures=figures,
        snapshots=len(snapshots),
        alerts=alerts,
        disk_alarm=disk is not None and disk["used_percent"] >= settings().storage_alert_percent,
        threshold=settings().storage_alert_percent,
        is_admin=user.is_admin,
    )


@bp.get("/storage/check")
def storage_check() -> Any:
    """The read-only reconcile report (SPEC §9), for admins: what a repair would do, what needs a person."""
    if not web_user().is_admin:
        raise Refused(403, "only admins see the storage check")
    report = reconcile(lifecycle(), repair=False)
    return render_template("storage_check.html", report=report, checked_at=utcnow())


@bp.get("/audit")
def audit() -> Any:
    user = web_user()
    action = request.args.get("action", "")
    outcome = request.args.get("outcome", "")
    if action and action not in LIFECYCLE_ACTIONS:
        raise Refused(400, f"action must be one of {', '.join(LIFECYCLE_ACTIONS)}")
    if outcome and outcome not in EVENT_OUTCOMES:
        raise Refused(400, f"outcome must be one of {', '.join(EVENT_OUTCOMES)}")
    number = _page_number(request.args.get("page"))
    events = select(LifecycleEvent)
    deletions = select(JobAudit)
    if not user.is_admin:  # a member's own runs; a hard-deleted run's audit row still names its owner
        events = events.where(LifecycleEvent.job_id.in_(select(Job.id).where(Job.created_by == user.id)))
        deletions = deletions.where(JobAudit.created_by == user.id)
    if action:
        events = events.where(LifecycleEvent.action == action)
    if outcome:
        events = events.where(LifecycleEvent.outcome == outcome)
    rows = db.session.scalars(
        events.order_by(LifecycleEvent.started_at.desc(), LifecycleEvent.id.desc())
        .limit(PAGE_SIZE + 1)
        .offset((number - 1) * PAGE_SIZE)
    ).all()
    names = dict(db.session.execute(select(Job.id, Job.name).where(Job.id.in_({row.job_id for row in rows}))).all())
    removed = db.session.scalars(deletions.order_by(JobAudit.deleted_at.desc()).limit(20)).all()
    return render_template(
        "audit.html",
        events=rows[:PAGE_SIZE],
        more=len(rows) > PAGE_SIZE,
        names=names,
        removed=removed,
        actions=LIFECYCLE_ACTIONS,
        outcomes=EVENT_OUTCOMES,
        action=action,
        outcome=outcome,
        page=number,
    )
