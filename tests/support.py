"""What tests build with besides fixtures: throw-away databases, API accounts, a hand-moved clock,
runs with files in their folders, a folder's tree, real burst workers.

The fixtures of tests/conftest.py use these; tests import them from here.
"""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import create_engine, text

from app.models import User

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


@contextmanager
def webhook_listener() -> Iterator[Any]:
    """A real HTTP listener on loopback keeping the JSON bodies POSTed to it (``.received``, ``.url``)."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    received: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server: Any = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    server.received = received
    server.url = f"http://127.0.0.1:{server.server_port}/hook"
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def saved_policies(lc: Any) -> list[Any]:
    """The retention policies as saved now, oldest first."""
    from sqlalchemy import select

    from app.models import RetentionPolicy

    lc.session.expire_all()
    return list(lc.session.scalars(select(RetentionPolicy).order_by(RetentionPolicy.id)))


def policy_changes(lc: Any) -> list[Any]:
    """Every recorded change to the retention policies, oldest first."""
    from sqlalchemy import select

    from app.models import PolicyChange

    return list(lc.session.scalars(select(PolicyChange).order_by(PolicyChange.id)))


def sized_run(lc: Any, make_run: Any, size: int, **kwargs: Any) -> Any:
    """A run made by ``make_run`` whose recorded size is ``size`` bytes."""
    from app.lifecycle.runs import load_run

    job = make_run(**kwargs)
    load_run(lc, job.id).size_bytes = size
    lc.session.commit()
    return job


# -- browser tests --------------------------------------------------------------------------------

PASSWORD = "correct horse battery"  # noqa: S105 (every test account's: conftest's make_account)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def shot(page, name: str) -> None:
    folder = os.environ.get("AGAR_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def watch(page: Any) -> tuple[list[str], list[str]]:
    """A browser page's console errors, page errors and CSP refusals, and its dialogs (dismissed), as they come."""
    complaints: list[str] = []
    dialogs: list[str] = []

    def complain(message: Any) -> None:
        if message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico"):
            complaints.append(f"{message.text} ({message.location.get('url')})")

    page.on("console", complain)
    page.on("pageerror", lambda error: complaints.append(str(error)))
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    return complaints, dialogs


def log_in(page: Any, url: str, username: str = "ada") -> None:
    """Open ``url`` in the browser and log in on the page it leads to (the login form), with the tests' password."""
    page.goto(url)
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


def add_policy(lc: Any, reason: str = "test", **fields: Any) -> Any:
    """A retention policy saved as an admin would save it (``policies.add_policy``), committed."""
    from app.lifecycle import policies

    policy = policies.add_policy(
        lc.session, policies.read_fields(fields, partial=False), actor="ada", reason=reason, now=lc.now()
    )
    lc.session.commit()
    return policy


def one_in_each_tier(lc: Any, make_run: Any, owner: Any, names: tuple[str, str, str], **archived: Any) -> tuple:
    """An active run, an archived one and one in the trash (soft-deleted), all ``owner``'s, named ``names``;
    ``archived`` goes to the archived run's ``make_run`` (its scraper, say)."""
    from app.lifecycle import archival, deletion

    active = make_run(days_ago=1, owner=owner, name=names[0])
    cold = make_run(days_ago=10, owner=owner, name=names[1], **archived)
    archival.archive_run(lc, cold.id, actor="scheduler")
    trashed = make_run(days_ago=12, owner=owner, name=names[2], scraper="price-watch")
    archival.archive_run(lc, trashed.id, actor="scheduler")
    deletion.delete_run(lc, trashed.id, actor="ada", reason="duplicate", strategy="soft")
    return active, cold, trashed


def loads_from_elsewhere(page: str) -> list[str]:
    """The scripts, styles and images a page would fetch from another host (a CDN): none, the product works offline."""
    import re

    return re.findall(r'(?:src|href)="((?:https?:)?//[^"]*)"', page)
