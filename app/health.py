"""``/healthz``: is the database, Redis and the run storage usable? 503 when one is not."""

from __future__ import annotations

import os
import shutil
from typing import Any

from flask import Blueprint
from sqlalchemy import text

from app.extensions import db, redis_connection, settings

bp = Blueprint("health", __name__)


def _check_database() -> dict[str, Any]:
    db.session.execute(text("SELECT 1"))
    return {"ok": True}


def _check_redis() -> dict[str, Any]:
    redis_connection().ping()
    return {"ok": True}


def _check_disk() -> dict[str, Any]:
    root = settings().scraper_data_path
    if not root.is_dir():
        return {"ok": False, "error": f"{root} does not exist"}
    if not os.access(root, os.W_OK | os.X_OK):
        return {"ok": False, "error": f"{root} is not writable"}
    usage = shutil.disk_usage(root)
    return {"ok": True, "total_bytes": usage.total, "free_bytes": usage.free}


@bp.get("/healthz")
def healthz() -> Any:
    checks: dict[str, Any] = {}
    for name, check in (("database", _check_database), ("redis", _check_redis), ("disk", _check_disk)):
        try:
            checks[name] = check()
        except Exception as error:  # a health check reports every failure instead of raising
            checks[name] = {"ok": False, "error": f"{type(error).__name__}: {error}"[:300]}
    if not checks["database"]["ok"]:
        db.session.rollback()
    healthy = all(check["ok"] for check in checks.values())
    return {"status": "ok" if healthy else "unavailable", "checks": checks}, 200 if healthy else 503
