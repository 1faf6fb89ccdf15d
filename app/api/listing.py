"""Pages of runs: the rows of one page, a cursor to the next, and a ``total`` that never dominates.

Deep pages do not degrade: a page's ``next_cursor`` names its last run (created_at, id), and the
page after it starts there through the tier's (created_at, id) index, however far down it is;
offsets alone stop at 10,000 (app.api.params), and the rows they skip are read in the index only.

Counting is the costly part of a listing at scale (every run of the tier matching the filters
is visited in the index: ~1.4 ms for 10,000 active runs, ~200 ms for the 270,000 archived runs
of an 8-day range at a million), so a total is found the cheapest way that is still exact or
close to it:

- a page that is not full tells the total itself (``offset`` + its rows): no count at all;
- a count stops at ``TOTAL_CAP`` matches (per listing, caller and filters): above it ``total``
  is a lower bound and the page says ``total_capped: true``, as the audit and events lists do;
- a count below ``LARGE_TOTAL`` is always made afresh (it is cheap);
- a count of ``LARGE_TOTAL`` or more is remembered 5 seconds per listing, caller and
  filters, in this process: such a total may be up to 5 seconds old.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Hashable
from datetime import UTC, datetime
from typing import Any

from flask import request
from sqlalchemy import Uuid, literal, select, tuple_

from app.api.auth import current_user
from app.api.errors import ApiError
from app.api.schemas import JOB_COLUMNS, job_json, page
from app.extensions import db
from app.models import COUNT_CAP, Job, UTCDateTime, capped_count
from app.ttl_cache import TTLCache

LARGE_TOTAL = 1000  # counts from here up are remembered; smaller ones are made afresh
# A count stops here: 10,000 entries of a tier's index are ~1.5 ms at a million runs, however many match.
TOTAL_CAP = COUNT_CAP
TOTALS: TTLCache[tuple[int, bool]] = TTLCache(ttl=5.0, size=4096)


def _listing_key() -> Hashable:
    """What a listing's total depends on: the route, whose runs are visible, and the filters."""
    user = current_user()
    filters = tuple((k, v) for k, v in request.args.items(multi=True) if k not in ("limit", "offset", "cursor"))
    return (request.endpoint, None if user.is_admin else user.id, filters)


def page_total(
    query: Any, shown: int, limit: int, offset: int, *, from_start: bool = True, cap: int | None = None
) -> tuple[int, bool]:
    """How many rows ``query`` selects, given that a page of it at ``offset`` showed ``shown``:
    ``(total, capped)``, where a capped total is a lower bound (``cap``, by default ``TOTAL_CAP``,
    or the rows seen). Any listing may use it: the audit and the events do.

    ``from_start`` is False when the page began at a cursor: the rows before it are not known.
    """
    if from_start and shown < limit and (shown > 0 or offset == 0):
        return offset + shown, False
    key = _listing_key()
    counted = TOTALS.get(key)
    if counted is None:
        counted = capped_count(db.session, query, TOTAL_CAP if cap is None else cap)
        if counted[0] >= LARGE_TOTAL:
            TOTALS.put(key, counted)
    total, capped = counted
    return (max(total, offset + shown), capped) if from_start else (total, capped)


def encode_cursor(created_at: datetime, job_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{job_id}".encode()).decode().rstrip("=")


def decode_cursor(raw: str) -> tuple[datetime, uuid.UUID]:
    """The (created_at, id) a cursor names; anything this API did not write is a 400."""
    try:
        if len(raw) > 200:
            raise ValueError("too long")
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
        moment, _, job_id = text.partition("|")
        created_at = datetime.fromisoformat(moment)
        if created_at.tzinfo is None:
            raise ValueError("naive")
        return created_at.astimezone(UTC), uuid.UUID(job_id)
    except (ValueError, OverflowError, binascii.Error, UnicodeDecodeError):
        raise ApiError(400, "cursor must be the next_cursor of a page of this list", "invalid_cursor") from None


# Built once: building a SELECT of every column costs more than running it.
_NEWEST_RUNS = select(*JOB_COLUMNS).order_by(Job.created_at.desc(), Job.id.desc())


def run_page(query: Any, limit: int, offset: int) -> dict[str, Any]:
    """A page of the runs ``query`` selects, newest first, from the request's ``cursor`` if any."""
    page_query = _NEWEST_RUNS if query.whereclause is None else _NEWEST_RUNS.where(query.whereclause)
    raw_cursor = request.args.get("cursor")
    if raw_cursor is not None:
        created_at, job_id = decode_cursor(raw_cursor)
        after = tuple_(literal(created_at, UTCDateTime()), literal(job_id, Uuid()))
        page_query = page_query.where(tuple_(Job.created_at, Job.id) < after)
    if offset:
        # The rows skipped are walked in the tier's (created_at, id) index alone and only the page's
        # rows are read from the table: 10,000 rows down took ~106 ms of table reads at a million runs.
        skipped = select(Job.id).order_by(Job.created_at.desc(), Job.id.desc()).limit(limit).offset(offset)
        skipped = skipped.correlate(None)  # its own scan of jobs, not the outer query's
        if page_query.whereclause is not None:
            skipped = skipped.where(page_query.whereclause)
        page_query = _NEWEST_RUNS.where(Job.id.in_(skipped))
    rows = db.session.connection().execute(page_query.limit(limit)).all()  # Core rows: fastest
    total, capped = page_total(query, len(rows), limit, offset, from_start=raw_cursor is None)
    body = page([job_json(row) for row in rows], total, limit, offset, capped=capped)
    body["next_cursor"] = encode_cursor(rows[-1].created_at, rows[-1].id) if len(rows) == limit else None
    return body
