"""Agar Run Manager: the application factory."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
from flask import Flask
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from app.auth import init_auth
from app.config import ConfigError, Settings, load_settings, masked_url
from app.db_session import ping_when_idle, utc_sessions
from app.extensions import csrf, db, migrate
from app.json_provider import use_orjson
from app.request_limits import refuse_oversized_chunked_body

__all__ = ["ConfigError", "create_app"]


def create_app(config: Mapping[str, Any] | None = None, *, check_database: bool = False) -> Flask:
    """Build the app from the environment, with ``config`` overriding it (tests pass theirs).

    The processes (``wsgi``, so gunicorn and the flask CLI, and ``worker.py``) pass
    ``check_database=True``: a database they cannot reach stops them at once, with one line.
    """
    overrides = dict(config or {})
    settings = load_settings({**os.environ, **overrides})

    app = Flask(__name__, instance_path=overrides.pop("INSTANCE_PATH", None))
    private_instance(Path(app.instance_path), sqlite=settings.database_url is None)
    private_sqlite_file(settings.database_url)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=database_uri(settings, app.instance_path),
        SQLALCHEMY_ENGINE_OPTIONS=dict(ENGINE_OPTIONS),  # Flask-SQLAlchemy adds to it
        SECRET_KEY=os.environ.get("SECRET_KEY") or _instance_secret_key(app.instance_path),
        MAX_CONTENT_LENGTH=1024 * 1024,
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session: long-open dashboards keep working
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
    )
    app.config.update(overrides)
    # A path with "//" is refused as it stands, not redirected: `files//etc/passwd` is an absolute path.
    app.url_map.merge_slashes = False
    use_orjson(app)  # keys in column order, datetimes and UUIDs written by orjson itself
    app.extensions["agar.settings"] = settings
    prepare_storage(settings)

    register_extensions(app)
    app.before_request(refuse_oversized_chunked_body)  # first of all hooks: before auth reads a body
    init_auth(app)  # proxies, Secure cookie, login throttling (its hook reads the form: after the size check)
    if check_database:
        connect_database(app, settings)
    register_blueprints(app)
    register_commands(app)
    return app


ENGINE_OPTIONS: dict[str, Any] = {
    "pool_pre_ping": False,  # app.db_session.ping_when_idle pings only connections that sat idle
    "json_deserializer": orjson.loads,  # run stats come back parsed by orjson
}


def database_uri(settings: Settings, instance_path: str) -> str:
    """Return the SQLAlchemy URL: ``DATABASE_URL`` (PostgreSQL via psycopg 3) or the SQLite file."""
    url = settings.database_url
    if url is None:
        return f"sqlite:///{Path(instance_path) / 'agar.db'}"
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def private_instance(folder: Path, *, sqlite: bool) -> None:
    """Make the instance folder (secret key, first-admin note, SQLite file) the owner's alone: 0700, files 0600.

    The SQLite file is made here, empty and 0600, before SQLite creates it with the umask's mode
    (0644: anyone on the host could read every run and password hash); SQLite gives its journal
    and WAL files the database file's mode. Folders and files left readable by older versions are
    tightened when they are ours.
    """
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if sqlite:
        os.close(os.open(folder / "agar.db", os.O_WRONLY | os.O_CREAT, 0o600))
    for path in (folder, *(folder / name for name in ("agar.db", "secret_key", "first-admin.txt"))):
        if path.exists() and path.stat().st_uid == os.geteuid() and path.stat().st_mode & 0o077:
            path.chmod(0o700 if path.is_dir() else 0o600)


def private_sqlite_file(url: str | None) -> None:
    """A SQLite file named by DATABASE_URL is the owner's alone too (0600), made so if it is new."""
    if url is None or not url.startswith("sqlite"):
        return
    database = make_url(url).database
    if not database or database == ":memory:":
        return
    path = Path(database)
    if not path.parent.is_dir():
        return  # the start-up check says so, naming DATABASE_URL
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    if path.stat().st_uid == os.geteuid() and path.stat().st_mode & 0o077:
        path.chmod(0o600)


def prepare_storage(settings: Settings) -> None:
    """Create the storage roots, or stop with a message naming the setting that points there."""
    roots = (
        ("SCRAPER_DATA_PATH", settings.jobs_path),
        ("SCRAPER_DATA_PATH", settings.trash_path),
        ("ARCHIVE_BASE_PATH", settings.archive_base_path),
    )
    for variable, root in roots:
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ConfigError(f"{variable}: cannot create {root}: {error.strerror}") from None


def connect_database(app: Flask, settings: Settings) -> None:
    """Connect once, or stop with a ConfigError naming ``DATABASE_URL`` and why it cannot be reached."""
    try:
        with app.app_context(), db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as error:
        url = settings.database_url or app.config["SQLALCHEMY_DATABASE_URI"]
        # The driver's first line ends with the cause ("Connection refused", "unable to open database file").
        first_line = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        cause = first_line.rsplit(": ", 1)[-1].strip()
        raise ConfigError(f"DATABASE_URL: cannot connect to {masked_url(url)}: {cause}") from None


def _instance_secret_key(instance_path: str) -> str:
    # Without SECRET_KEY a random key is kept in the instance folder, so sessions survive a
    # restart and every web worker process signs with the same key.
    path = Path(instance_path) / "secret_key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
    return path.read_text().strip()


def register_extensions(app: Flask) -> None:
    db.init_app(app)
    csrf.init_app(app)
    migrate.init_app(app, db, directory=str(Path(__file__).parent.parent / "migrations"))

    with app.app_context():
        utc_sessions(db.engine)
        ping_when_idle(db.engine)


def register_blueprints(app: Flask) -> None:
    from app.api import bp as api_bp
    from app.api.errors import register_error_handlers
    from app.api.openapi import bp as openapi_bp
    from app.monitoring.health import bp as health_bp
    from app.monitoring.metrics import bp as metrics_bp
    from app.web import bp as web_bp

    csrf.exempt(api_bp)  # token-authenticated: no cookie, so nothing to forge
    app.register_blueprint(api_bp, url_prefix="/api/scraper")
    app.register_blueprint(openapi_bp)
    app.register_blueprint(health_bp)
    app.register_blueprint(metrics_bp)
    register_error_handlers(app)
    app.register_blueprint(web_bp)


def register_commands(app: Flask) -> None:
    from app.cli import register_commands as register_cli

    register_cli(app)
