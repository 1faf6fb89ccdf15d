"""``flask policies …``: list, add, change and remove the retention policies (SPEC §9).

A thin door into ``app.lifecycle.policies``: the options are read there as text (``never`` for no
delete age, ``completed,failed`` for statuses), every change is recorded with the OS user and a
reason, and ``--dry-run`` says what the change would do in the next passes and saves nothing.
"""

from __future__ import annotations

from typing import Any

import click

from app.cli.runs import _actor, _plural, _size_text
from app.extensions import db, settings
from app.lifecycle import policies
from app.lifecycle.errors import LifecycleError
from app.models import RetentionPolicy, utcnow


@click.group("policies")
def policies_cli() -> None:
    """Manage the retention policies (admins' rules per scraper)."""


def _days(days: int | None) -> str:
    return "never" if days is None else f"{days} d"


def policy_line(policy: RetentionPolicy) -> str:
    """One policy on one line: id, name, pattern, statuses, ages, keep_last, hold, priority."""
    return "\t".join(
        (
            str(policy.id),
            policy.name,
            policy.scraper_pattern,
            ",".join(policy.statuses or ()) or "all finished",
            f"archive after {policy.archive_after_days} d",
            "never delete" if policy.delete_after_days is None else f"delete after {policy.delete_after_days} d",
            f"keep last {policy.keep_last}",
            (
                "no keep after access"
                if policy.keep_after_access_days is None
                else f"keep after access {policy.keep_after_access_days} d"
            ),
            "legal hold" if policy.legal_hold else "no hold",
            f"priority {policy.priority}",
        )
    )


def _signed(n: int, text: str) -> str:
    return f"+{text}" if n > 0 else (f"-{text}" if n < 0 else "±0")


def print_effect(effect: dict[str, Any]) -> None:
    """What the next passes would do under a proposed change: in all, the change from now, per scraper."""
    for step, verb in (("archive", "archive"), ("delete", "delete")):
        total, change = effect[step], effect["change"][step]
        click.echo(
            f"would {verb} {_plural(total['runs'], 'run')}, {_size_text(total['bytes'])} in the next passes "
            f"({_signed(change['runs'], _plural(abs(change['runs']), 'run'))}, "
            f"{_signed(change['bytes'], _size_text(abs(change['bytes'])))} from now)"
        )
    for row in effect["by_scraper"]:
        click.echo(
            f"  {row['scraper'] or '(no scraper)'}\t"
            f"archive {_plural(row['archive_runs'], 'run')}, {_size_text(row['archive_bytes'])}\t"
            f"delete {_plural(row['delete_runs'], 'run')}, {_size_text(row['delete_bytes'])}"
        )
    click.echo("dry run: nothing saved", err=True)


def policy_options(function: Any) -> Any:
    """The options naming a policy's fields; each left out is not in the ask (``None``)."""
    options = [
        click.option("--name", help="The policy's name (unique)."),
        click.option("--scraper-pattern", help="Glob of the scrapers it applies to (* is any run of characters)."),
        click.option("--statuses", help='Finished statuses it applies to, e.g. "completed,failed" ("" = all).'),
        click.option("--archive-after-days", metavar="N", help="Archive a run N days after it finished."),
        click.option("--delete-after-days", metavar="N|never", help="Delete a run N days after it finished."),
        click.option("--keep-last", metavar="N", help="Never archive or delete the newest N successful runs."),
        click.option(
            "--keep-after-access-days", metavar="N|never", help="Keep a run used in the last N days from deletion."
        ),
        click.option("--legal-hold/--no-legal-hold", default=None, help="Nothing it matches is deleted while held."),
        click.option("--priority", metavar="N", help="Higher wins where several policies match."),
        click.option("--reason", help="Why (recorded with the change); required unless --dry-run."),
        click.option(
            "--dry-run", is_flag=True, help="Print what the change would do in the next passes, saving nothing."
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _ask(options: dict[str, Any]) -> dict[str, Any]:
    """The policy fields given on the command line."""
    return {name: options[name] for name in policies.FIELDS if options.get(name) is not None}


def _refused(error: LifecycleError) -> click.ClickException:
    return click.ClickException(str(error))


@policies_cli.command("list")
def list_command() -> None:
    """Print the policies in order of precedence, one a line."""
    rows = policies.list_policies(db.session)
    for policy in rows:
        click.echo(policy_line(policy))
    s = settings()
    click.echo(
        f"{len(rows) or 'no'} {'policy' if len(rows) == 1 else 'policies'}; runs no policy matches are archived after "
        f"{_days(s.archive_after_days)} and deleted after {_days(s.delete_after_days)} (the defaults)",
        err=True,
    )


@policies_cli.command("add")
@policy_options
def add_command(reason: str | None, dry_run: bool, **options: Any) -> None:
    """Add a policy (--name, --scraper-pattern and --archive-after-days at least)."""
    session, now = db.session, utcnow()
    try:
        fields = policies.read_fields(_ask(options), partial=False)
        if dry_run:
            rules = policies.proposed_rules(session, settings(), fields)
            return print_effect(policies.preview(session, settings(), rules, now))
        policy = policies.add_policy(session, fields, actor=_actor(), reason=reason, now=now)
    except LifecycleError as error:
        session.rollback()
        raise _refused(error) from None
    session.commit()
    click.echo(f"added policy {policy.id}: {policy_line(policy)}")


@policies_cli.command("set")
@click.argument("policy_id", metavar="ID")
@policy_options
def set_command(policy_id: str, reason: str | None, dry_run: bool, **options: Any) -> None:
    """Change a policy: only the options given."""
    session, now = db.session, utcnow()
    try:
        fields = policies.read_fields(_ask(options), partial=True)
        if not fields:
            raise click.UsageError("say what to change: give at least one of the policy's options")
        policy = policies.get_policy(session, policy_id)
        if dry_run:
            rules = policies.proposed_rules(session, settings(), fields, policy=policy)
            return print_effect(policies.preview(session, settings(), rules, now))
        policies.set_policy(session, policy, fields, actor=_actor(), reason=reason, now=now)
    except LifecycleError as error:
        session.rollback()
        raise _refused(error) from None
    session.commit()
    click.echo(f"changed policy {policy.id}: {policy_line(policy)}")


@policies_cli.command("remove")
@click.argument("policy_id", metavar="ID")
@click.option("--reason", help="Why (recorded with the change); required unless --dry-run.")
@click.option("--dry-run", is_flag=True, help="Print what the removal would do in the next passes; save nothing.")
def remove_command(policy_id: str, reason: str | None, dry_run: bool) -> None:
    """Remove a policy: its runs follow the next policy that matches them, or the defaults."""
    session, now = db.session, utcnow()
    try:
        policy = policies.get_policy(session, policy_id)
        if dry_run:
            rules = policies.proposed_rules(session, settings(), policy=policy, remove=True)
            return print_effect(policies.preview(session, settings(), rules, now))
        line = policy_line(policy)
        policies.remove_policy(session, policy, actor=_actor(), reason=reason, now=now)
    except LifecycleError as error:
        session.rollback()
        raise _refused(error) from None
    session.commit()
    click.echo(f"removed policy {line}")
