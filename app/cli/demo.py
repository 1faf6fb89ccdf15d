"""``flask demo seed``: realistic runs for a fresh install (a thin door into ``app.demo``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click
from redis.exceptions import RedisError
from sqlalchemy import func, select

from app.demo import MAX_DAYS, MAX_RUN_BYTES, MAX_RUNS, has_ever_had_runs, seed_demo, seed_history, seed_policies
from app.extensions import db, lifecycle, redis_connection, settings
from app.lifecycle.errors import LifecycleError
from app.models import User

UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


class SizeParam(click.ParamType):
    """A size in bytes: ``2M``, ``500K``, ``1G`` or a plain number."""

    name = "SIZE"

    def convert(self, value: Any, param: Any, ctx: Any) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip().upper().removesuffix("B").removesuffix("I")
        unit = UNITS.get(text[-1:], 1)
        number = text[:-1] if text[-1:] in UNITS else text
        try:
            size = int(float(number) * unit)
        except ValueError:
            self.fail(f"{value!r} is not a size such as 2M, 500K or 1048576", param, ctx)
        if not 1024 <= size <= MAX_RUN_BYTES:
            self.fail(f"{value!r} is not between 1K and {MAX_RUN_BYTES >> 20}M", param, ctx)
        return size


@click.group("demo")
def demo_cli() -> None:
    """Demo data for trying the product out."""


@demo_cli.command("seed")
@click.option("--runs", type=click.IntRange(1, MAX_RUNS), default=40, show_default=True, help="How many runs.")
@click.option(
    "--days", type=click.IntRange(1, MAX_DAYS), default=45, show_default=True, help="Spread over this many past days."
)
@click.option("--size", "run_bytes", type=SizeParam(), default="2M", show_default=True, help="Average size of a run.")
@click.option("--user", "username", default=None, help="Owner of the runs (default: the first admin).")
@click.option("--seed", type=int, default=None, help="Random seed, for the same runs every time.")
@click.option("--first-start", is_flag=True, help="Only on an install that has never had a run (used by `make run`).")
def seed_command(
    runs: int, days: int, run_bytes: int, username: str | None, seed: int | None, first_start: bool
) -> None:
    """Write and register realistic scraper runs (JSON, screenshots, PDFs, logs) over the past weeks,
    and the history the schedule would have recorded meanwhile (events, hourly snapshots), marked as demo."""
    session = db.session
    if first_start and has_ever_had_runs(session):
        return
    owner = _owner(username)
    s = settings()
    jobs_root = s.jobs_path
    now = datetime.now(UTC)
    try:
        made = seed_demo(
            session,
            jobs_root,
            runs=runs,
            days=days,
            run_bytes=run_bytes,
            now=now,
            created_by=owner.id,
            seed=seed,
        )
    except (OSError, LifecycleError) as error:
        raise click.ClickException(f"cannot write the demo runs into {jobs_root}: {error}") from None
    total = sum(job.size_bytes or 0 for job in made)
    try:
        history = seed_history(session, s, made, days=days, now=now, seed=seed, lc=_lifecycle_if_redis())
    except OSError as error:
        raise click.ClickException(f"seeded the runs, but not their history: {error}") from None
    snapshots = (
        f"{history.snapshots} hourly storage snapshots"
        if history.snapshots
        else "no storage snapshots (this install has its own)"
    )
    click.echo(
        f"Seeded {len(made)} demo runs of the past {days} days ({total / 1e6:.1f} MB) in {jobs_root}, "
        f"owned by {owner.username}."
    )
    if history.moved:
        click.echo(
            f"Moved them along their past as the schedule would have (archived {s.archive_after_days} days, "
            f"deleted {s.delete_after_days} days after they finished), each step on its date: "
            f"{history.events} lifecycle events and {snapshots}, marked as demo.\n"
            "What falls due from now on is the scheduler's; `flask runs archive` and `flask runs cleanup` "
            "do it at once."
        )
        if history.failed:
            click.echo(f"{history.failed} runs stopped where a step failed: see their events.", err=True)
    else:
        click.echo(
            f"Redis does not answer, so their past is only described: {history.events} lifecycle events and "
            f"{snapshots}, marked as demo. The scheduler's first passes archive those older than "
            f"{s.archive_after_days} days and delete those older than {s.delete_after_days}; "
            "`flask runs archive` and `flask runs cleanup` do it now."
        )
    added = seed_policies(session, actor=owner.username, now=now)
    if added:
        click.echo(
            f"Added {added} demo retention policies (per-scraper ages, keep the newest 3, a legal hold): "
            "see the Policies page, or `flask policies list`."
        )


def _lifecycle_if_redis() -> Any:
    """The lifecycle core when Redis (the runs' locks) answers, else None."""
    try:
        redis_connection().ping()
    except (RedisError, OSError):
        return None
    return lifecycle()


def _owner(username: str | None) -> User:
    query = select(User)
    if username is None:
        query = query.where(User.role == "admin").order_by(User.created_at)
    else:
        query = query.where(func.lower(User.username) == username.lower())
    owner = db.session.scalars(query.limit(1)).first()
    if owner is None:
        raise click.ClickException(
            f"no user {username!r}" if username else "no admin yet: create one with `flask users create NAME --admin`"
        )
    return owner
