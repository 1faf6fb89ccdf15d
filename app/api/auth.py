"""Every API call names its user: ``Authorization: Bearer <token>``, or the dashboard's session.

A session is a cookie the browser sends by itself, so a call that changes something must also
carry the page's CSRF token in ``X-CSRFToken`` (what the dashboard's HTMX sends); token calls
need none: nothing is sent by itself.
"""

from __future__ import annotations

from flask import g, request, session
from flask_wtf.csrf import validate_csrf
from wtforms.validators import ValidationError

from app.api import bp, read_without_transaction
from app.api.errors import ApiError
from app.auth.sessions import caller_of_session
from app.auth.throttle import token_limits
from app.auth.users import Caller, bearer_caller
from app.extensions import db

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def credentials() -> Caller | None:
    """Who the request's token or session names (looked up once per request), or None."""
    # Kept with the request itself: ``g`` can outlive a request (an app context pushed around it).
    if "agar.credentials" not in request.environ:
        read_without_transaction()  # the throttle asks before the blueprint's own hooks have run
        header = request.headers.get("Authorization", "")
        if not header and session.get("user_id"):
            request.environ["agar.credentials"] = caller_of_session(session, db.session)
        else:
            request.environ["agar.credentials"] = bearer_caller(db.session, header)
    return request.environ["agar.credentials"]


# Guessing tokens: an address whose calls failed authentication too often gets 429 (Retry-After);
# a call with a valid token or session is never refused by it.
token_limits(bp, lambda: credentials() is not None)


@bp.before_request
def authenticate() -> None:
    header = request.headers.get("Authorization", "")
    if not header and session.get("user_id"):
        caller = credentials()
        if caller is not None:
            if request.method not in SAFE_METHODS:
                try:
                    validate_csrf(request.headers.get("X-CSRFToken"))
                except ValidationError:
                    raise ApiError(
                        403, "a call made with a session needs the page's X-CSRFToken header", "csrf"
                    ) from None
            g.user = caller
            return
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "send an API token: Authorization: Bearer <token>", headers={"WWW-Authenticate": "Bearer"})
    user = credentials()
    if user is None:
        raise ApiError(401, "the API token is not valid", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    g.user = user


def current_user() -> Caller:
    return g.user
