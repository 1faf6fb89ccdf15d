"""How the API shows rows: runs and lifecycle events as JSON objects."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row

from app.lifecycle.runs import tier_from
from app.models import Job, LifecycleEvent


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z``."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


# Values go out as the database gives them: the JSON provider (orjson) writes datetimes as
# ISO 8601 with a Z and UUIDs as strings, so a page of runs needs no conversion here.
JOB_COLUMNS = tuple(Job.__table__.columns)
_JOB_KEYS = tuple(column.key for column in JOB_COLUMNS)
_ARCHIVED_AT, _DELETED_AT, _RESTORED_AT = (_JOB_KEYS.index(k) for k in ("archived_at", "deleted_at", "restored_at"))
EVENT_COLUMNS = tuple(LifecycleEvent.__table__.columns)
_EVENT_KEYS = tuple(column.key for column in EVENT_COLUMNS)


def job_json(job: Any) -> dict[str, Any]:
    """A run (an ORM object or a row of ``JOB_COLUMNS``): every column, its ``tier`` and ``restored``."""
    values = tuple(job) if isinstance(job, Row) else tuple(getattr(job, key) for key in _JOB_KEYS)
    data = dict(zip(_JOB_KEYS, values, strict=True))
    deleted_at = values[_DELETED_AT]
    data["tier"] = tier_from(values[_ARCHIVED_AT], deleted_at)
    data["restored"] = values[_RESTORED_AT] is not None and deleted_at is None
    return data


def event_json(event: Any) -> dict[str, Any]:
    """A lifecycle event (an ORM object or a row of ``EVENT_COLUMNS``)."""
    if isinstance(event, Row):
        return dict(zip(_EVENT_KEYS, event, strict=True))
    return {key: getattr(event, key) for key in _EVENT_KEYS}


def page(items: list[dict[str, Any]], total: int, limit: int, offset: int, *, capped: bool = False) -> dict[str, Any]:
    body = {"items": items, "total": total, "limit": limit, "offset": offset}
    if capped:
        body["total_capped"] = True  # at least ``total`` rows match; narrow the filters to count them all
    return body
