"""The JSON API under ``/api/scraper`` (SPEC §7), for scripts and integrations."""

from flask import Blueprint, request

from app.db_session import read_in_autocommit
from app.extensions import db

bp = Blueprint("api", __name__)


@bp.before_request
def read_without_transaction() -> None:
    """API reads run in autocommit: fewer round trips (see app.db_session)."""
    if request.method in ("GET", "HEAD"):
        read_in_autocommit(db.session())  # the request's own Session behind the scoped proxy


@bp.teardown_request
def end_read(error: BaseException | None) -> None:
    """Hand the connection back after a read (a no-op COMMIT in autocommit: no round trip)."""
    session = db.session()  # the request's own Session behind the scoped proxy
    if error is None and request.method in ("GET", "HEAD") and session.in_transaction():
        if not (session.new or session.dirty or session.deleted):
            session.commit()


from app.api import actions, archives, auth, jobs, monitoring, policies  # noqa: E402,F401  (routes register on bp)
