"""The dashboard's reports: storage (charts and alerts) and the audit trail."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from sqlalchemy import select

from app.extensions import db, lifecycle, redis_connection, settings
from app.lifecycle import access, deletion_limits, policies, queries, retention
from app.lifecycle.policy import next_passes
from app.lifecycle.reconcile import reconcile
from app.models import EVENT_OUTCOMES, LIFECYCLE_ACTIONS, Alert, Job, StorageSnapshot, utcnow
from app.monitoring import forecast
from app.monitoring.figures import daily_activity, disk_figures, site_figures, storage_stats
from app.web import bp, charts, web_user
from app.web.policies import shown
from app.web.runs import PAGE_SIZE, page_of

CHART_DAYS = 30
RESOLVED_SHOWN = 10  # the alerts resolved most recently, under the open ones
FORECAST_WINDOWS = (30, 90, 365)  # the forecast's spans offered; the first is the page's


@bp.get("/storage")
def storage() -> Any:
    """Storage figures: an admin's cover the site (the disk, its trend, alerts); a member's, their own runs.

    The site's figures are the cached ones the API and ``/metrics`` share (``as_of`` says when).
    """
    user = web_user()
    now = utcnow()
    data_path = settings().scraper_data_path
    if user.is_admin:
        stats = site_figures(db.session, data_path, redis_connection())
    else:
        stats = storage_stats(db.session, data_path, user)
    days = daily_activity(db.session, CHART_DAYS, now, user)
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
    alerts = resolved = []
    if user.is_admin:  # the alerts are of the whole site
        alerts = db.session.scalars(
            select(Alert).where(Alert.resolved_at.is_(None)).order_by(Alert.created_at.desc()).limit(50)
        ).all()
        resolved = db.session.scalars(
            select(Alert).where(Alert.resolved_at.is_not(None)).order_by(Alert.resolved_at.desc()).limit(RESOLVED_SHOWN)
        ).all()
    disk = stats["disk"]
    return render_template(
        "storage.html",
        stats=stats,
        days=days,
        figures=figures,
        snapshots=len(snapshots),
        alerts=alerts,
        resolved=resolved,
        alerts_schedule=settings().alerts_schedule,
        webhook=bool(settings().alert_webhook_url),
        # The disk past the line before the alert check has opened its alert (the alert says it once open).
        disk_alarm=disk is not None
        and disk["used_percent"] >= settings().storage_alert_percent
        and not any(alert.kind == "disk" for alert in alerts),
        threshold=settings().storage_alert_percent,
        is_admin=user.is_admin,
        confirmation=deletion_limits.pending_confirmation(db.session) if user.is_admin else None,
        policies=policies.list_policies(db.session),
        settings=settings(),
        shown=shown,
    )


@bp.get("/storage/forecast")
def storage_forecast() -> Any:
    """Where storage is heading, for admins: the forecast (app.monitoring.forecast) and the next passes.

    The storage page loads it after itself (its grouped sums take longer than the page's cached
    figures); without JavaScript it is a page of its own.
    """
    access.require_admin(web_user(), "see the storage forecast: it covers every user's runs")
    days = forecast.days_asked(request.args.get("days"), default=FORECAST_WINDOWS[0])
    now = utcnow()
    s = settings()
    result = forecast.site_forecast(db.session, s, days=days, now=now)
    passes = next_passes(db.session, retention.load_rules(db.session, s), now)
    template = "_storage_forecast.html" if request.headers.get("HX-Request") else "storage_forecast.html"
    return render_template(
        template,
        result=result,
        figure=charts.storage_forecast(result, s.storage_alert_percent),
        passes=passes,
        days=days,
        windows=FORECAST_WINDOWS,
        threshold=s.storage_alert_percent,
        used_now=disk_figures(s.scraper_data_path)["used_percent"],
        crossing_in=(date.fromisoformat(crossing) - now.date()).days
        if (crossing := result["alert_threshold_date"])
        else None,
    )


@bp.post("/storage/confirm-deletions")
def confirm_deletions() -> Any:
    """Release the cleanup pass the deletion limit holds, on an admin's word and reason."""
    user = web_user()
    access.require_admin(user, "confirm deletions held by the deletion limit")
    reason = request.form.get("reason")
    alert = deletion_limits.confirm_deletions(db.session, actor=user.username, reason=reason, now=utcnow())
    flash(f"Deletions {deletion_limits.released_text(alert)}.")
    if request.headers.get("HX-Request"):
        return "", 204, {"HX-Redirect": url_for("web.storage")}
    return redirect(url_for("web.storage"))


@bp.get("/storage/check")
def storage_check() -> Any:
    """The read-only reconcile report (SPEC §9), for admins: what a repair would do, what needs a person."""
    access.require_admin(web_user(), "see the storage check")
    report = reconcile(lifecycle(), repair=False)
    return render_template("storage_check.html", report=report, checked_at=utcnow())


@bp.get("/audit")
def audit() -> Any:
    user = web_user()
    action = request.args.get("action", "")
    outcome = request.args.get("outcome", "")
    number, offset = page_of(request.args.get("page"))
    events = queries.events_of(user, action=action or None, outcome=outcome or None)
    rows = db.session.scalars(events.order_by(*queries.NEWEST_EVENTS_FIRST).limit(PAGE_SIZE + 1).offset(offset)).all()
    names = dict(db.session.execute(select(Job.id, Job.name).where(Job.id.in_({row.job_id for row in rows}))).all())
    deletions = queries.audit_of(user)  # a hard-deleted run's audit row still names its owner
    removed = db.session.scalars(deletions.order_by(*queries.NEWEST_DELETIONS_FIRST).limit(20)).all()
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
