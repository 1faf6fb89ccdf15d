"""Fixtures: an app on a throw-away database (SQLite, or PostgreSQL with TEST_DATABASE_URL), users, clients."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade
from sqlalchemy import create_engine, text

from app import create_app
from app.auth.users import create_user
from app.extensions import db
from app.models import Base, User

SETTINGS_VARIABLES = (
    "SCRAPER_DATA_PATH ARCHIVE_BASE_PATH ARCHIVE_AFTER_DAYS DELETE_AFTER_DAYS ARCHIVE_COMPRESSION "
    "DELETION_STRATEGY DELETE_GRACE_DAYS RESTORE_TTL_DAYS SECURE_DELETE ARCHIVE_SCHEDULE CLEANUP_SCHEDULE "
    "SNAPSHOT_SCHEDULE ALERTS_SCHEDULE ARCHIVE_BATCH_SIZE ARCHIVE_MAX_CONCURRENCY STORAGE_ALERT_PERCENT "
    "ALERT_WEBHOOK_URL DATABASE_URL REDIS_URL SECRET_KEY VERIFY_SCHEDULE VERIFY_MAX_BYTES_PER_RUN"
    " TRUSTED_PROXIES LOGIN_FAILURES_PER_USER LOGIN_FAILURES_PER_ADDRESS LOGIN_FAILURE_WINDOW_SECONDS"
).split()
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/9")


def postgres_admin_url() -> str | None:
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        return None
    return url.replace("postgresql://", "postgresql+psycopg://", 1).replace("postgres://", "postgresql+psycopg://", 1)


def with_search_path(url: str, schema: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"


@contextmanager
def throwaway_database(folder: Path) -> Iterator[str]:
    """A database nobody else uses: a fresh PostgreSQL schema (TEST_DATABASE_URL), or a SQLite file."""
    admin_url = postgres_admin_url()
    if admin_url is None:
        yield f"sqlite:///{folder / 'agar.db'}"
        return
    schema = f"test_{uuid.uuid4().hex[:12]}"
    engine = create_engine(admin_url)
    with engine.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield with_search_path(admin_url, schema)
    finally:
        with engine.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """This test session's own database."""
    with throwaway_database(tmp_path_factory.mktemp("db")) as url:
        yield url


@pytest.fixture(scope="session")
def migrated(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The session database, brought to the latest schema by the real migrations."""
    app = create_app(_base_config(database_url, tmp_path_factory.mktemp("migrate")))
    with app.app_context():
        upgrade()
        db.engine.dispose()
    return database_url


def _base_config(database_url: str, root: Path) -> dict[str, Any]:
    return {
        "TESTING": True,
        "DATABASE_URL": database_url,
        "SCRAPER_DATA_PATH": str(root / "scraper_data"),
        "INSTANCE_PATH": str(root / "instance"),
        "REDIS_URL": TEST_REDIS_URL,
        "SECRET_KEY": "test-secret",
    }


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from the test, never from the shell that started pytest."""
    for name in SETTINGS_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def make_app(migrated: str, tmp_path: Path, clean_env: None) -> Iterator[Any]:
    """Build apps on the session database; every table is emptied after the test."""
    apps: list[Flask] = []

    def factory(**overrides: Any) -> Flask:
        app = create_app({**_base_config(migrated, tmp_path), **overrides})
        apps.append(app)
        return app

    yield factory
    for app in apps:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
    cleaner = create_app(_base_config(migrated, tmp_path))
    with cleaner.app_context():
        with db.engine.begin() as connection:
            for table in reversed(Base.metadata.sorted_tables):
                connection.execute(table.delete())
        db.engine.dispose()


@pytest.fixture
def app(make_app: Any) -> Iterator[Flask]:
    app = make_app()
    with app.app_context():
        yield app
        db.session.remove()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> Any:
    return app.test_cli_runner()


@dataclass
class Account:
    """A user and an API client that sends its token."""

    user: User
    token: str
    client: FlaskClient

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def _call(self, method: str, url: str, headers: dict[str, str] | None = None, **kwargs: Any) -> Any:
        return getattr(self.client, method)(url, headers={**self.headers, **(headers or {})}, **kwargs)

    def get(self, url: str, **kwargs: Any) -> Any:
        return self._call("get", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> Any:
        return self._call("post", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> Any:
        return self._call("patch", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> Any:
        return self._call("delete", url, **kwargs)


@pytest.fixture
def make_account(app: Flask, client: FlaskClient) -> Any:
    def factory(username: str, *, admin: bool = False) -> Account:
        user, _password, token = create_user(db.session, username, "correct horse battery", admin=admin)
        return Account(user, token, client)

    return factory


@pytest.fixture
def admin(make_account: Any) -> Account:
    return make_account("ada", admin=True)


@pytest.fixture
def member(make_account: Any) -> Account:
    return make_account("max")


@pytest.fixture
def other_member(make_account: Any) -> Account:
    return make_account("olga")


# -- lifecycle fixtures ---------------------------------------------------------------------------


@pytest.fixture
def redis_db(app: Flask) -> Any:
    """The test Redis database, emptied first (it is ours alone: TEST_REDIS_URL, db 9 by default)."""
    from app.extensions import redis_connection

    connection = redis_connection(app)
    connection.flushdb()
    return connection


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        from datetime import UTC, datetime

        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> Any:
        return self.now

    def advance(self, **delta: float) -> None:
        from datetime import timedelta

        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def lc(app: Flask, redis_db: Any, clock: Clock) -> Any:
    """The lifecycle core on the test database, Redis and storage, with a hand-moved clock."""
    from app.extensions import lifecycle

    return lifecycle(clock=clock)


def new_run(
    lc: Any,
    clock: Clock,
    files: dict[str, bytes | str] | None = None,
    *,
    days_ago: float = 10,
    status: str = "completed",
    name: str = "books",
    scraper: str = "books-toscrape",
    owner: Any = None,
) -> Any:
    """Register a run with files in its folder, finished ``days_ago`` days before the clock's now."""
    import uuid as uuid_module
    from datetime import timedelta

    from app.lifecycle.runs import register_run

    finished = clock.now - timedelta(days=days_ago)
    created = finished - timedelta(minutes=30)
    job = register_run(
        lc.session,
        lc.settings.jobs_path,
        name=name,
        scraper=scraper,
        created_by=owner,
        job_id=uuid_module.uuid4(),
        status=status,
        created_at=created,
        started_at=created if status != "pending" else None,
        completed_at=finished if status in ("completed", "failed", "cancelled") else None,
    )
    folder = lc.settings.jobs_path / f"{job.folder_name}_{job.id}"
    for relpath, content in (files if files is not None else DEFAULT_FILES).items():
        path = folder / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    return job


@pytest.fixture
def make_run(lc: Any, clock: Clock) -> Any:
    """``new_run`` bound to the test's lifecycle and clock."""
    return lambda files=None, **kwargs: new_run(lc, clock, files, **kwargs)


@pytest.fixture
def lc_with(make_app: Any, redis_db: Any, clock: Clock) -> Iterator[Any]:
    """A lifecycle on an app built with other settings: ``lc_with(ARCHIVE_COMPRESSION="zstd")``."""
    from app.extensions import lifecycle

    contexts = []

    def factory(**overrides: Any) -> Any:
        context = make_app(**overrides).app_context()
        context.push()
        contexts.append(context)
        return lifecycle(clock=clock)

    yield factory
    for context in reversed(contexts):
        context.pop()


@pytest.fixture
def process_env(lc: Any, migrated: str) -> dict[str, str]:
    """The environment for a worker, scheduler or fault-runner process on the test's database and storage."""
    env = {
        **os.environ,
        "DATABASE_URL": migrated,
        "SCRAPER_DATA_PATH": str(lc.settings.scraper_data_path),
        "REDIS_URL": TEST_REDIS_URL,
        "SECRET_KEY": "test",
    }
    env.pop("TEST_DATABASE_URL", None)
    return env


DEFAULT_FILES: dict[str, bytes | str] = {
    "results.json": '{"items": [' + ",".join(f'{{"id": {i}, "title": "Book {i}"}}' for i in range(200)) + "]}",
    "screens/home.png": bytes(range(256)) * 40,
    "logs/run.log": "INFO fetched page\n" * 300,
    "report.pdf": b"%PDF-1.4\n" + bytes(range(256)) * 8,
}


def tree(root: Path) -> dict[str, Any]:
    """A folder's content as ``{relpath: bytes | ('link', target) | 'dir'}``, links not followed."""
    found: dict[str, Any] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            found[rel] = ("link", os.readlink(path))
        elif path.is_dir():
            found[rel] = "dir"
        else:
            found[rel] = path.read_bytes()
    return found


def run_burst_worker(env: dict[str, str], count: int = 1, timeout: float = 240) -> list[str]:
    """Run ``count`` real RQ workers (``python worker.py --burst``) until the queue is empty."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    workers = [
        subprocess.Popen(
            [sys.executable, "worker.py", "--burst"],
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(count)
    ]
    outputs = []
    for worker in workers:
        out, _ = worker.communicate(timeout=timeout)
        assert worker.returncode == 0, out[-3000:]
        outputs.append(out)
    return outputs
