"""The queries every door lists with: runs by tier and filter, a run's history, events, the audit.

The API and the dashboard both read their lists here, so a filter means the same at both doors:
who may see what (``app.lifecycle.access``), how a date range is read (a bare date covers its
whole UTC day), how deep a page may go. What arrives as text from a request is read here too,
without Flask: a value that cannot be read is ``BadInput`` (a 400 at every door).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Select, and_, select

from app.config import DELETION_STRATEGIES
from app.lifecycle.access import Actor, audit_visible, events_visible, visible_runs
from app.lifecycle.errors import BadInput
from app.lifecycle.runs import is_active, is_archived, is_deleted, matching_text
from app.models import EVENT_OUTCOMES, JOB_STATUSES, LIFECYCLE_ACTIONS, Job, JobAudit, LifecycleEvent

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
# Skipping rows costs as much as reading them: deeper pages use a run list's ``cursor`` or a date range.
MAX_OFFSET = 10_000
MAX_SEARCH = 200  # characters of a text search
MAX_REASON = 1000  # characters of the reason given for an action
HISTORY_LIMIT = 100  # the newest events shown with one run
_INTEGER = re.compile(r"[0-9]{1,9}")  # ASCII digits: str.isdigit() takes "²", \d takes "٣"
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


TIERS = {"active": is_active, "archived": is_archived, "deleted": is_deleted}


# -- reading what a request says ------------------------------------------------------------------


def parse_timestamp(value: Any, name: str) -> datetime:
    """Parse an ISO 8601 date-time (a naive one is taken as UTC); return it in UTC."""
    if not isinstance(value, str) or len(value) > 40:
        raise BadInput(f"{name} must be an ISO 8601 date-time string")
    try:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise BadInput(f"{name} must be an ISO 8601 date-time, got {value!r}") from None


def date_bound(raw: str | None, name: str, *, end: bool) -> datetime | None:
    """Read a date filter as a bound: a start is inclusive, an end exclusive.

    A bare date covers its whole UTC day, so an end of ``2025-01-13`` includes that day; an end
    date-time includes that instant.
    """
    if raw is None or raw.strip() == "":
        return None
    raw = raw.strip()
    try:
        if _DATE_ONLY.match(raw):
            moment = datetime.combine(date.fromisoformat(raw), time.min, UTC)
            return moment + timedelta(days=1) if end else moment
        moment = parse_timestamp(raw, name)
        return moment + timedelta(microseconds=1) if end else moment
    except OverflowError:  # the day after 9999-12-31 (or its last instant) does not exist
        last = date.max - timedelta(days=1)
        raise BadInput(f"{name} must be before 9999-12-31 (the last day a range can end on is {last})") from None
    except (ValueError, BadInput):
        raise BadInput(f"{name}: {raw[:40]!r} is not a date (YYYY-MM-DD) or an ISO 8601 date-time") from None


def date_range(start_raw: str | None, end_raw: str | None, names: tuple[str, str]) -> tuple[datetime | None, ...]:
    """Read a ``(start, end)`` pair of date filters (see ``date_bound``); a range that ends before it starts is bad."""
    start = date_bound(start_raw, names[0], end=False)
    end = date_bound(end_raw, names[1], end=True)
    if start is not None and end is not None and end <= start:
        raise BadInput(f"the range ends before it starts ({names[1]} is before {names[0]})")
    return start, end


def in_date_range(query: Select, column: Any, start: datetime | None, end: datetime | None) -> Select:
    """Narrow ``query`` to ``start`` ≤ column < ``end`` (either may be None)."""
    if start is not None:
        query = query.where(column >= start)
    if end is not None:
        query = query.where(column < end)
    return query


def limit_and_offset(raw_limit: str | None, raw_offset: str | None, *, max_offset: int | None = MAX_OFFSET):  # type: ignore[no-untyped-def]
    """Return ``(limit, offset)``: limit ≥ 1 (default 50, capped at 500), 0 ≤ offset ≤ ``max_offset``.

    Lists whose depth is bounded by nature (one archive's members) pass ``max_offset=None``.
    """
    if raw_limit is None:
        limit = DEFAULT_LIMIT
    elif _INTEGER.fullmatch(raw_limit) and int(raw_limit) >= 1:
        limit = min(int(raw_limit), MAX_LIMIT)
    else:
        raise BadInput(f"limit must be a whole number of at least 1, got {raw_limit[:40]!r}")
    if raw_offset is None:
        offset = 0
    elif _INTEGER.fullmatch(raw_offset):
        offset = int(raw_offset)
    else:
        raise BadInput(f"offset must be a whole number of at least 0, got {raw_offset[:40]!r}")
    if max_offset is not None and offset > max_offset:
        raise BadInput(
            f"offset must be at most {max_offset:,}: narrow the list with start_date/end_date "
            "(run lists also page on with next_cursor)"
        )
    return limit, offset


def page_offset(raw_page: str | None, page_size: int) -> tuple[int, int]:
    """A dashboard page number (1 up, as deep as an offset may go) → ``(page, offset)``."""
    last = MAX_OFFSET // page_size + 1
    if raw_page is None or raw_page == "":
        return 1, 0
    page = whole_number(raw_page)
    if page is None or not 1 <= page <= last:
        raise BadInput(f"page must be a whole number from 1 to {last}")
    return page, (page - 1) * page_size


def whole_number(raw: str) -> int | None:
    """A number written in at most 9 ASCII digits, or None (what a query string or a form may hold)."""
    return int(raw) if _INTEGER.fullmatch(raw) else None


def search_text(raw: str | None) -> str:
    """A text search, trimmed; at most ``MAX_SEARCH`` characters."""
    text = (raw or "").strip()
    if len(text) > MAX_SEARCH:
        raise BadInput(f"the search text (q) is at most {MAX_SEARCH} characters")
    return text


def reason_text(raw: object, *, required: bool) -> str | None:
    """Why a person acts on a run (recorded with the action): text of at most ``MAX_REASON`` characters.

    Line breaks and tabs are allowed (a reason is typed into a text area); other control characters are not.
    """
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        if required:
            raise BadInput("say why: a reason is required")
        return None
    if not isinstance(raw, str):
        raise BadInput("the reason must be text")
    if len(raw) > MAX_REASON:
        raise BadInput(f"the reason is at most {MAX_REASON} characters")
    if any(ord(ch) < 32 and ch not in "\n\r\t" for ch in raw):
        raise BadInput("the reason must not contain control characters")
    return raw.strip()


def one_of(raw: str | None, name: str, allowed: Iterable[str]) -> str | None:
    """A filter that names one of ``allowed`` values, or None when absent."""
    if not raw:
        return None
    allowed = tuple(allowed)
    if raw not in allowed:
        raise BadInput(f"{name} must be one of {', '.join(allowed)}")
    return raw


def statuses_of(raw: str | None) -> list[str]:
    """A comma-separated list of run statuses."""
    statuses = [s for s in (raw or "").split(",") if s]
    if any(s not in JOB_STATUSES for s in statuses):
        raise BadInput(f"status must be among {', '.join(JOB_STATUSES)}")
    return statuses


# -- the lists ------------------------------------------------------------------------------------


def runs_in_tier(
    actor: Actor,
    tier: str,
    *,
    statuses: Iterable[str] = (),
    scraper: str | None = None,
    text: str = "",
    start: datetime | None = None,
    end: datetime | None = None,
) -> Select:
    """The runs of a tier ``actor`` may see, narrowed by status, scraper, text and start date (unordered)."""
    query = visible_runs(actor).where(TIERS[tier]())
    statuses = list(statuses)
    if statuses:
        query = query.where(Job.status.in_(statuses))
    if scraper is not None:
        query = query.where(Job.scraper == scraper)
    if text:
        query = matching_text(query, text)
    return in_date_range(query, Job.created_at, start, end)


NEWEST_RUNS_FIRST = (Job.created_at.desc(), Job.id.desc())


def newest_runs_page(query: Select, limit: int, offset: int, *, few: bool) -> Select:
    """A page of the query's runs, newest first; ``few`` when the runs it finds are known to be few
    (a capped count that was not capped).

    A text search of many terms (a piece of an id in each way it may read) makes PostgreSQL expect
    hundreds of matches and walk a tier's runs by start date for the first 50 (5.5 s in the archived
    tier at 1,000,000 runs, for one match; ``bench/search.py``). Few matches are better found first,
    in the search's indexes, and sorted after: a materialized CTE, which the planner may not fold
    into the walk.
    """
    if not few:
        return query.order_by(*NEWEST_RUNS_FIRST).limit(limit).offset(offset)
    found = (
        query.with_only_columns(Job.id, Job.created_at).cte("found").prefix_with("MATERIALIZED", dialect="postgresql")
    )
    page = select(found.c.id).order_by(found.c.created_at.desc(), found.c.id.desc()).limit(limit).offset(offset)
    return select(Job).where(Job.id.in_(page)).order_by(*NEWEST_RUNS_FIRST)


NEWEST_EVENTS_FIRST = (LifecycleEvent.started_at.desc(), LifecycleEvent.id.desc())


def run_history(job_id: uuid.UUID, *columns: Any, limit: int = HISTORY_LIMIT) -> Select:
    """One run's lifecycle events, newest first (whole rows unless ``columns`` are given)."""
    query = select(*columns) if columns else select(LifecycleEvent)
    return query.where(LifecycleEvent.job_id == job_id).order_by(*NEWEST_EVENTS_FIRST).limit(limit)


def events_of(
    actor: Actor,
    *,
    job_id: uuid.UUID | None = None,
    action: str | None = None,
    outcome: str | None = None,
    by: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> Select:
    """Lifecycle events ``actor`` may see, by run, action, outcome, actor name and date (unordered)."""
    one_of(action, "action", LIFECYCLE_ACTIONS)
    one_of(outcome, "outcome", EVENT_OUTCOMES)
    conditions = [events_visible(actor)]
    if job_id is not None:
        conditions.append(LifecycleEvent.job_id == job_id)
    if action:
        conditions.append(LifecycleEvent.action == action)
    if outcome:
        conditions.append(LifecycleEvent.outcome == outcome)
    if by:
        conditions.append(LifecycleEvent.actor == by[:64])
    return in_date_range(select(LifecycleEvent).where(and_(*conditions)), LifecycleEvent.started_at, start, end)


NEWEST_DELETIONS_FIRST = (JobAudit.deleted_at.desc(), JobAudit.id)


def audit_of(
    actor: Actor,
    *,
    job_id: uuid.UUID | None = None,
    strategy: str | None = None,
    deleted_by: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> Select:
    """The deletion audit ``actor`` may see, by run, strategy, who deleted and date (unordered)."""
    one_of(strategy, "strategy", DELETION_STRATEGIES)
    conditions = [audit_visible(actor)]
    if job_id is not None:
        conditions.append(JobAudit.job_id == job_id)
    if strategy:
        conditions.append(JobAudit.strategy == strategy)
    if deleted_by:
        conditions.append(JobAudit.deleted_by == deleted_by[:64])
    return in_date_range(select(JobAudit).where(and_(*conditions)), JobAudit.deleted_at, start, end)
