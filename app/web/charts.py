"""The storage page's charts, built with Plotly and drawn by the vendored plotly.js (no CDN)."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

COLORS = {"active": "#2f6f5e", "archived": "#3538cd", "trash": "#b54708", "failed": "#b42318", "original": "#98a2b3"}
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
    names = ["active", "archived", "trash"]
    figure = go.Figure(
        go.Bar(
            x=[name.capitalize() for name in names],
            y=[_mb(tiers[name]["bytes"]) for name in names],
            text=[f"{tiers[name]['runs']} runs" for name in names],
            marker_color=[COLORS[name] for name in names],
            hovertemplate="%{x}: %{y} MB, %{text}<extra></extra>",
        ),
        layout=_layout("Storage by tier now (MB)"),
    )
    return figure.to_json()


def tiers_over_time(snapshots: list[Any]) -> str:
    figure = go.Figure(layout=_layout("Storage by tier over time (MB)", hovermode="x unified"))
    taken = [snapshot.taken_at for snapshot in snapshots]
    for name, column in (("active", "active_bytes"), ("archived", "archived_bytes"), ("trash", "trash_bytes")):
        figure.add_trace(
            go.Scatter(
                x=taken,
                y=[_mb(getattr(snapshot, column)) for snapshot in snapshots],
                name=name.capitalize(),
                stackgroup="tiers",
                line={"color": COLORS[name], "width": 1},
            )
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
