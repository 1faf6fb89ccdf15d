"""The database tables of SPEC §4, as plain SQLAlchemy 2.0 models (no Flask here)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    Uuid,
    func,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

JOB_STATUSES = ("pending", "running", "completed", "failed", "cancelled")
FINISHED_STATUSES = ("completed", "failed", "cancelled")
LIFECYCLE_ACTIONS = (
    "archive",
    "restore",
    "expire_restore",
    "delete",
    "purge",
    "undelete",
    "extend",
    "migrate",
    "verify",
)
# "started" is written when an attempt begins (under the run's lock) and replaced by its outcome in
# the same transaction as the work's record: one left "started" with no lock held was interrupted.
EVENT_OUTCOMES = ("started", "succeeded", "failed", "skipped")
VERIFY_OUTCOMES = ("ok", "corrupt", "missing")
USER_ROLES = ("admin", "member")


def utcnow() -> datetime:
    """Return the current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def _in_utc(value: datetime | None) -> datetime | None:
    return value if value is None or value.tzinfo is UTC else value.astimezone(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware.

    PostgreSQL keeps the zone (timestamptz); SQLite keeps none, so values are normalised to
    UTC on the way in and tagged as UTC on the way out. Naive values are refused: a naive time
    is a bug waiting for a server in another zone.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given for a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def result_processor(self, dialect: Any, coltype: Any) -> Any:
        if dialect.name == "postgresql":
            return _in_utc  # psycopg returns timestamptz aware; the engine asks for sessions in UTC
        return super().result_processor(dialect, coltype)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONType = JSON().with_variant(JSONB(), "postgresql")
# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
BigIntKey = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


def count_rows(session: Any, query: Any) -> int:
    """How many rows a SELECT returns, counted in the database."""
    return session.scalar(select(func.count()).select_from(query.subquery())) or 0


COUNT_CAP = 10_000


def capped_count(session: Any, query: Any, cap: int = COUNT_CAP) -> tuple[int, bool]:
    """Count the query's rows, stopping at ``cap`` so a huge table never dominates a request:
    ``(count, whether there are more)``."""
    total = session.scalar(select(func.count()).select_from(query.limit(cap + 1).subquery())) or 0
    return min(total, cap), total > cap


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class User(Base):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint(_in("role", USER_ROLES), name="role"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default="member")
    api_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Raised by a logout or a password change: every session cookie opened before it stops working.
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    email: Mapped[str | None] = mapped_column(String(254))  # where deletion notices go (app.names.check_email_address)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


# The runs keep_last counts: successful and not deleted (SPEC §9).
KEEP_LAST_RUNS = "status = 'completed' AND deleted_at IS NULL"


class Job(Base):
    """One scraper run (a *job* in code and API) and where it is in its life."""

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(_in("status", JOB_STATUSES), name="status"),
        # The listings read one tier, newest first: partial indexes hold just that tier, in order,
        # so neither the page nor its count wades through the (mostly purged) rest of the table.
        # The active list also filters by status and scraper: one index each keeps both the page
        # and its capped count on the matching runs alone (a count of the 9,000 failed runs of
        # 180,000 active ones went from 210 ms through the table to ~2 ms in the index).
        *(
            Index(
                f"ix_jobs_{tier}_{'_'.join(columns)}",
                *columns,
                postgresql_where=text(condition),
                sqlite_where=text(condition),
            )
            for tier, condition, filters in (
                ("active", "archived_at IS NULL AND deleted_at IS NULL", ("status", "scraper")),
                ("archived", "archived_at IS NOT NULL AND deleted_at IS NULL", ()),
                ("deleted", "deleted_at IS NOT NULL", ()),  # the dashboard's trash (380 ms a page without)
            )
            for columns in (
                ("created_at", "id"),
                ("created_by", "created_at"),
                *((column, "created_at", "id") for column in filters),
            )
        ),
        # The archive page totals a range of archived runs (runs, bytes before and after, by codec):
        # on PostgreSQL the index carries those columns, so the sums never visit the table
        # (640 k archived runs: 157 ms in one grouped pass instead of 635 ms in two table scans).
        # keep_last (retention policies): "is there an n-th newer successful run of this scraper?" is
        # answered from this index alone, however many runs the scraper has.
        Index(
            "ix_jobs_kept_scraper_created_at_id",
            "scraper",
            "created_at",
            "id",
            postgresql_where=text(KEEP_LAST_RUNS),
            sqlite_where=text(KEEP_LAST_RUNS),
        ),
        Index(
            "ix_jobs_archived_totals",
            "created_at",
            postgresql_include=["compression", "size_bytes", "archive_size_bytes", "created_by"],
            postgresql_where=text("archived_at IS NOT NULL AND deleted_at IS NULL"),
            sqlite_where=text("archived_at IS NOT NULL AND deleted_at IS NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(255))
    scraper: Mapped[str] = mapped_column(String(255), index=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    created_by: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id", ondelete="SET NULL"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    folder_name: Mapped[str | None] = mapped_column(String(255), index=True)
    stats: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    archive_path: Mapped[str | None] = mapped_column(String(512))
    archive_size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    archive_sha256: Mapped[str | None] = mapped_column(String(64))
    compression: Mapped[str | None] = mapped_column(String(8))
    restored_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    restore_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    retain_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    keep_forever: Mapped[bool] = mapped_column(Boolean, default=False)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    deleted_by: Mapped[str | None] = mapped_column(String(64))
    deletion_reason: Mapped[str | None] = mapped_column(Text)
    purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The last integrity check of the archive (SPEC §9): when, and what it found.
    last_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    verify_outcome: Mapped[str | None] = mapped_column(String(16))


class JobAudit(Base):
    """What remains of a deleted run: written when the deletion happens, never removed."""

    __tablename__ = "job_audit"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    job_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    job_name: Mapped[str | None] = mapped_column(String(255))
    folder_name: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deleted_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    stats: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    created_by: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    deletion_reason: Mapped[str | None] = mapped_column(Text)
    deleted_by: Mapped[str | None] = mapped_column(String(64))
    strategy: Mapped[str | None] = mapped_column(String(8))
    bytes_freed: Mapped[int | None] = mapped_column(BigInteger)


class LifecycleEvent(Base):
    """One attempt at one lifecycle action on one run, whatever its outcome."""

    __tablename__ = "lifecycle_events"
    __table_args__ = (
        CheckConstraint(_in("action", LIFECYCLE_ACTIONS), name="action"),
        CheckConstraint(_in("outcome", EVENT_OUTCOMES), name="outcome"),
        Index("ix_lifecycle_events_action_started_at", "action", "started_at"),
        # Reconcile looks for attempts left "started" by a killed process: few rows, found at once.
        Index(
            "ix_lifecycle_events_unfinished",
            "job_id",
            postgresql_where=text("outcome = 'started'"),
            sqlite_where=text("outcome = 'started'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    # A plain column, not a foreign key: history outlives a hard-deleted run.
    job_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    action: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    bytes_before: Mapped[int | None] = mapped_column(BigInteger)
    bytes_after: Mapped[int | None] = mapped_column(BigInteger)
    # Our addition: warnings (links left out) and what a repair did.
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONType)


class ArchiveMember(Base):
    """One entry of a run archive's manifest, so members can be listed and read without unpacking."""

    __tablename__ = "archive_members"
    __table_args__ = (CheckConstraint(_in("kind", ("dir", "file", "symlink")), name="kind"),)

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    job_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    path: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(8))
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    sha256: Mapped[str | None] = mapped_column(String(64))
    link_target: Mapped[str | None] = mapped_column(Text)
    # Where the member's bytes start in the uncompressed tar stream (for seekable reads later).
    offset: Mapped[int | None] = mapped_column(BigInteger)
    # In a seekable archive (issue 14), the blocks holding the member: read the compressed bytes
    # block_start..block_stop (NULL: to the end), decode from block_plain, the uncompressed offset
    # the first of them starts at. Kept per member so a read needs no index, however large the archive.
    block_start: Mapped[int | None] = mapped_column(BigInteger)
    block_stop: Mapped[int | None] = mapped_column(BigInteger)
    block_plain: Mapped[int | None] = mapped_column(BigInteger)


class ArchiveIndex(Base):
    """Where each independently decompressible block of a run's archive starts (issue 14): pairs
    ``[compressed offset, uncompressed offset]``, ascending. A member read starts at the block
    holding its first byte and stops after the block holding its last. No row: a sequential archive
    (written before, or by a codec without blocks), read from its start."""

    __tablename__ = "archive_indexes"

    job_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    codec: Mapped[str] = mapped_column(String(8))
    blocks: Mapped[list[list[int]]] = mapped_column(JSONType)


class StorageSnapshot(Base):
    """Bytes and counts per tier and the disk's size, taken hourly (``demo``: written by ``flask demo seed``)."""

    __tablename__ = "storage_snapshots"

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    taken_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    active_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    active_count: Mapped[int] = mapped_column(Integer, default=0)
    archived_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    archived_count: Mapped[int] = mapped_column(Integer, default=0)
    trash_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    deleted_count: Mapped[int] = mapped_column(Integer, default=0)
    # Restored working copies in jobs/: a tier of their own (their archives count as archived).
    restored_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    restored_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    disk_total_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    disk_free_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    # The demo's history of a fresh install (app.demo.seed_history), not a measurement of this site.
    demo: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")


class Alert(Base):
    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(64), index=True)
    severity: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RunAccess(Base):
    """A person used a run on a day: opened its page, downloaded it or a file of it, restored it.

    One row per run and UTC day (a counter, not a row per request): what ``keep_after_access_days``
    (retention policies) reads. ``last_by`` and ``by_owner`` say who used it last that day.
    """

    __tablename__ = "run_accesses"

    job_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)  # plain: history outlives the run
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=1)
    last_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_by: Mapped[str] = mapped_column(String(64))
    last_kind: Mapped[str] = mapped_column(String(16))  # opened, downloaded, restored (app.lifecycle.accesses)
    by_owner: Mapped[bool] = mapped_column(Boolean, default=False)


POLICY_CHANGES = ("add", "set", "remove")


class RetentionPolicy(Base):
    """A retention rule for the runs of the scrapers its pattern matches (SPEC §9); the highest priority wins."""

    __tablename__ = "retention_policies"
    __table_args__ = (
        CheckConstraint("archive_after_days >= 0", name="archive_after_days"),
        CheckConstraint(
            "delete_after_days IS NULL OR delete_after_days > archive_after_days", name="delete_after_days"
        ),
        CheckConstraint("keep_last >= 0", name="keep_last"),
        CheckConstraint("keep_after_access_days IS NULL OR keep_after_access_days >= 1", name="keep_after_access"),
    )

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    scraper_pattern: Mapped[str] = mapped_column(String(255))
    statuses: Mapped[list[str]] = mapped_column(JSONType, default=list)
    archive_after_days: Mapped[int] = mapped_column(Integer)
    delete_after_days: Mapped[int | None] = mapped_column(Integer)
    keep_last: Mapped[int] = mapped_column(Integer, default=0)
    keep_after_access_days: Mapped[int | None] = mapped_column(Integer)
    legal_hold: Mapped[bool] = mapped_column(Boolean, default=False)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    reason: Mapped[str] = mapped_column(Text)


class PolicyChange(Base):
    """One change to the retention policies: who, when, why, and the policy before and after."""

    __tablename__ = "policy_changes"
    __table_args__ = (CheckConstraint(_in("action", POLICY_CHANGES), name="action"),)

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    policy_id: Mapped[int] = mapped_column(BigInteger, index=True)  # plain: the history outlives a removed policy
    policy_name: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(8))
    actor: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSONType)


NOTICE_CHANNELS = ("email", "webhook")


class DeletionNotice(Base):
    """One run listed in one deletion notice sent to its owner by one channel, and its "keep" link.

    Written once the digest has gone out; the day's rows are what keeps a run out of a second
    digest the same day. ``token_id`` names the signed link; ``used_at`` spends it (app.lifecycle.notices).
    """

    __tablename__ = "deletion_notices"
    __table_args__ = (CheckConstraint(_in("channel", NOTICE_CHANNELS), name="channel"),)

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    job_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)  # plain: the notice outlives the run
    owner_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(8))
    recipient: Mapped[str] = mapped_column(String(254))  # the address mailed, or "webhook"
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    deletes_at: Mapped[datetime] = mapped_column(UTCDateTime)  # when the cleanup would delete it, as the notice said
    token_id: Mapped[str] = mapped_column(String(32), unique=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
