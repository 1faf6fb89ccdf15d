"""Parsing what a request says: query parameters, JSON bodies, ids and dates. Bad input → 400."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from flask import request

from app.api import bp
from app.api.errors import ApiError
from app.lifecycle.naming import BadJobId, parse_job_id
from app.names import field_with_nul

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
# Skipping rows costs as much as reading them: deeper pages use a run list's ``cursor`` or a date range.
MAX_OFFSET = 10_000
_INTEGER = re.compile(r"^\d{1,9}$")
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# Scraper stats are two or three levels deep; 32 leaves room for any honest shape and keeps far
# from every recursive walker's limit. orjson writes at most 255 levels: a run with 300-level stats
# was stored, then every answer naming it failed (500), for good. (Python's json stops near 1,000.)
MAX_JSON_DEPTH = 32


@bp.before_request
def refuse_unstorable_query() -> None:
    """Refuse a NUL byte in the query: PostgreSQL text cannot hold one (psycopg raises)."""
    if (name := field_with_nul(request.args.items(multi=True))) is not None:
        raise ApiError(400, f"query parameter {name!r} must not contain a NUL byte")


def job_id_param(value: str) -> uuid.UUID:
    try:
        return parse_job_id(value)
    except BadJobId as error:
        raise ApiError(400, str(error), "invalid_id") from None


def pagination(args: Mapping[str, str], *, max_offset: int | None = MAX_OFFSET) -> tuple[int, int]:
    """Return ``(limit, offset)``: limit ≥ 1 (default 50, capped at 500), 0 ≤ offset ≤ ``max_offset``.

    Lists whose depth is bounded by nature (one archive's members) pass ``max_offset=None``.
    """
    raw_limit = args.get("limit")
    raw_offset = args.get("offset")
    if raw_limit is None:
        limit = DEFAULT_LIMIT
    elif _INTEGER.match(raw_limit) and int(raw_limit) >= 1:
        limit = min(int(raw_limit), MAX_LIMIT)
    else:
        raise ApiError(400, f"limit must be a whole number of at least 1, got {raw_limit[:40]!r}")
    if raw_offset is None:
        offset = 0
    elif _INTEGER.match(raw_offset):
        offset = int(raw_offset)
    else:
        raise ApiError(400, f"offset must be a whole number of at least 0, got {raw_offset[:40]!r}")
    if max_offset is not None and offset > max_offset:
        raise ApiError(
            400,
            f"offset must be at most {max_offset:,}: narrow the list with start_date/end_date "
            "(run lists also page on with next_cursor)",
        )
    return limit, offset


def parse_timestamp(value: Any, name: str) -> datetime:
    """Parse an ISO 8601 date-time (a naive one is taken as UTC); return it in UTC."""
    if not isinstance(value, str) or len(value) > 40:
        raise ApiError(400, f"{name} must be an ISO 8601 date-time string")
    try:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise ApiError(400, f"{name} must be an ISO 8601 date-time, got {value!r}") from None


def date_bound(args: Mapping[str, str], name: str, *, end: bool) -> datetime | None:
    """Parse a date filter into a bound: start inclusive, end exclusive.

    A bare date covers its whole UTC day, so ``end_date=2025-01-13`` includes that day; an end
    date-time includes that instant.
    """
    raw = args.get(name)
    if raw is None or raw == "":
        return None
    try:
        if _DATE_ONLY.match(raw):
            moment = datetime.combine(date.fromisoformat(raw), time.min, UTC)
            return moment + timedelta(days=1) if end else moment
        moment = parse_timestamp(raw, name)
        return moment + timedelta(microseconds=1) if end else moment
    except OverflowError:  # the day after 9999-12-31 (or its last instant) does not exist
        raise ApiError(400, f"{name} must be before 9999-12-31, got {raw[:40]!r}") from None
    except ValueError:
        raise ApiError(400, f"{name} must be an ISO 8601 date or date-time, got {raw[:40]!r}") from None


def in_date_range(query: Any, column: Any, args: Mapping[str, str]) -> Any:
    """Narrow ``query`` to ``start_date`` ≤ column < ``end_date`` as the request asks (see ``date_bound``)."""
    start = date_bound(args, "start_date", end=False)
    end = date_bound(args, "end_date", end=True)
    if start is not None:
        query = query.where(column >= start)
    if end is not None:
        query = query.where(column < end)
    return query


def json_body(allowed: set[str]) -> dict[str, Any]:
    """Return the request's JSON object, refusing other media types, shapes and unknown fields."""
    if not request.is_json:
        raise ApiError(415, "send a JSON object with Content-Type: application/json")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ApiError(400, f"unknown field(s): {', '.join(unknown)[:200]}")
    _refuse_unstorable_json(body)
    return body


def _refuse_unstorable_json(body: dict[str, Any]) -> None:
    """Refuse nesting deeper than MAX_JSON_DEPTH and NUL in any key or string (jsonb cannot hold ``\\u0000``)."""
    pending: list[tuple[Any, int]] = [(body, 1)]  # a loop, not recursion: the depth is what is in doubt
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict):
            children = list(value.values())
            texts = list(value)
        elif isinstance(value, list):
            children, texts = value, []
        else:
            if isinstance(value, str) and "\x00" in value:
                raise ApiError(400, "strings in the body must not contain a NUL byte")
            continue
        if depth > MAX_JSON_DEPTH:
            raise ApiError(400, f"the body is nested more than {MAX_JSON_DEPTH} levels deep")
        if any("\x00" in key for key in texts):
            raise ApiError(400, "keys in the body must not contain a NUL byte")
        pending.extend((child, depth + 1) for child in children)


def text_field(body: Mapping[str, Any], name: str, *, required: bool, max_length: int = 255) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise ApiError(400, f"{name} is required")
        return None
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, f"{name} must be a non-empty string")
    if len(value) > max_length:
        raise ApiError(400, f"{name} must be at most {max_length} characters")
    if any(ord(ch) < 32 for ch in value):
        raise ApiError(400, f"{name} must not contain control characters")
    return value.strip()
