"""The Scrapers page: run patterns per scraper (app.monitoring.scrapers) as a table and Plotly charts."""

from __future__ import annotations

from typing import Any

from flask import render_template, request

from app.extensions import db
from app.models import utcnow
from app.monitoring.forecast import days_asked
from app.monitoring.scrapers import scraper_stats
from app.web import bp, charts, web_user

WINDOWS = (7, 30, 90, 365)  # the windows offered; ?days= takes any from 1 to 365


@bp.get("/scrapers")
def scrapers() -> Any:
    """Runs per day, failure rate, median size and bytes per tier of each scraper: an admin's cover
    every scraper, a member's the scrapers of their own runs (the same figures as the API's)."""
    user = web_user()
    days = days_asked(request.args.get("days"))
    figures = scraper_stats(db.session, user, days=days, now=utcnow())
    plots = {}
    if figures["scrapers"]:
        plots = {
            "runs-per-day": charts.scraper_runs_per_day(figures),
            "failure-rate": charts.scraper_failure_rates(figures),
            "median-size": charts.scraper_median_sizes(figures),
            "tiers": charts.scraper_bytes_by_tier(figures),
        }
    return render_template(
        "scrapers.html",
        figures=figures,
        plots=plots,
        days=days,
        windows=sorted({*WINDOWS, days}),
        tiers=charts.TIER_NAMES,
        is_admin=user.is_admin,
    )
