"""How the API shows rows: runs and lifecycle events as JSON objects."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, Uuid

from app.lifecycle.runs import tier_from
from app.models import Job, LifecycleEvent, UTCDateTime


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


def _converter(column: Any) -> Any:
    if isinstance(column.type, UTCDateTime):
        return iso
    if isinstance(column.type, Uuid):
        return str
    return None


# Listing pages serialise thousands of values a second: decide each column's conversion once.
_JOB_CONVERTERS = [(column.key, _converter(column)) for column in Job.__table__.columns]
JOB_COLUMNS = tuple(Job.__table__.columns)


_POSITION = {key: index for index, (key, _convert) in enumerate(_JOB_CONVERTERS)}


def job_json(job: Any) -> dict[str, Any]:
    """A run (an ORM object or a row of ``JOB_COLUMNS``): every column, its ``tier`` and ``restored``."""
    values = tuple(job) if isinstance(job, Row) else tuple(getattr(job, key) for key, _convert in _JOB_CONVERTERS)
    data = {
        key: convert(value) if convert is not None and value is not None else value
        for (key, convert), value in zip(_JOB_CONVERTERS, values, strict=True)
    }
    archived_at, deleted_at = values[_POSITION["archived_at"]], values[_POSITION["deleted_at"]]
    data["tier"] = tier_from(archived_at, deleted_at)
    data["restored"] = values[_POSITION["restored_at"]] is not None and deleted_at is None
    return data


def event_json(event: LifecycleEvent) -> dict[str, Any]:
    return {key: _plain(getattr(event, key)) for key in (c.key for c in LifecycleEvent.__table__.columns)}


def page(items: list[dict[str, Any]], total: int, limit: int, offset: int, *, capped: bool = False) -> dict[str, Any]:
    body = {"items": items, "total": total, "limit": limit, "offset": offset}
    if capped:
        body["total_capped"] = True  # at least ``total`` rows match; narrow the filters to count them all
    return body
