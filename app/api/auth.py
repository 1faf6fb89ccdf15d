"""Every API call names its user with ``Authorization: Bearer <token>``."""

from __future__ import annotations

from flask import g, request

from app.api import bp
from app.api.errors import ApiError
from app.auth.users import Caller, caller_for_token
from app.extensions import db
from app.models import Job


@bp.before_request
def authenticate() -> None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "send an API token: Authorization: Bearer <token>", headers={"WWW-Authenticate": "Bearer"})
    user = caller_for_token(db.session, token.strip())
    if user is None:
        raise ApiError(401, "the API token is not valid", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    g.user = user


def current_user() -> Caller:
    return g.user


def may_see(user: Caller, job: Job) -> bool:
    """Members see their own runs; admins see all."""
    return user.is_admin or job.created_by == user.id
