"""Retention policies evaluated: which rule governs a run's ages, what keeps or holds it, and why, in words.

A policy (``retention_policies``, SPEC §9) applies to the finished runs whose scraper its pattern
matches and whose status it names (none named: every finished status). Patterns are globs: ``*``
is any run of characters (``*`` alone matches every scraper, the empty name too), ``?`` one
character, everything else itself; matching ignores case. Where several policies match a run,
the highest ``priority`` governs it, and among equal priorities the oldest policy (lowest id).
A run no policy matches follows the environment's ``ARCHIVE_AFTER_DAYS`` and ``DELETE_AFTER_DAYS``.

What the governing policy decides:

- its ages: a run is archived ``archive_after_days`` after it finished and deleted
  ``delete_after_days`` after it finished (``None``: never deleted by the schedule);
- ``keep_last``: the newest N successful (``completed``) runs of each matching scraper that are not
  deleted are never archived or deleted by the schedule. Newest is by ``created_at``; runs started
  at the same moment are ordered by id (the greater id is the newer), so exactly N are kept.
  A run with an empty scraper name is nobody's newest: keep_last counts runs of a named scraper.

``legal_hold`` is not a matter of precedence: a run that ANY policy with a legal hold matches is
not deleted — by the schedule or by a person, and not purged from the trash — until the hold is
lifted (archiving it is still allowed: that loses nothing). ``keep_after_access_days`` is stored
for the access-aware retention still to come and refused until then (``app.lifecycle.policies``).

Everything here is built as SQL from the few policy rows: the runs are never loaded into Python
to decide (a million runs cost one query per chunk of a pass). The one exception is
``explain``, which words the same decision for a page of runs already read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    Integer,
    and_,
    case,
    exists,
    false,
    func,
    literal,
    not_,
    null,
    or_,
    select,
    tuple_,
)
from sqlalchemy.orm import Session, aliased

from app.config import Settings
from app.lifecycle.accesses import last_access
from app.models import FINISHED_STATUSES, Job, RetentionPolicy, RunAccess, UTCDateTime
from app.ttl_cache import TTLCache

LIKE_ESCAPE = "\\"


@dataclass(frozen=True)
class Rule:
    """One policy as the rules read it: a saved ``RetentionPolicy`` or one proposed (``id`` None)."""

    name: str
    scraper_pattern: str
    statuses: tuple[str, ...] = ()
    archive_after_days: int = 7
    delete_after_days: int | None = 30
    keep_last: int = 0
    keep_after_access_days: int | None = None
    legal_hold: bool = False
    priority: int = 0
    id: int | None = None

    @classmethod
    def of(cls, policy: RetentionPolicy) -> Rule:
        return cls(
            name=policy.name,
            scraper_pattern=policy.scraper_pattern,
            statuses=tuple(policy.statuses or ()),
            archive_after_days=policy.archive_after_days,
            delete_after_days=policy.delete_after_days,
            keep_last=policy.keep_last or 0,
            keep_after_access_days=policy.keep_after_access_days,
            legal_hold=bool(policy.legal_hold),
            priority=policy.priority or 0,
            id=policy.id,
        )

    @property
    def applies_to(self) -> tuple[str, ...]:
        """The statuses the policy applies to: those it names, or every finished one."""
        return self.statuses or FINISHED_STATUSES


def precedence(rule: Rule) -> tuple[int, float]:
    """Sort key: highest priority first, then the oldest policy (a proposed one, without id, last)."""
    return (-rule.priority, rule.id if rule.id is not None else float("inf"))


@dataclass(frozen=True)
class Rules:
    """The policies in force, in order of precedence, and the environment's defaults."""

    policies: tuple[Rule, ...]
    archive_after_days: int
    delete_after_days: int | None
    _ordered: tuple[Rule, ...] = field(init=False, repr=False, compare=False)
    # (scraper, status) → (the governing policy, the first policy holding it): a page of runs shares a few.
    _decided: dict[tuple[str, str], tuple[Rule | None, Rule | None]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )
    _words: dict[tuple[Any, ...], str] = field(init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_ordered", tuple(sorted(self.policies, key=precedence)))

    @property
    def ordered(self) -> tuple[Rule, ...]:
        return self._ordered

    def decide(self, job: Any) -> tuple[Rule | None, Rule | None]:
        """The policy governing the run's ages and keep_last (None: the defaults), and the first whose
        legal hold holds it (None: none), remembered per scraper and status."""
        key = (job.scraper or "", job.status)
        found = self._decided.get(key)
        if found is None:
            rule = next((rule for rule in self._ordered if applies(rule, job)), None)
            hold = next((rule for rule in self._ordered if rule.legal_hold and applies(rule, job)), None)
            found = self._decided[key] = (rule, hold)
        return found

    @classmethod
    def from_policies(cls, policies: Iterable[Rule], settings: Settings) -> Rules:
        return cls(tuple(policies), settings.archive_after_days, settings.delete_after_days)


def load_rules(session: Session, settings: Settings) -> Rules:
    """The saved policies, with the environment's defaults for the runs they do not match."""
    return Rules.from_policies((Rule.of(p) for p in session.scalars(select(RetentionPolicy))), settings)


# The rules as pages explain runs with them, read at most every RULES_SECONDS per process and
# database (a list would otherwise pay a query for them). A change made through this process's
# ``app.lifecycle.policies`` clears them at once; other processes see it within RULES_SECONDS. The
# passes and the refusals under a run's lock always read the policies afresh (``load_rules``).
RULES_SECONDS = 2.0
_RULES: TTLCache[Rules] = TTLCache(ttl=RULES_SECONDS, size=16)


def cached_rules(session: Session, settings: Settings) -> Rules:
    """``load_rules``, remembered RULES_SECONDS per database and settings."""
    key = (str(session.get_bind().url), settings.archive_after_days, settings.delete_after_days)
    rules = _RULES.get(key)
    if rules is None:
        rules = load_rules(session, settings)
        _RULES.put(key, rules)
    return rules


def forget_rules() -> None:
    """Forget the remembered rules (a policy changed)."""
    _RULES.forget()


# -- patterns ---------------------------------------------------------------------------------------


def _pieces(pattern: str) -> Iterable[str]:
    """A glob as its pieces: ``*``, ``?`` or one literal character."""
    yield from pattern


def like_pattern(pattern: str) -> str:
    """The glob as a SQL LIKE pattern (escape ``\\``), lower-cased: compared with ``lower(scraper)``."""
    out = []
    for piece in _pieces(pattern.lower()):
        if piece == "*":
            out.append("%")
        elif piece == "?":
            out.append("_")
        elif piece in ("%", "_", LIKE_ESCAPE):
            out.append(LIKE_ESCAPE + piece)
        else:
            out.append(piece)
    return "".join(out)


def _regex(pattern: str) -> re.Pattern[str]:
    parts = [".*" if p == "*" else "." if p == "?" else re.escape(p) for p in _pieces(pattern.lower())]
    return re.compile("".join(parts), re.DOTALL)


def pattern_matches(pattern: str, scraper: str) -> bool:
    """Whether the glob matches the scraper name, as ``scraper_matches`` decides it in SQL."""
    return _regex(pattern).fullmatch(scraper.lower()) is not None


def scraper_matches(pattern: str) -> ColumnElement[bool]:
    """SQL condition on ``jobs``: the run's scraper matches the glob (case ignored)."""
    if pattern == "*":
        return Job.scraper.is_not(None)
    return func.lower(Job.scraper).like(like_pattern(pattern), escape=LIKE_ESCAPE)


# -- which policy governs a run ---------------------------------------------------------------------


def matches(rule: Rule) -> ColumnElement[bool]:
    """SQL condition on ``jobs``: the policy applies to the run (its scraper and its status)."""
    return and_(scraper_matches(rule.scraper_pattern), Job.status.in_(rule.applies_to))


def applies(rule: Rule, job: Any) -> bool:
    """Whether the policy applies to this run (``matches``, for a run already read)."""
    return job.status in rule.applies_to and pattern_matches(rule.scraper_pattern, job.scraper or "")


def governing(rules: Rules, job: Any) -> Rule | None:
    """The policy that governs this run's ages and keep_last, or None (the environment's defaults)."""
    return rules.decide(job)[0]


def _governs(rules: Rules) -> list[tuple[Rule, ColumnElement[bool]]]:
    """Each policy with the SQL condition "it governs the run": it applies and no policy before it does."""
    out: list[tuple[Rule, ColumnElement[bool]]] = []
    earlier: list[ColumnElement[bool]] = []
    for rule in rules.ordered:
        condition = matches(rule)
        out.append((rule, and_(condition, not_(or_(*earlier))) if earlier else condition))
        earlier.append(condition)
    return out


def _cutoff(rules: Rules, now: datetime, days_of: str, default: int | None) -> ColumnElement[Any]:
    """SQL: the moment before which a run governed as it is has finished long enough (NULL: never)."""

    def moment(days: int | None) -> ColumnElement[Any]:
        return null() if days is None else literal(now - timedelta(days=days), UTCDateTime())

    whens = [(matches(rule), moment(getattr(rule, days_of))) for rule in rules.ordered]
    return case(*whens, else_=moment(default)) if whens else moment(default)


def age_days(rules: Rules, days_of: str) -> ColumnElement[Any]:
    """SQL: the run's archive (``days_of="archive_after_days"``) or delete age in days under the policy
    governing it, the default where none does; NULL where it is never deleted (or a legal hold holds it)."""

    def days(value: int | None) -> ColumnElement[Any]:
        return null() if value is None else literal(value, Integer())

    whens = [(matches(rule), days(getattr(rule, days_of))) for rule in rules.ordered]
    ages = case(*whens, else_=days(getattr(rules, days_of))) if whens else days(getattr(rules, days_of))
    return case((held(rules), null()), else_=ages) if days_of == "delete_after_days" else ages


def keep_after_use_days(rules: Rules) -> ColumnElement[Any]:
    """SQL: the keep_after_access_days of the policy governing the run (NULL: none keeps it after a use)."""
    whens = [
        (matches(rule), literal(rule.keep_after_access_days, Integer()) if rule.keep_after_access_days else null())
        for rule in rules.ordered
    ]
    if not any(rule.keep_after_access_days for rule in rules.ordered):
        return literal(None, Integer())  # a parameter: a bare NULL may not be grouped by in PostgreSQL
    return case(*whens, else_=null())


def _earliest_due(rules: Rules, now: datetime, days_of: str, default: int | None) -> datetime | None:
    """The latest of all cutoffs: no run finished after it is due under any policy (an index can use it)."""
    days = [d for d in (default, *(getattr(rule, days_of) for rule in rules.policies)) if d is not None]
    return now - timedelta(days=min(days)) if days else None


def _aged(rules: Rules, now: datetime, days_of: str, default: int | None) -> ColumnElement[bool]:
    earliest = _earliest_due(rules, now, days_of, default)
    if earliest is None:
        return false()
    return and_(Job.completed_at < earliest, Job.completed_at < _cutoff(rules, now, days_of, default))


def due_for_archival(rules: Rules, now: datetime) -> ColumnElement[bool]:
    """SQL: the run has finished long enough ago to be archived, and keep_last does not keep it."""
    return and_(_aged(rules, now, "archive_after_days", rules.archive_after_days), not_(kept_by_keep_last(rules)))


def due_for_deletion(rules: Rules, now: datetime) -> ColumnElement[bool]:
    """SQL: the run has finished long enough ago to be deleted, and neither keep_last, a recent use
    (keep_after_access_days) nor a legal hold keeps it."""
    return and_(
        _aged(rules, now, "delete_after_days", rules.delete_after_days),
        not_(kept_by_keep_last(rules)),
        not_(kept_by_use(rules, now)),
        not_(held(rules)),
    )


def kept_by_use(rules: Rules, now: datetime) -> ColumnElement[bool]:
    """SQL: the policy governing the run keeps it because a person used it within its keep_after_access_days."""
    kept = [
        and_(
            governs,
            exists(
                select(RunAccess.job_id).where(
                    RunAccess.job_id == Job.id,
                    RunAccess.day >= (now - timedelta(days=rule.keep_after_access_days)).date(),
                )
            ),
        )
        for rule, governs in _governs(rules)
        if rule.keep_after_access_days
    ]
    return or_(*kept) if kept else false()


def _among_newest(count: int) -> ColumnElement[bool]:
    """SQL: the run is one of the ``count`` newest successful, undeleted runs of its scraper."""
    newer = aliased(Job)
    nth_newer = (
        select(newer.id)
        .where(
            newer.scraper == Job.scraper,
            newer.status == "completed",
            newer.deleted_at.is_(None),
            tuple_(newer.created_at, newer.id) > tuple_(Job.created_at, Job.id),
        )
        .order_by(newer.created_at.desc(), newer.id.desc())
        .offset(count - 1)
        .limit(1)
        .correlate(Job)
    )
    return and_(Job.status == "completed", Job.scraper != "", not_(exists(nth_newer)))


def kept_by_keep_last(rules: Rules) -> ColumnElement[bool]:
    """SQL: the policy governing the run keeps it as one of the newest ``keep_last`` of its scraper."""
    kept = [and_(governs, _among_newest(rule.keep_last)) for rule, governs in _governs(rules) if rule.keep_last > 0]
    return or_(*kept) if kept else false()


def held(rules: Rules) -> ColumnElement[bool]:
    """SQL: a policy with a legal hold applies to the run (whatever governs its ages)."""
    holds = [matches(rule) for rule in rules.policies if rule.legal_hold]
    return or_(*holds) if holds else false()


def legal_hold_of(session: Session, job: Any) -> str | None:
    """The name of a policy whose legal hold holds this run (the highest in precedence), or None."""
    policies = session.scalars(select(RetentionPolicy).where(RetentionPolicy.legal_hold.is_(True)))
    holds = sorted((Rule.of(p) for p in policies), key=precedence)
    return next((rule.name for rule in holds if applies(rule, job)), None)


# -- in words ----------------------------------------------------------------------------------------


class Explanation(NamedTuple):
    """Why a run is where it is: the policy governing it (or None) and the reason, in words."""

    policy: str | None
    reason: str


def kept_ids(session: Session, rules: Rules, job_ids: Sequence[Any]) -> set[Any]:
    """Which of these runs keep_last keeps now (one query for a page of runs)."""
    if not job_ids or not any(rule.keep_last > 0 for rule in rules.policies):
        return set()
    return set(session.scalars(select(Job.id).where(Job.id.in_(job_ids), kept_by_keep_last(rules))))


def _day(moment: datetime) -> str:
    return moment.date().isoformat()  # as %Y-%m-%d, several times faster than strftime


def explain(
    rules: Rules, job: Any, *, now: datetime, kept: bool, grace_days: int, used: RunAccess | None = None
) -> Explanation:
    """Word the rules' decision for one run (``kept``: keep_last keeps it, from ``kept_ids``; ``used``:
    its latest use by a person, from ``accesses.last_access``)."""
    rule, hold = rules.decide(job)
    name = rule.name if rule else None
    held_words = f"held: legal hold of policy '{hold.name}'" if hold else None
    if job.purged_at is not None:
        return Explanation(name, f"purged {_day(job.purged_at)}: only its record and audit remain")
    if job.deleted_at is not None:
        grace_end = job.deleted_at + timedelta(days=grace_days)
        words = f"deleted {_day(job.deleted_at)}; purged after {_day(grace_end)}"
        return Explanation(name, f"{held_words}, not purged until it is lifted" if held_words else words)
    if job.status not in FINISHED_STATUSES:
        return Explanation(None, f"{job.status}: a run ages once it has finished")
    retain_until = job.retain_until
    if job.keep_forever:
        words = "kept forever (its retention was extended)"
    elif retain_until is not None and retain_until > now:
        words = f"kept until {_day(retain_until)} (its retention was extended)"
    elif kept and rule is not None:
        words = f"kept: newest {rule.keep_last} of {job.scraper}"
    elif used is not None and (use := _recent_use(rule, used, now)):
        words = use
    else:
        words = _ages_in_words(rules, rule, job, now, deleting=job.archived_at is not None, held=hold is not None)
    return Explanation(name, f"{held_words}; {words}" if held_words else words)


def explain_runs(
    session: Session, rules: Rules, jobs: Sequence[Any], *, now: datetime, grace_days: int
) -> list[Explanation]:
    """``explain`` for runs already read (a page of them: one query for keep_last, none without it)."""
    if not rules.policies:  # the defaults alone: nothing to look up (most sites, most of the time)
        return [explain(rules, job, now=now, kept=False, grace_days=grace_days) for job in jobs]
    kept = kept_ids(session, rules, [job.id for job in jobs if job.status == "completed"])
    longest = max((rule.keep_after_access_days or 0 for rule in rules.policies), default=0)
    archived = [job.id for job in jobs if job.archived_at is not None and job.deleted_at is None] if longest else []
    used = last_access(session, archived, now - timedelta(days=longest)) if archived else {}
    return [
        explain(rules, job, now=now, kept=job.id in kept, grace_days=grace_days, used=used.get(job.id)) for job in jobs
    ]


def _recent_use(rule: Rule | None, used: RunAccess | None, now: datetime) -> str | None:
    """ "kept: opened 3 days ago by its owner" when the governing policy keeps runs people used, and one was."""
    if rule is None or not rule.keep_after_access_days or used is None:
        return None
    ago = (now.date() - used.day).days
    if ago > rule.keep_after_access_days:
        return None
    when = "today" if ago == 0 else "yesterday" if ago == 1 else f"{ago} days ago"
    who = "its owner" if used.by_owner else used.last_by
    return f"kept: {used.last_kind} {when} by {who} (kept {rule.keep_after_access_days} days after a use)"


def _ages_in_words(rules: Rules, rule: Rule | None, job: Any, now: datetime, *, deleting: bool, held: bool) -> str:
    """ "archived 7 days after it finished (ARCHIVE_AFTER_DAYS): due 2026-12-09", remembered per rule and
    day (a page of runs says a few of these: formatting each costs more than the rest of the run)."""
    owner = rule if rule is not None else rules
    days = owner.delete_after_days if deleting else owner.archive_after_days
    due_day = None
    if days is not None and not (deleting and held):
        due = job.completed_at + timedelta(days=days)
        due_day = None if due <= now else due.date()
    key = (id(rule), deleting, held, days, due_day)
    words = rules._words.get(key)
    if words is None:
        setting = f"policy '{rule.name}'" if rule else ("DELETE_AFTER_DAYS" if deleting else "ARCHIVE_AFTER_DAYS")
        if deleting and held:
            words = "archived; not deleted while the hold lasts"
        elif days is None:
            words = f"archived; never deleted by the schedule ({setting})"
        else:
            when = "due now" if due_day is None else f"due {due_day.isoformat()}"
            words = f"{'deleted' if deleting else 'archived'} {days} days after it finished ({setting}): {when}"
        rules._words[key] = words
    return words


def deletion_due(rules: Rules, job: Any, now: datetime, last_used: date | None = None) -> datetime | None:
    """When the cleanup may delete this archived run (``runs_due_for_cleanup`` decides whether it is
    kept): its delete age after it finished under the policy governing it (DELETE_AFTER_DAYS where
    none does), not before its ``retain_until``, nor while a use on ``last_used`` keeps it (the
    policy's keep_after_access_days, as ``kept_by_use`` counts them), never before ``now``; None
    when never."""
    rule = governing(rules, job)
    days = rule.delete_after_days if rule else rules.delete_after_days
    if days is None or job.keep_forever or job.completed_at is None:
        return None
    due = job.completed_at + timedelta(days=days)
    if job.retain_until is not None:
        due = max(due, job.retain_until)
    if rule is not None and rule.keep_after_access_days and last_used is not None:
        unkept = last_used + timedelta(days=rule.keep_after_access_days + 1)  # kept while used within N days
        due = max(due, datetime.combine(unkept, time.min, UTC))
    return max(due, now)
