"""How the API shows rows, each shape declared once: the serializer and its OpenAPI schema both come from it.

A ``Shape`` names the columns a JSON object carries (as the database gives them), the values a
column may hold where a rule elsewhere limits them, and the fields computed from the columns.
``job_json`` and ``event_json`` write exactly the shape's keys; ``Shape.schema`` describes them
for ``/openapi.json``, typed from the columns' SQLAlchemy types. No schema library: pydantic v2
made a page of 1,000 runs ~3x slower to write (6.6 ms against 2.3 ms with orjson, measured for
issue 11), and would have been one more declaration of the same columns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from sqlalchemy import JSON, Boolean, Column, Integer, Row, String, Uuid

from app.config import COMPRESSIONS, DELETION_STRATEGIES
from app.lifecycle.alerts import SEVERITIES
from app.lifecycle.retention import Explanation
from app.lifecycle.runs import tier_from
from app.models import (
    EVENT_OUTCOMES,
    FINISHED_STATUSES,
    JOB_STATUSES,
    LIFECYCLE_ACTIONS,
    POLICY_CHANGES,
    VERIFY_OUTCOMES,
    Alert,
    ArchiveMember,
    Job,
    JobAudit,
    LifecycleEvent,
    PolicyChange,
    RetentionPolicy,
    StorageSnapshot,
    UTCDateTime,
)
from app.monitoring.figures import STORED_TIERS

_ONCE = datetime(2000, 1, 1, tzinfo=UTC)
# The tiers a run can be in, as tier_from names them: neither stamp, archived, deleted.
TIERS = tuple(tier_from(archived, deleted) for archived, deleted in ((None, None), (_ONCE, None), (_ONCE, _ONCE)))
MEMBER_KINDS = ("dir", "file", "symlink")


def column_schema(
    column: Column[Any], *, enum: tuple[str, ...] | None = None, nullable: bool | None = None
) -> dict[str, Any]:
    """The JSON Schema of a column's value as the JSON provider writes it (UUIDs and times as strings)."""
    kind = column.type
    schema: dict[str, Any]
    if isinstance(kind, Uuid):
        schema = {"type": "string", "format": "uuid"}
    elif isinstance(kind, UTCDateTime):
        schema = {"type": "string", "format": "date-time"}
    elif isinstance(kind, Boolean):
        schema = {"type": "boolean"}
    elif isinstance(kind, Integer):
        schema = {"type": "integer"}
    elif isinstance(kind, String):
        schema = {"type": "string"}
        if kind.length is not None and enum is None:  # the values say more than the column's width
            schema["maxLength"] = kind.length
    elif isinstance(kind, JSON):
        schema = {"type": "object"}  # stats, details, data: the API stores objects only
    else:
        raise TypeError(f"no JSON Schema for column {column} of type {kind!r}")
    if enum is not None:
        schema["enum"] = list(enum)
    if column.nullable if nullable is None else nullable:
        schema["type"] = [schema["type"], "null"]
        if enum is not None:
            schema["enum"].append(None)
    return schema


@dataclass(frozen=True)
class Shape:
    """A JSON object the API writes: ``columns`` as stored, then the ``computed`` fields (name → schema)."""

    name: str
    columns: tuple[Column[Any], ...]
    enums: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    computed: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    # Columns whose JSON type says less than the rules that fill them (a JSON column holding a list).
    overrides: Mapping[str, dict[str, Any]] = field(default_factory=dict)

    @cached_property  # read once per row written: worked out once (the dataclass is frozen, not slotted)
    def column_keys(self) -> tuple[str, ...]:
        return tuple(column.key for column in self.columns)

    @property
    def keys(self) -> tuple[str, ...]:
        return (*self.column_keys, *self.computed)

    def schema(self) -> dict[str, Any]:
        unknown = self.enums.keys() - set(self.column_keys)
        if unknown:
            raise ValueError(f"{self.name}: enums for columns it does not carry: {sorted(unknown)}")
        properties = {column.key: column_schema(column, enum=self.enums.get(column.key)) for column in self.columns}
        properties.update(self.overrides)
        return {"type": "object", "required": list(self.keys), "properties": {**properties, **self.computed}}


def _columns(model: Any, *keys: str) -> tuple[Column[Any], ...]:
    table = model.__table__
    return tuple(table.columns) if not keys else tuple(table.columns[key] for key in keys)


JOB = Shape(
    "Job",
    _columns(Job),
    enums={"status": JOB_STATUSES, "verify_outcome": VERIFY_OUTCOMES, "compression": COMPRESSIONS},
    computed={
        "tier": {"type": "string", "enum": list(TIERS)},
        "restored": {"type": "boolean", "description": "a working copy of the archive is in jobs/"},
        "policy": {
            "type": ["string", "null"],
            "description": "the retention policy governing the run; null: the environment's defaults",
        },
        "retention_reason": {"type": "string", "description": "why the run is kept, or when it moves on, in words"},
    },
)
EVENT = Shape("Event", _columns(LifecycleEvent), enums={"action": LIFECYCLE_ACTIONS, "outcome": EVENT_OUTCOMES})
AUDIT = Shape("Audit", _columns(JobAudit), enums={"strategy": DELETION_STRATEGIES})
SNAPSHOT = Shape("Snapshot", tuple(c for c in _columns(StorageSnapshot) if c.key != "id"))
ALERT = Shape(
    "Alert",
    _columns(Alert, "id", "kind", "severity", "message", "data", "created_at", "resolved_at"),
    enums={"severity": SEVERITIES},
    computed={"open": {"type": "boolean", "description": "not resolved yet"}},
)
MEMBER = Shape(
    "Member",
    _columns(ArchiveMember, "path", "kind", "size", "sha256", "link_target"),
    enums={"kind": MEMBER_KINDS},
)

POLICY = Shape(
    "Policy",
    _columns(RetentionPolicy),
    overrides={
        "statuses": {
            "type": "array",
            "items": {"type": "string", "enum": list(FINISHED_STATUSES)},
            "description": "the statuses it applies to; empty: every finished status",
        }
    },
)
POLICY_CHANGE = Shape("PolicyChange", _columns(PolicyChange), enums={"action": POLICY_CHANGES})
SHAPES = (JOB, EVENT, AUDIT, SNAPSHOT, ALERT, MEMBER, POLICY, POLICY_CHANGE)


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z``."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


# Values go out as the database gives them: the JSON provider (orjson) writes datetimes as
# ISO 8601 with a Z and UUIDs as strings, so a page of runs needs no conversion here.
JOB_COLUMNS = JOB.columns
_JOB_KEYS = JOB.column_keys
_ARCHIVED_AT, _DELETED_AT, _RESTORED_AT = (_JOB_KEYS.index(k) for k in ("archived_at", "deleted_at", "restored_at"))
EVENT_COLUMNS = EVENT.columns
_EVENT_KEYS = EVENT.column_keys


def job_json(job: Any, words: Explanation) -> dict[str, Any]:
    """A run (an ORM object or a row of ``JOB_COLUMNS``): the ``JOB`` shape, every column, ``tier``,
    ``restored``, and its retention in ``words`` (``app.lifecycle.retention.explain``)."""
    values = tuple(job) if isinstance(job, Row) else tuple(getattr(job, key) for key in _JOB_KEYS)
    data = dict(zip(_JOB_KEYS, values, strict=True))
    deleted_at = values[_DELETED_AT]
    data["tier"] = tier_from(values[_ARCHIVED_AT], deleted_at)
    data["restored"] = values[_RESTORED_AT] is not None and deleted_at is None
    data["policy"], data["retention_reason"] = words.policy, words.reason
    return data


def event_json(event: Any) -> dict[str, Any]:
    """A lifecycle event (an ORM object or a row of ``EVENT_COLUMNS``): the ``EVENT`` shape."""
    if isinstance(event, Row):
        return dict(zip(_EVENT_KEYS, event, strict=True))
    return {key: getattr(event, key) for key in _EVENT_KEYS}


def _columns_of(shape: Shape, row: Any) -> dict[str, Any]:
    return {key: getattr(row, key) for key in shape.column_keys}


def audit_json(row: JobAudit) -> dict[str, Any]:
    """A deletion's audit record: the ``AUDIT`` shape."""
    return _columns_of(AUDIT, row)


def snapshot_json(row: StorageSnapshot) -> dict[str, Any]:
    """An hourly storage snapshot: the ``SNAPSHOT`` shape."""
    return _columns_of(SNAPSHOT, row)


def alert_json(row: Alert) -> dict[str, Any]:
    """An alert: the ``ALERT`` shape, with ``open`` while it is not resolved."""
    return {**_columns_of(ALERT, row), "open": row.resolved_at is None}


def member_json(row: ArchiveMember) -> dict[str, Any]:
    """One member of an archive's manifest: the ``MEMBER`` shape."""
    return _columns_of(MEMBER, row)


def page(items: list[dict[str, Any]], total: int, limit: int, offset: int, *, capped: bool = False) -> dict[str, Any]:
    body = {"items": items, "total": total, "limit": limit, "offset": offset}
    if capped:
        body["total_capped"] = True  # at least ``total`` rows match; narrow the filters to count them all
    return body


def policy_json(row: RetentionPolicy) -> dict[str, Any]:
    """A retention policy: the ``POLICY`` shape."""
    return _columns_of(POLICY, row)


def policy_change_json(row: PolicyChange) -> dict[str, Any]:
    """One change to the retention policies: the ``POLICY_CHANGE`` shape."""
    return _columns_of(POLICY_CHANGE, row)


# -- run patterns per scraper (app.monitoring.scrapers) --------------------------------------------
_RUNS_BYTES = {
    "type": "object",
    "required": ["runs", "bytes"],
    "properties": {"runs": {"type": "integer"}, "bytes": {"type": "integer"}},
}
SCRAPER = Shape(
    "ScraperFigures",
    _columns(Job, "scraper"),
    computed={
        "runs": {"type": "integer", "description": "runs started in the window"},
        "runs_per_day": {"type": "number"},
        "finished": {"type": "integer", "description": "of those, runs that completed, failed or were cancelled"},
        "failed": {"type": "integer"},
        "failure_rate": {"type": ["number", "null"], "description": "failed / finished; null: none finished"},
        "median_size_bytes": {
            "type": ["number", "null"],
            "description": "median folder size of the finished runs (an even count: the mean of the middle two)",
        },
        "tiers": {
            "type": "object",
            "required": list(STORED_TIERS),
            "properties": {tier: _RUNS_BYTES for tier in STORED_TIERS},
            "description": "what the scraper's runs hold now, whenever they ran (restored: working copies)",
        },
        "per_day": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["day", "runs", "failed"],
                "properties": {
                    "day": {"type": "string", "format": "date"},
                    "runs": {"type": "integer"},
                    "failed": {"type": "integer"},
                },
            },
            "description": "each UTC day of the window, oldest first",
        },
    },
)
