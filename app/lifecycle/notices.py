"""Notices before deletion: each owner's daily digest of the runs the cleanup will soon delete, and
the signed link in it that keeps one of them 30 more days.

Which runs: those ``runs_due_for_cleanup`` will take within DELETE_NOTICE_DAYS (keep_last, legal
holds, ``retain_until`` and ``keep_forever`` respected exactly as the cleanup respects them), each
with the moment it goes: the first cleanup pass (CLEANUP_SCHEDULE, UTC) after it is due
(``retention.deletion_due``). A run nobody owns has no one to tell and is only counted.

One digest per owner and channel (mail, the alert webhook) lists that owner's runs; a run already
listed by a channel on the same UTC day is not listed by it again, so a second pass the same day
(a retry, ``flask notices send``) sends only what did not go out. A row per run and channel is
written once its digest has gone (``deletion_notices``); a digest that could not be sent writes
nothing, opens (or refreshes) a ``notice_failed`` alert for its channel, and is tried again by the
next pass; a pass in which a channel sent everything it had resolves that channel's alert.

The keep link carries the notice's token id, the run, the owner and the moment the run is deleted,
signed with the site's secret key (itsdangerous, a salt of its own). It expires at that moment and
is spent when used: following it extends the run's retention to 30 days past that moment, through
the same ``extend_retention`` as every door, recorded as done by the owner. Spending one link spends
every other link sent for the same run and deletion (the mail's and the webhook's, a day's and the
next's), so a run is kept once per notice, however many copies of the link were sent.
"""

from __future__ import annotations

import secrets
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol

from croniter import croniter
from itsdangerous import BadData, URLSafeSerializer
from sqlalchemy import select, update

from app.lifecycle import access, deletion, policy, retention
from app.lifecycle.accesses import last_access
from app.lifecycle.alerts import raise_alert, resolve_alerts
from app.lifecycle.context import Lifecycle
from app.lifecycle.errors import LifecycleError
from app.lifecycle.naming import run_folder_name
from app.models import DeletionNotice, Job, User

KEEP_DAYS = 30
KEEP_SALT = "agar.deletion-notice.keep"
ALERT_KIND = "notice_failed"


class Links(Protocol):
    """The absolute addresses a notice carries (built on PUBLIC_URL by the door that sends it)."""

    def keep(self, token: str) -> str: ...

    def run(self, job_id: uuid.UUID) -> str: ...


@dataclass(frozen=True)
class NoticeRun:
    """One run as a digest lists it."""

    job_id: uuid.UUID
    name: str
    scraper: str
    folder: str
    deletes_at: datetime
    size_bytes: int | None  # the archive's: what the deletion frees
    keep_url: str
    run_url: str


@dataclass(frozen=True)
class Digest:
    """What one owner is told by one channel: their runs the cleanup takes within ``days``."""

    owner: str
    owner_id: uuid.UUID
    recipient: str
    channel: str
    sent_at: datetime
    days: int
    keep_days: int
    runs: tuple[NoticeRun, ...]


class Channel(Protocol):
    """A way of telling an owner: ``email`` or ``webhook`` (``app.notices``)."""

    name: str

    def recipient(self, owner: User) -> str | None:
        """Who receives this owner's digest (an address, ``webhook``), or None: not by this channel."""
        ...

    def send(self, digest: Digest) -> None:
        """Deliver the digest, or raise."""
        ...


@dataclass
class NoticeReport:
    """What a notice pass did: the digests sent, the runs already told today, who could not be told."""

    sent: list[dict[str, Any]] = field(default_factory=list)
    already_told: int = 0
    unreachable: list[str] = field(default_factory=list)
    unowned: int = 0
    failed: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "already_told": self.already_told,
            "unreachable": self.unreachable,
            "unowned": self.unowned,
            "failed": self.failed,
        }


class NoticesUndelivered(LifecycleError):
    """Some digests could not be sent (the ``notice_failed`` alert says which): the pass is tried again."""


def deletion_moment(
    rules: retention.Rules, job: Job, now: datetime, cleanup_schedule: str, last_used: date | None = None
) -> datetime | None:
    """When the cleanup pass takes this run: the first CLEANUP_SCHEDULE occurrence after it is due."""
    due = retention.deletion_due(rules, job, now, last_used)
    if due is None:
        return None
    return croniter(cleanup_schedule, due.astimezone(UTC)).get_next(datetime)


def runs_to_announce(lc: Lifecycle, now: datetime) -> list[tuple[Job, datetime]]:
    """The archived runs the cleanup will delete within DELETE_NOTICE_DAYS, each with its deletion moment."""
    settings = lc.settings
    rules = retention.load_rules(lc.session, settings)
    horizon = now + timedelta(days=settings.delete_notice_days)
    due = list(lc.session.scalars(policy.runs_due_for_cleanup(rules, horizon).order_by(Job.completed_at, Job.id)))
    longest = max((rule.keep_after_access_days or 0 for rule in rules.policies), default=0)
    uses = last_access(lc.session, [job.id for job in due], now - timedelta(days=longest)) if longest else {}
    found = []
    for job in due:
        use = uses.get(job.id)
        moment = deletion_moment(rules, job, now, settings.cleanup_schedule, use.day if use else None)
        if moment is not None:
            found.append((job, moment))
    return found


def _day(now: datetime) -> tuple[datetime, datetime]:
    start = datetime.combine(now.astimezone(UTC).date(), time.min, UTC)
    return start, start + timedelta(days=1)


@dataclass(frozen=True)
class _Due:
    """A run to announce, read once: sending and recording never go back to the ``Job`` rows."""

    job_id: uuid.UUID
    name: str
    scraper: str
    folder: str
    size_bytes: int | None
    deletes_at: datetime


def send_deletion_notices(lc: Lifecycle, channels: Sequence[Channel], links: Links, *, secret_key: str) -> NoticeReport:
    """Send today's digests: one per owner and channel, of the runs not yet told today by it."""
    session, now = lc.session, lc.now()
    report = NoticeReport()
    by_owner: dict[uuid.UUID, list[_Due]] = defaultdict(list)
    for job, moment in runs_to_announce(lc, now):
        if job.created_by is None:
            report.unowned += 1
            continue
        folder = run_folder_name(job.folder_name, job.id)
        by_owner[job.created_by].append(_Due(job.id, job.name, job.scraper, folder, job.archive_size_bytes, moment))
    for runs in by_owner.values():
        runs.sort(key=lambda due: (due.deletes_at, due.name))
    start, end = _day(now)
    told = select(DeletionNotice.job_id, DeletionNotice.channel).where(
        DeletionNotice.sent_at >= start, DeletionNotice.sent_at < end
    )
    told_today = {(job_id, channel) for job_id, channel in session.execute(told)}
    # Who gets what, decided before anything is sent (each digest commits its own record).
    digests: list[tuple[Channel, uuid.UUID, str, str, list[_Due]]] = []
    for owner in session.scalars(select(User).where(User.id.in_(list(by_owner))).order_by(User.username)):
        reachable = [(channel, channel.recipient(owner)) for channel in channels]
        reachable = [(channel, recipient) for channel, recipient in reachable if recipient is not None]
        if not reachable:
            report.unreachable.append(owner.username)
        for channel, recipient in reachable:
            runs = [due for due in by_owner[owner.id] if (due.job_id, channel.name) not in told_today]
            report.already_told += len(by_owner[owner.id]) - len(runs)
            if runs:
                digests.append((channel, owner.id, owner.username, recipient, runs))
    failures: dict[str, list[str]] = defaultdict(list)
    for channel, owner_id, username, recipient, runs in digests:
        error = _send_digest(lc, channel, owner_id, username, recipient, runs, links, secret_key, now)
        if error is None:
            report.sent.append({"owner": username, "channel": channel.name, "recipient": recipient, "runs": len(runs)})
        else:
            failure = f"{channel.name} to {recipient} ({username}, {len(runs)} runs): {error}"
            failures[channel.name].append(failure)
            report.failed.append(failure)
    for channel in channels:
        if failures[channel.name]:
            _raise_failed(lc, channel.name, failures[channel.name], now)
        else:
            resolve_alerts(session, ALERT_KIND, subject=channel.name, now=now)
    session.commit()
    return report


def _send_digest(
    lc: Lifecycle,
    channel: Channel,
    owner_id: uuid.UUID,
    username: str,
    recipient: str,
    runs: list[_Due],
    links: Links,
    secret_key: str,
    now: datetime,
) -> Exception | None:
    """Send one digest and record its runs; the error if it could not be sent (nothing recorded then)."""
    notices = [
        DeletionNotice(
            job_id=due.job_id,
            owner_id=owner_id,
            channel=channel.name,
            recipient=recipient,
            sent_at=now,
            deletes_at=due.deletes_at,
            token_id=secrets.token_hex(16),
        )
        for due in runs
    ]
    listed = tuple(
        NoticeRun(
            job_id=due.job_id,
            name=due.name,
            scraper=due.scraper,
            folder=due.folder,
            deletes_at=due.deletes_at,
            size_bytes=due.size_bytes,
            keep_url=links.keep(keep_token(secret_key, notice)),
            run_url=links.run(due.job_id),
        )
        for due, notice in zip(runs, notices, strict=True)
    )
    digest = Digest(
        owner=username,
        owner_id=owner_id,
        recipient=recipient,
        channel=channel.name,
        sent_at=now,
        days=lc.settings.delete_notice_days,
        keep_days=KEEP_DAYS,
        runs=listed,
    )
    try:
        channel.send(digest)
    except Exception as error:  # said in the notice_failed alert and the report; the door raises
        return error
    lc.session.add_all(notices)
    lc.session.commit()  # each digest recorded as it goes: a later failure does not send it again
    return None


def _raise_failed(lc: Lifecycle, channel: str, failures: list[str], now: datetime) -> None:
    shown = "; ".join(failures[:5]) + (f"; and {len(failures) - 5} more" if len(failures) > 5 else "")
    how = "by mail (SMTP_URL)" if channel == "email" else "to the alert webhook (ALERT_WEBHOOK_URL)"
    raise_alert(
        lc.session,
        ALERT_KIND,
        "warning",
        f"{len(failures)} deletion notice(s) could not be sent {how}; tried again at the next notice pass: {shown}"[
            :2000
        ],
        subject=channel,
        now=now,
        failures=failures[:20],
    )


# -- the keep link ------------------------------------------------------------------------------------


def _serializer(secret_key: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret_key, salt=KEEP_SALT)


def keep_token(secret_key: str, notice: DeletionNotice) -> str:
    """The signed token of a notice's keep link: its token id, run, owner and expiry (the deletion)."""
    return _serializer(secret_key).dumps(
        {
            "t": notice.token_id,
            "j": str(notice.job_id),
            "o": str(notice.owner_id),
            "e": int(notice.deletes_at.timestamp()),
        }
    )


class KeepRefused(LifecycleError):
    """A keep link that does not keep anything: ``kind`` says why (``invalid``, ``unknown``,
    ``forbidden``, ``used``, ``expired``, ``conflict``), the message says it in words."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(frozen=True)
class KeepOffer:
    """What following a valid keep link does: keep ``job`` until ``keep_until``, as ``owner``."""

    notice: DeletionNotice
    job: Job
    owner: User
    keep_until: datetime


def _payload(secret_key: str, token: str) -> tuple[str, uuid.UUID, uuid.UUID, datetime]:
    invalid = KeepRefused("invalid", "This link is not one Agar made, or it was changed or cut short.")
    if len(token) > 1000:
        raise invalid
    try:
        data = _serializer(secret_key).loads(token)
        token_id, job_id, owner_id = str(data["t"]), uuid.UUID(data["j"]), uuid.UUID(data["o"])
        expires = datetime.fromtimestamp(int(data["e"]), UTC)
    except (BadData, KeyError, TypeError, ValueError, OverflowError):
        raise invalid from None
    return token_id, job_id, owner_id, expires


def read_keep_link(lc: Lifecycle, token: str, *, secret_key: str) -> KeepOffer:
    """What the keep link would do now, changing nothing; ``KeepRefused`` when it would do nothing."""
    session, now = lc.session, lc.now()
    token_id, job_id, owner_id, expires = _payload(secret_key, token)
    if now >= expires:
        raise KeepRefused(
            "expired", f"This link expired at {expires:%Y-%m-%d %H:%M} UTC, when the run was due for deletion."
        )
    notice = session.scalar(select(DeletionNotice).where(DeletionNotice.token_id == token_id))
    if notice is None:
        raise KeepRefused("unknown", "This link is not in Agar's records of the notices it sent.")
    if notice.job_id != job_id or notice.owner_id != owner_id:
        raise KeepRefused("forbidden", "This link was not sent for this run and owner.")
    if notice.used_at is not None:
        raise KeepRefused("used", f"This link was used already, at {notice.used_at:%Y-%m-%d %H:%M} UTC.")
    spent = session.scalar(
        select(DeletionNotice.used_at)
        .where(
            DeletionNotice.job_id == notice.job_id,
            DeletionNotice.deletes_at == notice.deletes_at,
            DeletionNotice.used_at.is_not(None),
        )
        .limit(1)
    )
    if spent is not None:
        raise KeepRefused(
            "used", f"The run was kept already from a notice of this deletion, at {spent:%Y-%m-%d %H:%M} UTC."
        )
    job, owner = session.get(Job, notice.job_id), session.get(User, notice.owner_id)
    if job is None or owner is None or job.created_by != owner.id:
        raise KeepRefused("forbidden", "This run is no longer the one this link was sent to keep.")
    refusal = access.refusal(owner, "extend", job, now=now, grace_days=lc.settings.delete_grace_days)
    if refusal is not None:
        raise KeepRefused("conflict", refusal.message)
    keep_until = notice.deletes_at + timedelta(days=KEEP_DAYS)
    if job.keep_forever or (job.retain_until is not None and job.retain_until >= keep_until):
        kept = "forever" if job.keep_forever else f"until {job.retain_until:%Y-%m-%d %H:%M} UTC"
        raise KeepRefused("conflict", f"The run is kept {kept} already: this link would not keep it longer.")
    return KeepOffer(notice, job, owner, keep_until)


def keep_from_notice(lc: Lifecycle, token: str, *, secret_key: str) -> KeepOffer:
    """Follow a keep link: extend the run's retention as its owner, and spend the link (and its copies)."""
    offer = read_keep_link(lc, token, secret_key=secret_key)
    session, now, notice = lc.session, lc.now(), offer.notice
    copies = (DeletionNotice.job_id == notice.job_id, DeletionNotice.deletes_at == notice.deletes_at)
    # Spent before the extension, by a guarded UPDATE: of two clicks at once, one alone gets here.
    claimed = session.execute(
        update(DeletionNotice)
        .where(DeletionNotice.id == notice.id, DeletionNotice.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if claimed != 1:
        session.rollback()
        raise KeepRefused("used", "This link was used already.")
    session.execute(
        update(DeletionNotice)
        .where(*copies, DeletionNotice.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    try:
        deletion.extend_retention(
            lc,
            offer.job.id,
            actor=offer.owner.username,
            reason=f"kept from the deletion notice of {notice.sent_at:%Y-%m-%d} ({KEEP_DAYS} more days)",
            retain_until=offer.keep_until,
        )
    except BaseException:
        session.rollback()
        session.execute(
            update(DeletionNotice)
            .where(*copies, DeletionNotice.used_at == now)
            .values(used_at=None)
            .execution_options(synchronize_session=False)
        )
        session.commit()
        raise
    session.refresh(notice)
    return offer


def notices_of_run(session: Any, job_id: uuid.UUID, limit: int = 10) -> list[tuple[DeletionNotice, str]]:
    """The latest deletion notices that listed the run, newest first, with the owner's username."""
    rows = session.execute(
        select(DeletionNotice, User.username)
        .join(User, User.id == DeletionNotice.owner_id)
        .where(DeletionNotice.job_id == job_id)
        .order_by(DeletionNotice.sent_at.desc(), DeletionNotice.id.desc())
        .limit(limit)
    )
    return [(notice, username) for notice, username in rows]
