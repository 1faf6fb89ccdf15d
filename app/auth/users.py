"""Creating users and checking their credentials (no Flask here)."""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import re
import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from app.models import User
from app.names import NameRefused, check_email_address, check_visible_name
from app.ttl_cache import TTLCache

# Actor names the product writes itself; no user may take them.
RESERVED_USERNAMES = frozenset({"scheduler", "system", "reconcile"})
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

log = logging.getLogger("agar.auth")


class UserError(ValueError):
    """A user cannot be created or changed as asked."""


@dataclass(frozen=True)
class Caller:
    """Who is making a request: what the API needs of a user, detached from any database session."""

    id: uuid.UUID
    username: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @classmethod
    def of(cls, user: User) -> Caller:
        return cls(user.id, user.username, user.role)


# Which user holds which token, remembered 5 s per process: every API call presents a token and
# looking it up was a database round trip per request. A token rotated in this process stops
# working at once (rotate_token forgets it); in the other web processes within 5 s. Only valid
# tokens are kept, so unknown tokens always reach the database.
TOKENS: TTLCache[Caller] = TTLCache(ttl=5.0, size=1024)


def hash_token(token: str) -> str:
    """Return the stored form of an API token (tokens are random, so SHA-256 suffices)."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """Return a fresh API token."""
    return "agar_" + secrets.token_urlsafe(32)


def create_user(
    session: Session, username: str, password: str | None, *, admin: bool, email: str | None = None
) -> tuple[User, str, str]:
    """Create a user (``email``: where their deletion notices go); return it with its password (generated
    when none is given) and API token."""
    try:
        check_visible_name(username, "username")
    except NameRefused as error:
        raise UserError(str(error)) from None
    if not _USERNAME.fullmatch(username):  # match() let "admin\n" through: "$" matches before a final newline
        raise UserError("username must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    if username.lower() in RESERVED_USERNAMES:
        raise UserError(f"username {username!r} is reserved for the product's own actions")
    if session.scalar(select(User).where(func.lower(User.username) == username.lower())):
        raise UserError(f"user {username!r} already exists")
    email = checked_email(email)
    if password is None:
        password = secrets.token_urlsafe(12)
    else:
        check_new_password(password)
    token = new_token()
    user = User(
        username=username,
        password_hash=generate_password_hash(password),
        role="admin" if admin else "member",
        api_token_hash=hash_token(token),
        email=email,
    )
    session.add(user)
    session.commit()
    return user, password, token


def checked_email(email: str | None) -> str | None:
    """The address deletion notices go to, checked (``app.names.check_email_address``); None or "" for none."""
    if email is None or not email.strip():
        return None
    try:
        check_email_address(email.strip(), "email")
    except NameRefused as error:
        raise UserError(str(error)) from None
    return email.strip()


def set_email(session: Session, user: User, email: str | None) -> None:
    """Give a user the address their deletion notices go to (None: no mail)."""
    user.email = checked_email(email)
    session.commit()


def check_new_password(password: str) -> None:
    """Refuse a password too short to choose."""
    if len(password) < 8:
        raise UserError("password must be at least 8 characters")
    if len(password) > 1024:  # hashing is the cost: a megabyte of password is a denial of service
        raise UserError("password must be at most 1024 characters")


def set_password(session: Session, user: User, password: str) -> None:
    """Give a user a new password and end every session opened with the old one."""
    check_new_password(password)
    user.password_hash = generate_password_hash(password)
    user.session_epoch = User.session_epoch + 1  # in SQL: two logouts at once both count
    session.commit()
    log.info("password changed for %s; every session of theirs ended", user.username)


def end_sessions(session: Session, user: User) -> None:
    """End every dashboard session of the user (a logout): their cookies no longer log anyone in."""
    user.session_epoch = User.session_epoch + 1
    session.commit()
    log.info("%s logged out: every session of theirs ended", user.username)


def rotate_token(session: Session, user: User) -> str:
    """Give a user a new API token, invalidating the old one; return the new token."""
    token, old = new_token(), user.api_token_hash
    user.api_token_hash = hash_token(token)
    session.commit()
    if old:
        TOKENS.forget(old)  # after the commit: a request in between cannot cache it again
    return token


def user_for_token(session: Session, token: str) -> User | None:
    """Return the user holding this API token, if any."""
    if not token:
        return None
    digest = hash_token(token)
    user = session.scalar(select(User).where(User.api_token_hash == digest))
    if user is None or not hmac.compare_digest(user.api_token_hash or "", digest):
        return None
    return user


def caller_for_token(session: Session, token: str) -> Caller | None:
    """Return who holds this API token, from the token cache when it was seen a moment ago."""
    if not token:
        return None
    digest = hash_token(token)
    caller = TOKENS.get(digest)
    if caller is None:
        user = user_for_token(session, token)
        if user is None:
            return None
        caller = Caller.of(user)
        TOKENS.put(digest, caller)
    return caller


def bearer_caller(session: Session, authorization: str | None) -> Caller | None:
    """Who an ``Authorization: Bearer <token>`` header names, or None (no header, another scheme, unknown)."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return caller_for_token(session, token.strip())


@functools.cache
def _unknown_user_hash() -> str:
    # A hash of a random password at the cost new passwords get, made on the first failed login.
    return generate_password_hash(secrets.token_urlsafe(16))


def user_for_password(session: Session, username: str, password: str) -> User | None:
    """Return the user if the password matches; an unknown username costs the same hash check.

    Answering at once for unknown names told who has an account: 3.5 ms against 78 ms.
    """
    user = session.scalar(select(User).where(func.lower(User.username) == username.lower()))
    if user is None:
        check_password_hash(_unknown_user_hash(), password)
        return None
    if not check_password_hash(user.password_hash, password):
        return None
    return user
