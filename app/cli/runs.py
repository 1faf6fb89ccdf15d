"""``flask runs …``: the lifecycle from the command line, in process (or ``--enqueue``d to RQ)."""

from __future__ import annotations

import getpass
import sys
from datetime import UTC, date, datetime, time
from typing import Any

import click
from sqlalchemy import func, select

from app import tasks
from app.extensions import db, lifecycle, settings
from app.lifecycle import access, archival, deletion, deletion_limits, passes, queries, verification
from app.lifecycle.errors import LifecycleError
from app.lifecycle.naming import BadJobId, parse_job_id, run_folder_name
from app.lifecycle.policy import runs_due_for_archival, runs_due_for_cleanup, trash_due_for_purge
from app.lifecycle.reconcile import reconcile
from app.lifecycle.retention import load_rules
from app.lifecycle.runs import folder_name_of, is_active, is_archived, is_in_trash, is_purged, load_run
from app.models import Job, count_rows


@click.group("runs")
def runs_cli() -> None:
    """Archive, clean up, restore and repair runs."""


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


class DateParam(click.ParamType):
    name = "DATE"

    def convert(self, value: Any, param: Any, ctx: Any) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            if len(value) == 10:
                return datetime.combine(date.fromisoformat(value), time.min, UTC)
            moment = datetime.fromisoformat(value)
        except ValueError:
            self.fail(f"{value!r} is not an ISO 8601 date or date-time", param, ctx)
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class JobIdParam(click.ParamType):
    name = "ID"

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        try:
            return parse_job_id(value)
        except BadJobId as error:
            self.fail(str(error), param, ctx)


def _bar(label: str = "runs") -> Any:
    state: dict[str, Any] = {}

    def progress(done: int, total: int) -> None:
        if "bar" not in state:
            state["bar"] = click.progressbar(length=total, label=label, file=sys.stderr)
            state["bar"].__enter__()
        state["bar"].update(done - state.get("done", 0))
        state["done"] = done
        if done >= total:
            state.pop("bar").__exit__(None, None, None)

    return progress


def _size_text(n: int) -> str:
    """Bytes as people read them, in the units of the dashboard (1 MB = 2**20 bytes)."""
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


# What each pass does to a run, said the way an admin would: (would …, did …).
_VERBS = {
    "archive": ("archive", "archived"),
    "cleanup": ("delete", "deleted"),
    "migrate": ("migrate", "migrated"),
    "rewrite": ("rewrite", "rewritten"),
}


def pass_summary(report: passes.PassReport) -> str:
    """One line saying what a pass did, or in a dry run would do: runs, bytes, and the side work."""
    would, did = _VERBS.get(report.action, (report.action, report.action))
    acted = report.outcomes["succeeded"]
    head = f"{'would ' + would if report.dry_run else did} {_plural(acted, 'run')}, {_size_text(report.bytes_before)}"
    parts = [head]
    if not report.dry_run:
        parts.append(", ".join(f"{count} {name}" for name, count in report.outcomes.items()))
    if "restores_expired" in report.extra:
        expired = report.extra["restores_expired"]
        parts.append(f"expired {expired} restored {'copy' if expired == 1 else 'copies'}")
    if "purged" in report.extra:
        parts.append(
            f"{'would purge' if report.dry_run else 'purged'} {_plural(report.extra['purged'], 'trashed run')}"
        )
    if "deletion_limit" in report.extra:
        parts.append(_deletion_limit_summary(report.extra["deletion_limit"]))
    return "; ".join(parts)


def _deletion_limit_summary(limit: dict[str, Any]) -> str:
    """The deletion limit's numbers for a cleanup pass, and what to do when it held runs."""
    text = f"{limit['due']} due, limit {limit['limit']} a pass"
    if limit["confirmed_by"]:
        text += f" (confirmed by {limit['confirmed_by']})"
    if limit["held"]:
        text += f", {limit['held']} held until an admin confirms (flask runs confirm-deletions --reason ...)"
    return text


def _print_report(report: passes.PassReport) -> None:
    for line in report.lines:
        click.echo(line)
    click.echo(pass_summary(report), err=True)
    for error in report.errors:
        click.echo(f"  error: {error}", err=True)
    if report.failed:
        raise click.exceptions.Exit(1)


def _enqueued(job: Any) -> None:
    click.echo(f"enqueued task {job.id}")


def _one_run(
    verb: str, rule: str, job_id: Any, *, dry_run: bool, enqueue: bool, operation: Any, task: Any, task_args: tuple = ()
) -> None:
    """Act on one run, as the rules (``app.lifecycle.access``) allow: a dry run says what would happen,
    ``--enqueue`` queues only what a worker could do, and in-process work runs the operation, which
    asks the rules under the run's lock (and skips what is already done: a rerun is harmless)."""
    lc = lifecycle()
    job = load_or_fail(job_id)
    refused = access.refusal_under_lock(lc, rule, job)  # the system asks, as the operation will
    if dry_run:
        size = 0 if refused else ((passes.bytes_to_archive(lc, job) if rule == "archive" else job.size_bytes) or 0)
        if not refused:
            click.echo(f"{run_folder_name(folder_name_of(job), job.id)}\t{size}")
        click.echo(f"would {verb} {_plural(0 if refused else 1, 'run')}, {_size_text(size)}", err=True)
        if refused:
            click.echo(f"  not {verb}d: {refused}", err=True)
        return
    if enqueue:
        if refused:
            raise click.ClickException(f"{verb} of {job_id} refused: {refused}")
        return _enqueued(tasks.enqueue_for_run(task, job, _actor(), *task_args))
    try:
        outcome = operation(lc)
    except access.NotAllowed as error:
        raise click.ClickException(f"{verb} of {job_id} refused: {error}") from None
    except (LifecycleError, OSError) as error:
        raise click.ClickException(f"{verb} of {job_id} failed: {error}") from None
    click.echo(f"{verb} {job_id}: {outcome}")


def load_or_fail(job_id: Any) -> Job:
    try:
        return load_run(lifecycle(), job_id)
    except LifecycleError as error:
        raise click.ClickException(str(error)) from None


batch_options = [
    click.option("--dry-run", is_flag=True, help="List what would change ({folder_name}_{job_id} and bytes)."),
    click.option("--before", type=DateParam(), help="Act on runs finished before DATE instead of the age rule."),
    click.option("--job", "job_id", type=JobIdParam(), help="Act on this one run now."),
    click.option("--enqueue", is_flag=True, help="Hand the work to an RQ worker instead of doing it here."),
]


def with_batch_options(function: Any) -> Any:
    for option in reversed(batch_options):
        function = option(function)
    return function


@runs_cli.command("archive")
@with_batch_options
def archive_command(dry_run: bool, before: datetime | None, job_id: Any, enqueue: bool) -> None:
    """Archive the runs due for archival (and expire old restored copies)."""
    if job_id:
        return _one_run(
            "archive",
            "archive",
            job_id,
            dry_run=dry_run,
            enqueue=enqueue,
            operation=lambda lc: archival.archive_run(lc, job_id, actor=_actor(), manual=True),
            task=tasks.archive_job,
        )
    if enqueue:
        return _enqueued(
            tasks.enqueue(tasks.archive_old_runs, _actor(), before.isoformat() if before else None, timeout="batch")
        )
    _print_report(passes.archive_old_runs(lifecycle(), actor=_actor(), before=before, dry_run=dry_run, progress=_bar()))


@runs_cli.command("cleanup")
@with_batch_options
@click.option("--reason", default="manual cleanup", help="Why (recorded in the audit) when deleting one run.")
def cleanup_command(dry_run: bool, before: datetime | None, job_id: Any, enqueue: bool, reason: str) -> None:
    """Delete archived runs past DELETE_AFTER_DAYS and purge the trash past its grace period."""
    if job_id:
        try:
            reason = queries.reason_text(reason, required=True)
        except LifecycleError as error:
            raise click.BadParameter(str(error), param_hint="--reason") from None
        rule = access.deletion_action(access.SYSTEM, None, settings().deletion_strategy)
        return _one_run(
            "delete",
            rule,
            job_id,
            dry_run=dry_run,
            enqueue=enqueue,
            operation=lambda lc: deletion.delete_run(lc, job_id, actor=_actor(), reason=reason),
            task=tasks.delete_job,
            task_args=(reason,),
        )
    if enqueue:
        return _enqueued(
            tasks.enqueue(tasks.cleanup_old_runs, _actor(), before.isoformat() if before else None, timeout="batch")
        )
    _print_report(passes.cleanup_old_runs(lifecycle(), actor=_actor(), before=before, dry_run=dry_run, progress=_bar()))


@runs_cli.command("confirm-deletions")
@click.option("--reason", required=True, help="Why these deletions are meant (kept with the alert).")
def confirm_deletions_command(reason: str) -> None:
    """Release the cleanup pass the deletion limit holds: the next cleanup pass deletes what was held."""
    try:
        alert = deletion_limits.confirm_deletions(db.session, actor=_actor(), reason=reason, now=datetime.now(UTC))
    except LifecycleError as error:
        raise click.ClickException(str(error)) from None
    click.echo(deletion_limits.released_text(alert))


@runs_cli.command("restore")
@click.option("--job", "job_id", type=JobIdParam(), required=True, help="The archived run to restore.")
@click.option("--dry-run", is_flag=True, help="Say whether the run would be restored.")
@click.option("--enqueue", is_flag=True, help="Hand the work to an RQ worker.")
def restore_command(job_id: Any, dry_run: bool, enqueue: bool) -> None:
    """Extract a working copy of an archived run into jobs/."""
    _one_run(
        "restore",
        "restore",
        job_id,
        dry_run=dry_run,
        enqueue=enqueue,
        operation=lambda lc: archival.restore_run(lc, job_id, actor=_actor()),
        task=tasks.restore_job,
    )


@runs_cli.command("reconcile")
@click.option(
    "--report", "report_only", is_flag=True, help="Change nothing: list what a repair would do and what needs a person."
)
@click.option("--no-hash", is_flag=True, help="With --report: check archives' sizes only, not their SHA-256.")
def reconcile_command(report_only: bool, no_hash: bool) -> None:
    """Repair what a crash left: partial files, unrecorded archives, leftover folders; exit 1 if anything is left."""
    report = reconcile(lifecycle(), repair=not report_only, hash_archives=report_only and not no_hash)
    labels = {"repaired": "would repair" if report_only else "repaired", "orphans": "orphan"}
    for key, items in report.as_dict().items():
        for item in items:
            click.echo(f"{labels.get(key, key.rstrip('s'))}: {item}")
    summary = (
        f"{len(report.repaired)} {'to repair' if report_only else 'repaired'}, {len(report.orphans)} orphans, "
        f"{len(report.busy)} busy, {len(report.problems)} problems"
    )
    click.echo(f"reconcile{' report (nothing changed)' if report_only else ''}: {summary}", err=True)
    if report.unrepaired:
        raise click.exceptions.Exit(1)


@runs_cli.command("migrate-folders")
@click.option("--rename", is_flag=True, help="Also rename legacy bare-UUID folders to {folder_name}_{job_id}.")
@click.option("--dry-run", is_flag=True, help="List what would change.")
@click.option("--enqueue", is_flag=True, help="Hand the work to an RQ worker.")
def migrate_command(rename: bool, dry_run: bool, enqueue: bool) -> None:
    """Fill folder_name for legacy runs from their created_at."""
    if enqueue:
        return _enqueued(tasks.enqueue(tasks.migrate_folder_names, _actor(), rename, timeout="batch"))
    _print_report(
        passes.migrate_folder_names(lifecycle(), actor=_actor(), rename=rename, dry_run=dry_run, progress=_bar())
    )


@runs_cli.command("make-seekable")
@click.option("--job", "job_id", type=JobIdParam(), help="Rewrite this one run's archive.")
@click.option("--dry-run", is_flag=True, help="List the archives that would be rewritten.")
@click.option("--enqueue", is_flag=True, help="Hand the work to an RQ worker.")
def make_seekable_command(job_id: Any, dry_run: bool, enqueue: bool) -> None:
    """Rewrite gzip and zstd archives written before seekable blocks, so a member read decodes only its blocks.

    The tar inside is unchanged (the manifest's offsets and checksums stay true); the new file is
    verified member by member before the run's record points at it and the old file is removed.
    """
    job_ids = [job_id] if job_id else None
    if enqueue:
        ids = [str(job_id)] if job_id else None
        return _enqueued(tasks.enqueue(tasks.make_archives_seekable, _actor(), ids, timeout="batch"))
    _print_report(
        passes.make_archives_seekable(lifecycle(), actor=_actor(), job_ids=job_ids, dry_run=dry_run, progress=_bar())
    )


@runs_cli.command("status")
def status_command() -> None:
    """Print counts and bytes per tier, and what the next passes would do."""
    session = db.session
    now = datetime.now(UTC)

    def row(condition: Any, size: Any) -> tuple[int, int]:
        count, total = session.execute(select(func.count(), func.coalesce(func.sum(size), 0)).where(condition)).one()
        return count, total

    tiers = [
        ("active", *row(is_active(), Job.size_bytes)),
        ("archived", *row(is_archived(), Job.archive_size_bytes)),
        ("restored", *row(Job.restored_at.is_not(None), Job.size_bytes)),
        ("trash", *row(is_in_trash(), Job.archive_size_bytes)),
        ("purged", *row(is_purged(), Job.archive_size_bytes)),
    ]
    click.echo(f"{'tier':<10}{'runs':>10}{'bytes':>18}")
    for name, count, total in tiers:
        click.echo(f"{name:<10}{count:>10}{total:>18}")
    s = settings()
    rules = load_rules(session, s)
    for label, query in (
        ("due for archival", runs_due_for_archival(rules, now)),
        ("due for cleanup", runs_due_for_cleanup(rules, now)),
        ("due for purge", trash_due_for_purge(rules, s, now)),
    ):
        click.echo(f"{label}: {count_rows(session, query)}")


@runs_cli.command("verify")
@click.option("--job", "job_id", type=JobIdParam(), help="Verify this one run's archive now.")
@click.option("--all", "verify_all", is_flag=True, help="Verify every stored archive, beyond VERIFY_MAX_BYTES_PER_RUN.")
@click.option("--enqueue", is_flag=True, help="Hand the work to an RQ worker instead of doing it here.")
def verify_command(job_id: Any, verify_all: bool, enqueue: bool) -> None:
    """Re-read stored archives against their SHA-256 and manifest; exit 1 on any mismatch.

    Without --job or --all: the archives never verified, then those verified longest ago, up to
    VERIFY_MAX_BYTES_PER_RUN (what the weekly VERIFY_SCHEDULE task does).
    """
    job_ids = [job_id] if job_id else None
    if enqueue:
        ids = [str(job_id)] if job_id else None
        return _enqueued(tasks.enqueue(tasks.verify_archives, _actor(), ids, verify_all, timeout="batch"))
    report = verification.verify_archives(
        lifecycle(),
        actor=_actor(),
        max_bytes=settings().verify_max_bytes_per_run,
        job_ids=job_ids,
        all=verify_all,
        progress=_bar("bytes"),
    )
    for line in report.lines:
        click.echo(line)
    for error in report.errors:
        click.echo(f"  error: {error}", err=True)
    found = [f"{count} {outcome}" for outcome, count in report.outcomes.items() if count]
    found += [f"{report.busy} busy"] if report.busy else []
    found += [f"{report.failed} not checked (error)"] if report.failed else []
    archives = f"{report.verified} archive{'' if report.verified == 1 else 's'}"
    summary = f"verified {archives}, {_size_text(report.bytes_read)}: {', '.join(found) or 'none due'}"
    if report.left:
        summary += f"; {report.left} left for the next pass"
    click.echo(summary, err=True)
    if report.mismatches or report.failed:
        raise click.exceptions.Exit(1)
