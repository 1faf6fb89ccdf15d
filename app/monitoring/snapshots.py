"""The hourly storage snapshot: runs and bytes per tier (restored copies too) and the disk, kept for the trend."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import StorageSnapshot
from app.monitoring.figures import storage_stats


def take_snapshot(session: Session, data_path: Path, now: datetime) -> tuple[StorageSnapshot, bool]:
    """Record runs and bytes per tier and the disk's size, once per hour: ``(snapshot, taken now)``.

    A second call in the same hour (a retry, a second scheduler) returns that hour's snapshot.
    """
    hour = now.replace(minute=0, second=0, microsecond=0)
    existing = session.scalars(
        select(StorageSnapshot).where(StorageSnapshot.taken_at >= hour).order_by(StorageSnapshot.taken_at).limit(1)
    ).first()
    if existing is not None:
        return existing, False
    stats = storage_stats(session, data_path)
    tiers = stats["tiers"]
    snapshot = StorageSnapshot(
        taken_at=now,
        active_bytes=tiers["active"]["bytes"],
        active_count=tiers["active"]["runs"],
        archived_bytes=tiers["archived"]["bytes"],
        archived_count=tiers["archived"]["runs"],
        trash_bytes=tiers["trash"]["bytes"],
        deleted_count=tiers["trash"]["runs"] + tiers["purged"]["runs"],
        restored_bytes=tiers["restored"]["bytes"],
        restored_count=tiers["restored"]["runs"],
        disk_total_bytes=stats["disk"]["total_bytes"],
        disk_free_bytes=stats["disk"]["free_bytes"],
    )
    session.add(snapshot)
    session.commit()
    return snapshot, True
