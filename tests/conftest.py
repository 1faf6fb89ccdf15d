"""Fixtures: an app on a throw-away database (SQLite, or PostgreSQL with TEST_DATABASE_URL), users, clients.

Plain helpers that tests import (new_run, tree, run_burst_worker, ...) live in tests/support.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade

from app import create_app
from app.auth.users import create_user
from app.extensions import db
from app.models import Base
from tests.support import (
    CHROMIUM,
    PASSWORD,
    ROOT,
    TEST_REDIS_URL,
    Account,
    Clock,
    free_port,
    new_run,
    throwaway_database,
)

SETTINGS_VARIABLES = (
    "SCRAPER_DATA_PATH ARCHIVE_BASE_PATH ARCHIVE_AFTER_DAYS DELETE_AFTER_DAYS ARCHIVE_COMPRESSION "
    "DELETION_STRATEGY DELETE_GRACE_DAYS RESTORE_TTL_DAYS SECURE_DELETE ARCHIVE_SCHEDULE CLEANUP_SCHEDULE "
    "SNAPSHOT_SCHEDULE ALERTS_SCHEDULE ARCHIVE_BATCH_SIZE ARCHIVE_MAX_CONCURRENCY STORAGE_ALERT_PERCENT "
    "ALERT_WEBHOOK_URL DATABASE_URL REDIS_URL SECRET_KEY VERIFY_SCHEDULE VERIFY_MAX_BYTES_PER_RUN"
    " TRUSTED_PROXIES LOGIN_FAILURES_PER_USER LOGIN_FAILURES_PER_ADDRESS LOGIN_FAILURE_WINDOW_SECONDS"
    " DELETE_MAX_PER_PASS DELETE_MAX_SHARE"
    " DELETE_NOTICE_DAYS NOTICE_SCHEDULE SMTP_URL MAIL_FROM PUBLIC_URL"
).split()


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


@pytest.fixture
def make_account(app: Flask, client: FlaskClient) -> Any:
    def factory(username: str, *, admin: bool = False) -> Account:
        user, _password, token = create_user(db.session, username, PASSWORD, admin=admin)
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


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def lc(app: Flask, redis_db: Any, clock: Clock) -> Any:
    """The lifecycle core on the test database, Redis and storage, with a hand-moved clock."""
    from app.extensions import lifecycle

    return lifecycle(clock=clock)


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


# -- the dashboard, in a test client and in a real browser ------------------------------------------


@pytest.fixture
def browse(app: Flask) -> Any:
    """``browse(account)``: a logged-in dashboard session of the account (``tests.test_web.Browser``)."""
    from tests.test_web import Browser

    def open_as(account: Any = None) -> Any:
        browser = Browser(app.test_client())
        if account is not None:
            assert browser.login(account.user.username).status_code == 302
        return browser

    return open_as


@pytest.fixture
def live_server(process_env: dict[str, str], lc: Any) -> Iterator[str]:
    """gunicorn serving the test's database and storage, and an RQ worker beside it."""
    port = free_port()
    web = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--workers", "1", "--bind", f"127.0.0.1:{port}", "wsgi:app"],
        cwd=ROOT,
        env=process_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    worker = subprocess.Popen([sys.executable, "worker.py"], cwd=ROOT, env=process_env, stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(base + "/login", timeout=1)
                break
            except OSError:
                if web.poll() is not None:
                    raise RuntimeError(f"gunicorn stopped: {web.stderr.read()[-2000:]}") from None
                time.sleep(0.1)
        yield base
    finally:
        for process in (worker, web):
            process.terminate()
            process.wait(timeout=20)


@pytest.fixture
def page() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        tab = browser.new_page(viewport={"width": 1280, "height": 900})
        tab.set_default_timeout(30_000)
        yield tab
        browser.close()
