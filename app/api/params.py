"""Parsing what a request says: query parameters, JSON bodies, ids and dates. Bad input → 400."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from flask import request

from app.api import bp
from app.api.errors import ApiError
from app.lifecycle.naming import BadJobId, parse_job_id
from app.lifecycle.queries import MAX_OFFSET, date_bound, limit_and_offset
from app.names import field_with_nul

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
    """Return ``(limit, offset)`` of the query (``app.lifecycle.queries.limit_and_offset``)."""
    return limit_and_offset(args.get("limit"), args.get("offset"), max_offset=max_offset)


def dates(args: Mapping[str, str]) -> tuple[datetime | None, datetime | None]:
    """The ``start_date``/``end_date`` bounds of the query (``app.lifecycle.queries.date_bound``)."""
    return date_bound(args.get("start_date"), "start_date", end=False), date_bound(
        args.get("end_date"), "end_date", end=True
    )


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
