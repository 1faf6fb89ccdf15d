"""The dashboard: server-rendered pages, with HTMX for acting on a run in place.

Pages read without JavaScript. Actions are forms: HTMX posts them in place (the CSRF token rides in
a header set on ``<body>``) and a browser without JavaScript posts them and follows the redirect
back. Every action passes the same checks (``app.lifecycle.access``) and runs as the same RQ task
(``app.tasks``) as its JSON API twin: the dashboard is one more thin door into the core.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, redirect, render_template, request, session, url_for
from redis.exceptions import RedisError
from sqlalchemy import func, select

from app.api.errors import REFUSAL_STATUS, busy_message
from app.auth.sessions import caller_of_session
from app.auth.users import Caller
from app.extensions import db
from app.lifecycle.access import NotAllowed
from app.lifecycle.errors import BadInput, RuleViolation, RunConflict, RunNotFound
from app.lifecycle.locks import RunBusy
from app.lifecycle.members import ArchiveMissing
from app.lifecycle.naming import BadJobId
from app.models import Alert
from app.names import field_with_nul

bp = Blueprint("web", __name__)
PUBLIC = {"web.login", "static", "web.keep_run", "web.keep_run_now"}  # keep links: the signed token is the authority


class Refused(Exception):
    """Stop handling a page's request and answer with this status and message (as a page)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@bp.before_request
def refuse_unstorable_input() -> Any:
    """Refuse a NUL byte in the path, the query or a form: PostgreSQL text cannot hold one (psycopg raises)."""
    if "\x00" in request.path:
        raise Refused(400, "the address must not contain a NUL byte")
    for where, fields in (("query parameter", request.args), ("form field", request.form)):
        if (name := field_with_nul(fields.items(multi=True))) is not None:
            raise Refused(400, f"the {where} {name!r} must not contain a NUL byte")
    return None


@bp.before_request
def load_user() -> Any:
    """Name the logged-in user (``g.web_user``); send everyone else to the login page."""
    g.web_user = caller_of_session(session, db.session)
    if g.web_user is None and request.endpoint not in PUBLIC:
        if request.headers.get("HX-Request"):
            return "", 401, {"HX-Redirect": url_for("web.login")}
        return redirect(url_for("web.login", next=request.full_path.rstrip("?")))
    return None


# Scripts come only from our own files (no inline script, no eval), so markup that slipped into a
# page cannot act. Inline styles stay allowed: plotly.js writes style attributes and <style> rules
# as it draws, and a style cannot run script.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": PAGE_CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


@bp.after_app_request
def security_headers(response: Response) -> Response:
    """Send the security headers on every answer of the app; a view that set its own CSP keeps it."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


@bp.context_processor
def open_alerts() -> dict[str, Any]:
    """How many alerts are open: every admin's page shows it next to Storage, where they are listed."""
    user = g.get("web_user")
    if user is None or not user.is_admin:  # alerts are for admins; no query for the others
        return {"open_alerts": 0}
    return {"open_alerts": db.session.scalar(select(func.count()).where(Alert.resolved_at.is_(None))) or 0}


def web_user() -> Caller:
    return g.web_user


def error_page(status: int, message: str) -> Any:
    """An error as a page, or as a line in place when HTMX asked (it swaps 4xx answers too)."""
    if request.headers.get("HX-Request"):
        return render_template("_error.html", message=message), status
    return render_template("error.html", status=status, message=message), status


@bp.errorhandler(BadJobId)
def _bad_id(error: BadJobId) -> Any:
    return error_page(400, str(error))


@bp.errorhandler(RunNotFound)
def _not_found(error: RunNotFound) -> Any:
    return error_page(404, "There is no such run, or it is not yours to see.")


@bp.errorhandler(Refused)
def _refused(error: Refused) -> Any:
    return error_page(error.status, error.message)


@bp.errorhandler(NotAllowed)
def _not_allowed(error: NotAllowed) -> Any:
    return error_page(REFUSAL_STATUS[error.kind], error.message)


@bp.errorhandler(ArchiveMissing)
def _archive_missing(error: ArchiveMissing) -> Any:
    return error_page(409, str(error))


@bp.errorhandler(BadInput)
def _bad_input(error: BadInput) -> Any:
    return error_page(400, str(error))


@bp.errorhandler(RunConflict)
def _conflict(error: RunConflict) -> Any:
    return error_page(409, str(error))


@bp.errorhandler(RuleViolation)
def _rule(error: RuleViolation) -> Any:
    return error_page(422, str(error))


@bp.errorhandler(RunBusy)
def _busy(error: RunBusy) -> Any:
    return error_page(409, busy_message(error))


@bp.errorhandler(RedisError)
def _redis_down(error: RedisError) -> Any:
    return error_page(503, "The task queue and run locks (Redis) do not answer. Try again shortly.")


from app.web import actions, bulk, keep, login, policies, preview, reports, rows, runs, scrapers  # noqa: E402,F401  (routes register on bp)
