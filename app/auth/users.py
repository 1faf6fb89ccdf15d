"""Creating users and checking their credentials (no Flask here)."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from app.models import User

# Actor names the product writes itself; no user may take them.
RESERVED_USERNAMES = frozenset({"scheduler", "system", "reconcile"})
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


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


class TokenCache:
    """Which user holds which token, remembered for ``ttl`` seconds in this process.

    Every API call presents a token; looking it up was a database round trip per request.
    A token rotated in this process stops working at once (``forget``);
    in the other web processes within ``ttl`` seconds. Only tokens that were valid are kept,
    at most ``size`` of them, so unknown tokens always reach the database.
    """

    def __init__(self, ttl: float = 5.0, size: int = 1024, clock=time.monotonic):  # type: ignore[no-untyped-def]
        self.ttl, self.size, self.clock = ttl, size, clock
        self._entries: OrderedDict[str, tuple[float, Caller]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, digest: str) -> Caller | None:
        with self._lock:
            entry = self._entries.get(digest)
            if entry is None:
                return None
            if self.clock() >= entry[0]:
                del self._entries[digest]
                return None
            return entry[1]

    def put(self, digest: str, caller: Caller) -> None:
        with self._lock:
            self._entries[digest] = (self.clock() + self.ttl, caller)
            self._entries.move_to_end(digest)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def forget(self, digest: str | None = None) -> None:
        """Drop one token (or all of them)."""
        with self._lock:
            if digest is None:
                self._entries.clear()
            else:
                self._entries.pop(digest, None)


TOKENS = TokenCache()


def hash_token(token: str) -> str:
    """Return the stored form of an API token (tokens are random, so SHA-256 suffices)."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """Return a fresh API token."""
    return "agar_" + secrets.token_urlsafe(32)


def create_user(session: Session, username: str, password: str | None, *, admin: bool) -> tuple[User, str, str]:
    """Create a user; return it with its password (generated when none is given) and API token."""
    if not _USERNAME.match(username):
        raise UserError("username must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    if username.lower() in RESERVED_USERNAMES:
        raise UserError(f"username {username!r} is reserved for the product's own actions")
    if session.scalar(select(User).where(func.lower(User.username) == username.lower())):
        raise UserError(f"user {username!r} already exists")
    if password is None:
        password = secrets.token_urlsafe(12)
    elif len(password) < 8:
        raise UserError("password must be at least 8 characters")
    token = new_token()
    user = User(
        username=username,
        password_hash=generate_password_hash(password),
        role="admin" if admin else "member",
        api_token_hash=hash_token(token),
    )
    session.add(user)
    session.commit()
    return user, password, token


def rotate_token(session: Session, user: User) -> str:
    """Give a user a new API token, invalidating the old one; return the new token."""
    token = new_token()
    if user.api_token_hash:
        TOKENS.forget(user.api_token_hash)
    user.api_token_hash = hash_token(token)
    session.commit()
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


def user_for_password(session: Session, username: str, password: str) -> User | None:
    """Return the user if the password matches."""
    user = session.scalar(select(User).where(func.lower(User.username) == username.lower()))
    if user is None or not check_password_hash(user.password_hash, password):
        return None
    return user
