"""The storage page's charts, built with Plotly and drawn by the vendored plotly.js (no CDN)."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from app.monitoring.figures import STORED_TIERS

COLORS = {
    "active": "#2f6f5e",
    "archived": "#3538cd",
    "trash": "#b54708",
    "restored": "#7a5af8",
    "failed": "#b42318",
    "original": "#98a2b3",
}
TIER_NAMES = STORED_TIERS  # the tiers whose bytes are on disk, in the order the charts stack them
GB = 1024**3


def _layout(title: str, **extra: Any) -> dict[str, Any]:
    return {
        "title": {"text": title, "font": {"size": 15}, "x": 0, "xanchor": "left"},
        "height": 300,
        "margin": {"l": 56, "r": 16, "t": 44, "b": 40},
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "font": {"family": "system-ui, sans-serif", "size": 12, "color": "#1d2430"},
        "legend": {"orientation": "h", "y": -0.18},
        "xaxis": {"gridcolor": "#eef0f3"},
        "yaxis": {"gridcolor": "#eef0f3", "rangemode": "tozero"},
        **extra,
    }


def _mb(value: int) -> float:
    return round(value / 1024**2, 2)


def tiers_now(stats: dict[str, Any]) -> str:
    tiers = stats["tiers"]
    names = TIER_NAMES
    figure = go.Figure(
        go.Bar(
            x=[name.capitalize() for name in names],
            y=[_mb(tiers[name]["bytes"]) for name in names],
            text=[f"{tiers[name]['runs']} run{'' if tiers[name]['runs'] == 1 else 's'}" for name in names],
            marker_color=[COLORS[name] for name in names],
            hovertemplate="%{x}: %{y} MB, %{text}<extra></extra>",
        ),
        layout=_layout("Storage by tier now (MB)"),
    )
    return figure.to_json()


def tiers_over_time(snapshots: list[Any]) -> str:
    """The snapshots' bytes per tier, stacked; the demo's history (``demo`` snapshots) is shaded and named."""
    figure = go.Figure(layout=_layout("Storage by tier over time (MB)", hovermode="x unified"))
    taken = [snapshot.taken_at for snapshot in snapshots]
    for name in TIER_NAMES:
        figure.add_trace(
            go.Scatter(
                x=taken,
                y=[_mb(getattr(snapshot, f"{name}_bytes")) for snapshot in snapshots],
                name=name.capitalize(),
                stackgroup="tiers",
                line={"color": COLORS[name], "width": 1},
            )
        )
    demo = [snapshot.taken_at for snapshot in snapshots if snapshot.demo]
    if demo:
        figure.add_vrect(
            x0=min(demo),
            x1=max(demo),
            fillcolor=COLORS["original"],
            opacity=0.12,
            line_width=0,
            annotation_text="demo history",
            annotation_position="top left",
        )
    return figure.to_json()


def savings_per_day(days: list[dict[str, Any]]) -> str:
    x = [day["day"] for day in days]
    figure = go.Figure(layout=_layout("Compression per day (MB in → MB stored)", barmode="group"))
    figure.add_trace(
        go.Bar(x=x, y=[_mb(d["original_bytes"]) for d in days], name="Archived runs", marker_color=COLORS["original"])
    )
    figure.add_trace(
        go.Bar(x=x, y=[_mb(d["archived_bytes"]) for d in days], name="Their archives", marker_color=COLORS["archived"])
    )
    return figure.to_json()


def archive_success(days: list[dict[str, Any]]) -> str:
    x = [day["day"] for day in days]
    done = sum(d["archived"] for d in days)
    failed = sum(d["archive_failed"] for d in days)
    rate = f"{100 * done / (done + failed):.1f} % succeeded" if done + failed else "no archives yet"
    figure = go.Figure(layout=_layout(f"Archive attempts per day ({rate})", barmode="stack"))
    figure.add_trace(go.Bar(x=x, y=[d["archived"] for d in days], name="Succeeded", marker_color=COLORS["active"]))
    figure.add_trace(go.Bar(x=x, y=[d["archive_failed"] for d in days], name="Failed", marker_color=COLORS["failed"]))
    return figure.to_json()


def deletions_per_day(days: list[dict[str, Any]]) -> str:
    x = [day["day"] for day in days]
    figure = go.Figure(layout=_layout("Deletions per day", barmode="stack"))
    figure.add_trace(go.Bar(x=x, y=[d["deleted"] for d in days], name="Deleted", marker_color=COLORS["trash"]))
    figure.add_trace(
        go.Bar(x=x, y=[d["purged"] for d in days], name="Purged from the trash", marker_color=COLORS["failed"])
    )
    return figure.to_json()


# -- the Scrapers page (app.monitoring.scrapers) --------------------------------------------------


# One colour per scraper, in the order they are listed; none of them a tier's colour or the failures' red.
SCRAPER_COLORS = ("#0e7490", "#a15c07", "#6941c6", "#4d7c0f", "#c11574", "#475467", "#1570ef", "#e478fa", "#15b79e")


def _scraper_label(name: str) -> str:
    return name or "(no scraper)"


def scraper_runs_per_day(figures: dict[str, Any]) -> str:
    """Runs started per UTC day, stacked by scraper."""
    figure = go.Figure(layout=_layout(f"Runs per day by scraper (last {figures['days']} days)", barmode="stack"))
    for number, entry in enumerate(figures["scrapers"]):
        days = entry["per_day"]
        figure.add_trace(
            go.Bar(
                x=[d["day"] for d in days],
                y=[d["runs"] for d in days],
                name=_scraper_label(entry["scraper"]),
                marker_color=SCRAPER_COLORS[number % len(SCRAPER_COLORS)],
            )
        )
    return figure.to_json()


def scraper_failure_rates(figures: dict[str, Any]) -> str:
    """Each scraper's share of failed runs among its finished ones in the window."""
    rows = [entry for entry in figures["scrapers"] if entry["failure_rate"] is not None]
    figure = go.Figure(
        go.Bar(
            x=[_scraper_label(entry["scraper"]) for entry in rows],
            y=[round(100 * entry["failure_rate"], 2) for entry in rows],
            text=[f"{entry['failed']} of {entry['finished']}" for entry in rows],
            marker_color=COLORS["failed"],
            hovertemplate="%{x}: %{y} % failed (%{text})<extra></extra>",
        ),
        layout=_layout("Failure rate (% of finished runs)"),
    )
    return figure.to_json()


def scraper_median_sizes(figures: dict[str, Any]) -> str:
    """Each scraper's median run size in the window."""
    rows = [entry for entry in figures["scrapers"] if entry["median_size_bytes"] is not None]
    figure = go.Figure(
        go.Bar(
            x=[_scraper_label(entry["scraper"]) for entry in rows],
            y=[_mb(entry["median_size_bytes"]) for entry in rows],
            marker_color=COLORS["original"],
            hovertemplate="%{x}: %{y} MB<extra></extra>",
        ),
        layout=_layout("Median run size (MB)"),
    )
    return figure.to_json()


def scraper_bytes_by_tier(figures: dict[str, Any]) -> str:
    """What each scraper's runs hold now, stacked by tier."""
    names = [_scraper_label(entry["scraper"]) for entry in figures["scrapers"]]
    figure = go.Figure(layout=_layout("Storage by scraper and tier now (MB)", barmode="stack"))
    for tier in TIER_NAMES:
        figure.add_trace(
            go.Bar(
                x=names,
                y=[_mb(entry["tiers"][tier]["bytes"]) for entry in figures["scrapers"]],
                name=tier.capitalize(),
                marker_color=COLORS[tier],
            )
        )
    return figure.to_json()


# -- the storage page's forecast (app.monitoring.forecast) ----------------------------------------


def storage_forecast(result: dict[str, Any], threshold: int) -> str:
    """The projected bytes per tier, stacked, and below them the disk's use against the alert line."""
    days = result["days"]
    x = [day["date"] for day in days]
    crossing = result["alert_threshold_date"]
    title = (
        f"Forecast: the disk reaches {threshold} % on {crossing}"
        if crossing
        else f"Forecast: the disk stays under {threshold} % for {len(days)} days"
    )
    figure = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.68, 0.32], vertical_spacing=0.08)
    figure.update_layout(
        _layout(
            title,
            height=420,
            hovermode="x unified",
            yaxis={"gridcolor": "#eef0f3", "rangemode": "tozero", "title": {"text": "MB"}},
            xaxis2={"gridcolor": "#eef0f3"},
            yaxis2={"gridcolor": "#eef0f3", "range": [0, 100], "dtick": 50, "ticksuffix": " %"},
        )
    )
    for name in TIER_NAMES:
        figure.add_trace(
            go.Scatter(
                x=x,
                y=[_mb(day[f"{name}_bytes"]) for day in days],
                name=name.capitalize(),
                stackgroup="tiers",
                line={"color": COLORS[name], "width": 1},
            ),
            row=1,
            col=1,
        )
    figure.add_trace(
        go.Scatter(
            x=x,
            y=[day["disk_used_percent"] for day in days],
            name="Disk used (%)",
            line={"color": "#1d2430", "width": 2},
        ),
        row=2,
        col=1,
    )
    figure.add_hline(
        y=threshold,
        row=2,
        col=1,
        line={"color": COLORS["failed"], "dash": "dash", "width": 1},
        annotation_text=f"alert at {threshold} %",
        annotation_position="top left",
    )
    if crossing:
        figure.add_vline(x=crossing, line={"color": COLORS["failed"], "width": 1})
    return figure.to_json()
