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

A list's statements are built once per shape of listing (``statements_for``) by the lifecycle's
own queries, the caller's id and the filter values bound at execution: building and keying a
SELECT per request cost about a fifth of a list's time in Python.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from flask import request
from sqlalchemy import Select, Uuid, bindparam, select, tuple_

from app.api.auth import current_user
from app.api.errors import ApiError
from app.api.policies import runs_json
from app.api.schemas import JOB_COLUMNS, page
from app.extensions import db
from app.lifecycle import queries
from app.lifecycle.access import Actor
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
    query: Any,
    shown: int,
    limit: int,
    offset: int,
    *,
    from_start: bool = True,
    cap: int | None = None,
    values: dict[str, Any] | None = None,
) -> tuple[int, bool]:
    """How many rows ``query`` selects (with its bound ``values``, if any), given that a page of it at
    ``offset`` showed ``shown``: ``(total, capped)``, where a capped total is a lower bound (``cap``,
    by default ``TOTAL_CAP``, or the rows seen). Any listing may use it: the audit and the events do.

    ``from_start`` is False when the page began at a cursor: the rows before it are not known.
    """
    if from_start and shown < limit and (shown > 0 or offset == 0):
        return offset + shown, False
    key = _listing_key()
    counted = TOTALS.get(key)
    if counted is None:
        if values:
            query = query.params(values)
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


@dataclass(frozen=True)
class _Viewer:
    """The caller as a statement built once sees them: admin or not, their id a bound value."""

    is_admin: bool
    id: Any


def viewer(actor: Actor) -> Actor:
    """Who a statement built once for ``actor``'s kind is for: admins as they are, a member's id
    bound at execution as ``viewer`` (pass ``viewer=actor.id``)."""
    return cast(Actor, _Viewer(actor.is_admin, None if actor.is_admin else bindparam("viewer")))


@dataclass(frozen=True)
class Statements:
    """The statements of one shape of listing: the rows that match (for the total), and the page of them."""

    matching: Select
    page: Select


# One pair of statements per shape of listing (the list, admin or member, which filters are given,
# cursor, offset), built by the lifecycle's own queries with every value bound: a request builds no
# SELECT and SQLAlchemy finds its compiled form without walking it (a built statement keeps its
# cache key). Keys hold only what the request's values were checked against: the shapes are few.
_SHAPES: dict[Hashable, Statements] = {}


def statements_for(key: Hashable, build: Callable[[], Statements]) -> Statements:
    """The statements of the listing shape ``key``, built by ``build`` the first time it is asked."""
    shape = _SHAPES.get(key)
    if shape is None:
        shape = _SHAPES[key] = build()
    return shape


def _page_of(matching: Select, *, after: bool, skip: bool) -> Select:
    """The page of ``matching`` (newest first): ``limit`` rows, after ``after_at``/``after_id`` and
    ``offset`` rows down when asked, every value bound at execution."""
    page_query = _NEWEST_RUNS if matching.whereclause is None else _NEWEST_RUNS.where(matching.whereclause)
    if after:
        after_key = tuple_(bindparam("after_at", type_=UTCDateTime()), bindparam("after_id", type_=Uuid()))
        page_query = page_query.where(tuple_(Job.created_at, Job.id) < after_key)
    if skip:
        # The rows skipped are walked in the tier's (created_at, id) index alone and only the page's
        # rows are read from the table: 10,000 rows down took ~106 ms of table reads at a million runs.
        skipped = select(Job.id).order_by(Job.created_at.desc(), Job.id.desc())
        skipped = skipped.limit(bindparam("limit")).offset(bindparam("offset"))
        skipped = skipped.correlate(None)  # its own scan of jobs, not the outer query's
        if page_query.whereclause is not None:
            skipped = skipped.where(page_query.whereclause)
        page_query = _NEWEST_RUNS.where(Job.id.in_(skipped))
    return page_query.limit(bindparam("limit"))


def _run_statements(
    actor: Actor, tier: str, statuses: int, scraper: bool, start: bool, end: bool, after: bool, skip: bool
) -> Statements:
    """A run list's statements for ``actor``'s kind, a count of ``statuses`` and which filters are given."""

    def build() -> Statements:
        matching = queries.runs_in_tier(
            viewer(actor),
            tier,
            statuses=[bindparam(f"status_{n}") for n in range(statuses)],
            scraper=bindparam("scraper") if scraper else None,
            start=bindparam("start") if start else None,
            end=bindparam("end") if end else None,
        )
        return Statements(matching, _page_of(matching, after=after, skip=skip))

    return statements_for(("runs", tier, actor.is_admin, statuses, scraper, start, end, after, skip), build)


def run_page(
    actor: Actor,
    tier: str,
    limit: int,
    offset: int,
    *,
    statuses: Iterable[str] = (),
    scraper: str | None = None,
    text: str = "",
    start: datetime | None = None,
    end: datetime | None = None,
) -> dict[str, Any]:
    """A page of the runs of ``tier`` that ``actor`` may see and the filters match (as
    ``queries.runs_in_tier`` reads them), newest first, from the request's ``cursor`` if any."""
    raw_cursor = request.args.get("cursor")
    values: dict[str, Any] = {"limit": limit, "offset": offset}
    if raw_cursor is not None:
        values["after_at"], values["after_id"] = decode_cursor(raw_cursor)
    if text:  # built for this request: ``matching_text`` makes its pattern from the text
        matching = queries.runs_in_tier(
            actor, tier, statuses=statuses, scraper=scraper, text=text, start=start, end=end
        )
        page_query = _page_of(matching, after=raw_cursor is not None, skip=bool(offset))
    else:
        wanted = list(dict.fromkeys(statuses))  # a status named twice selects what it does once
        shape = _run_statements(
            actor,
            tier,
            len(wanted),
            scraper is not None,
            start is not None,
            end is not None,
            raw_cursor is not None,
            bool(offset),
        )
        values.update({f"status_{n}": status for n, status in enumerate(wanted)})
        values.update(viewer=actor.id, scraper=scraper, start=start, end=end)
        matching, page_query = shape.matching, shape.page
    rows = db.session.connection().execute(page_query, values).all()  # Core rows: fastest
    total, capped = page_total(matching, len(rows), limit, offset, from_start=raw_cursor is None, values=values)
    body = page(runs_json(rows), total, limit, offset, capped=capped)
    body["next_cursor"] = encode_cursor(rows[-1].created_at, rows[-1].id) if len(rows) == limit else None
    return body
