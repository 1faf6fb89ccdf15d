"""How the API shows rows: runs and lifecycle events as JSON objects."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.lifecycle.runs import tier_of
from app.models import Job, LifecycleEvent

_JOB_COLUMNS = [column.key for column in Job.__table__.columns]


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z``."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if value is not None and not isinstance(value, (str, int, float, bool, dict, list)):
        return str(value)
    return value


def job_json(job: Job) -> dict[str, Any]:
    """A run: every ``jobs`` column, plus its ``tier`` and whether a restored copy is live."""
    data = {key: _plain(getattr(job, key)) for key in _JOB_COLUMNS}
    data["tier"] = tier_of(job)
    data["restored"] = job.restored_at is not None and job.deleted_at is None
    return data


def event_json(event: LifecycleEvent) -> dict[str, Any]:
    return {key: _plain(getattr(event, key)) for key in (c.key for c in LifecycleEvent.__table__.columns)}


def page(items: list[dict[str, Any]], total: int, limit: int, offset: int) -> dict[str, Any]:
    return {"items": items, "total": total, "limit": limit, "offset": offset}
