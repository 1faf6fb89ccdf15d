"""``flask storage …`` and ``flask alerts …``: the scheduled monitoring tasks, run once in-process."""

from __future__ import annotations

import click

from app.extensions import db, settings
from app.models import utcnow
from app.monitoring.alert_check import check_alerts, webhook_notifier
from app.monitoring.snapshots import take_snapshot


@click.group("storage")
def storage_cli() -> None:
    """Storage figures."""


@storage_cli.command("snapshot")
def snapshot_command() -> None:
    """Take this hour's storage snapshot now (what the scheduler does hourly)."""
    snapshot, taken = take_snapshot(db.session, settings().scraper_data_path, utcnow())
    click.echo(
        f"{'took' if taken else 'this hour already has'} snapshot {snapshot.id} "
        f"at {snapshot.taken_at:%Y-%m-%d %H:%M} UTC: "
        f"active {snapshot.active_count} runs / {snapshot.active_bytes} bytes, "
        f"archived {snapshot.archived_count} / {snapshot.archived_bytes}, trash {snapshot.trash_bytes} bytes, "
        f"restored {snapshot.restored_count} / {snapshot.restored_bytes}, "
        f"disk {snapshot.disk_free_bytes} of {snapshot.disk_total_bytes} bytes free"
    )


@click.group("alerts")
def alerts_cli() -> None:
    """Alerts."""


@alerts_cli.command("check")
def alerts_check_command() -> None:
    """Check for problems now (what the scheduler does every 15 minutes): open, update, resolve alerts."""
    s = settings()
    report = check_alerts(
        db.session, s.scraper_data_path, s.storage_alert_percent, utcnow(), webhook_notifier(s.alert_webhook_url)
    )
    for key in ("opened", "still_open", "resolved"):
        click.echo(f"{key.replace('_', ' ')}: {', '.join(report[key]) or 'none'}")
    for failure in report["notify_failed"]:
        click.echo(f"  webhook failed: {failure}", err=True)
    if report["notify_failed"]:
        raise click.exceptions.Exit(1)
