"""The JSON API under ``/api/scraper`` (SPEC §7), for scripts and integrations."""

from flask import Blueprint

bp = Blueprint("api", __name__)

from app.api import actions, archives, auth, jobs, monitoring  # noqa: E402,F401  (routes register on bp)
