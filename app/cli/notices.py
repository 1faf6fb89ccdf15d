"""``flask notices …``: the daily deletion notices, sent once in-process."""

from __future__ import annotations

import click

from app.notices import send_notices_now


@click.group("notices")
def notices_cli() -> None:
    """Notices to the owners of runs about to be deleted."""


@notices_cli.command("send")
def send_command() -> None:
    """Send today's deletion notices now (what the scheduler does at NOTICE_SCHEDULE); exit 1 if one failed."""
    report = send_notices_now()
    for sent in report.sent:
        click.echo(f"sent {sent['channel']} to {sent['recipient']} ({sent['owner']}): {sent['runs']} run(s)")
    click.echo(
        f"{len(report.sent)} digest(s) sent; {report.already_told} run(s) already told today"
        + (f"; {report.unowned} run(s) without an owner" if report.unowned else "")
    )
    if report.unreachable:
        click.echo(f"not told (no email address, no webhook): {', '.join(report.unreachable)}")
    for failure in report.failed:
        click.echo(f"  failed: {failure}", err=True)
    if report.failed:
        raise click.exceptions.Exit(1)
