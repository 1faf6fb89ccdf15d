"""Standards and small leaks (issue 10 point 7): ranges, body limits, hidden characters, big integers."""

import hashlib
import io
import os
import stat
import subprocess
import sys
import tomllib
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app import create_app
from app.extensions import db, settings
from app.lifecycle import archival
from app.models import Job, User

LIMIT = 1024 * 1024


class CountingStream(io.BytesIO):
    """A request body that remembers how much of it the app read."""

    consumed = 0

    def read(self, size=-1):
        chunk = super().read(size)
        self.consumed += len(chunk)
        return chunk

    def readline(self, size=-1):
        line = super().readline(size)
        self.consumed += len(line)
        return line


def test_a_chunked_body_over_the_limit_is_413_and_not_read_whole(member):
    body = b'{"name": "' + b"x" * (3 * LIMIT) + b'", "scraper": "s"}'
    stream = CountingStream(body)
    # As gunicorn and Werkzeug's server hand over a chunked body: de-chunked, length unknown, terminated.
    environ = {"wsgi.input": stream, "HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input_terminated": True}
    response = member.post("/api/scraper/jobs", environ_overrides=environ, headers={"Content-Type": "application/json"})
    assert response.status_code == 413, response.get_data()
    assert response.json["error"]["code"]
    assert stream.consumed <= LIMIT + 64 * 1024
    assert member.get("/api/scraper/jobs").json["items"] == []


@pytest.mark.parametrize("size", [LIMIT - 100, LIMIT])
def test_a_chunked_body_within_the_limit_is_read_as_usual(member, size):
    prefix, suffix = b'{"name": "n", "scraper": "s", "stats": {"pad": "', b'"}}'
    body = prefix + b"x" * (size - len(prefix) - len(suffix)) + suffix
    assert len(body) == size
    environ = {"wsgi.input": io.BytesIO(body), "HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input_terminated": True}
    response = member.post("/api/scraper/jobs", environ_overrides=environ, headers={"Content-Type": "application/json"})
    assert response.status_code == 201, response.get_data()[:300]
    assert len(response.json["stats"]["pad"]) == size - len(prefix) - len(suffix)


HIDDEN = {
    "right-to-left override": "invoice\u202egpj.exe",
    "left-to-right embedding": "a\u202ab",
    "first strong isolate": "a\u2068b",
    "pop directional isolate": "a\u2069",
    "zero-width space": "ad\u200bmin",
    "zero-width joiner": "a\u200db",
    "byte order mark": "\ufeffbooks",
    "word joiner": "bo\u2060oks",
    "C1 control": "books\x85",
    "delete": "books\x7f",
    "line separator": "books\u2028",
    "escape": "books\x1b[31m",
}


@pytest.mark.parametrize("field", ["name", "scraper"])
@pytest.mark.parametrize("value", HIDDEN.values(), ids=HIDDEN.keys())
def test_run_names_refuse_bidi_zero_width_and_control_characters(member, field, value):
    body = {"name": "books", "scraper": "books-toscrape", field: value}
    response = member.post("/api/scraper/jobs", json=body)
    assert response.status_code == 400, response.json
    message = response.json["error"]["message"]
    assert message.startswith(f"{field} must not contain control, bidi or zero-width characters")
    assert "U+" in message
    assert db.session.scalar(select(func.count()).select_from(Job)) == 0
    assert list(settings().jobs_path.iterdir()) == []


def test_visible_unicode_names_are_kept(member):
    run = member.post("/api/scraper/jobs", json={"name": "Bücher – täglich 本", "scraper": "ägar"}).json
    assert run["name"] == "Bücher – täglich 本" and run["scraper"] == "ägar"
    assert db.session.get(Job, uuid.UUID(run["id"])).name == "Bücher – täglich 本"


@pytest.mark.parametrize("value", [*HIDDEN.values(), "admin\n"], ids=[*HIDDEN.keys(), "final newline"])
def test_users_create_refuses_hidden_characters_in_usernames(runner, value):
    result = runner.invoke(args=["users", "create", value, "--password", "correct horse battery"])
    assert result.exit_code != 0
    assert "username must" in result.output
    assert db.session.scalar(select(func.count()).select_from(User)) == 0


def post_raw(account, url, text, method="post"):
    return getattr(account, method)(url, data=text, headers={"Content-Type": "application/json"})


EXACT = {"int63": 2**63 - 1, "beyond-2^53": 9007199254740993, "u64": 2**64 - 1, "min": -(2**63)}


@pytest.mark.parametrize("value", EXACT.values(), ids=EXACT.keys())
def test_large_stats_integers_round_trip_exactly(member, value):
    created = post_raw(member, "/api/scraper/jobs", f'{{"name": "n", "scraper": "s", "stats": {{"rows": {value}}}}}')
    assert created.status_code == 201, created.json
    assert f'"rows":{value}'.encode() in created.data
    url = f"/api/scraper/jobs/{created.json['id']}"
    patched = post_raw(member, url, f'{{"stats": {{"rows": {value}, "deep": [{{"n": {value}}}]}}}}', "patch")
    assert patched.status_code == 200, patched.json
    read = member.get(url)
    assert f'"rows":{value}'.encode() in read.data and f'"n":{value}'.encode() in read.data
    db.session.expire_all()
    assert db.session.get(Job, uuid.UUID(created.json["id"])).stats == {"rows": value, "deep": [{"n": value}]}


@pytest.mark.parametrize("value", [2**64, -(2**63) - 1, 10**30], ids=["2^64", "below-int64", "10^30"])
def test_stats_integers_orjson_cannot_keep_exact_are_refused(member, value):
    refused = post_raw(member, "/api/scraper/jobs", f'{{"name": "n", "scraper": "s", "stats": {{"rows": {value}}}}}')
    assert refused.status_code == 400, refused.data
    assert "stats integers must lie between -2^63 and 2^64-1" in refused.json["error"]["message"]
    assert db.session.scalar(select(func.count()).select_from(Job)) == 0

    run = member.post("/api/scraper/jobs", json={"name": "n", "scraper": "s", "stats": {"rows": 1}}).json
    url = f"/api/scraper/jobs/{run['id']}"
    patched = post_raw(member, url, f'{{"stats": {{"a": [{{"rows": {value}}}]}}}}', "patch")
    assert patched.status_code == 400
    db.session.expire_all()
    assert db.session.get(Job, uuid.UUID(run["id"])).stats == {"rows": 1}
    assert member.get(url).json["stats"] == {"rows": 1}


def test_a_large_float_in_stats_is_not_mistaken_for_an_integer(member):
    created = post_raw(member, "/api/scraper/jobs", '{"name": "n", "scraper": "s", "stats": {"bytes": 1e20}}')
    assert created.status_code == 201, created.json
    assert created.json["stats"] == {"bytes": 1e20}


@pytest.fixture
def archived(lc, make_run, member):
    job = make_run({"results.json": '{"items": [1, 2, 3]}', "page.bin": bytes(range(256)) * 40}, owner=member.user.id)
    archival.archive_run(lc, job.id, actor="scheduler")
    return archival.load_run(lc, job.id)


@pytest.mark.parametrize(
    "header",
    ["bytes=10-5", "bytes=abc", "items=0-5", "bytes=", "bytes=-", "bytes=0-1,4-5", "bytes=0-9,5-20", "bytes=5-1,0-3"],
)
def test_an_unusable_range_is_ignored_and_the_whole_checked_archive_sent(member, lc, archived, header):
    data = lc.store.path(archived.archive_path).read_bytes()
    response = member.get(f"/api/scraper/jobs/{archived.id}/archive/download", headers={"Range": header})
    assert response.status_code == 200
    assert response.data == data and hashlib.sha256(response.data).hexdigest() == archived.archive_sha256
    assert "Content-Range" not in response.headers
    assert response.headers["Content-Length"] == str(len(data))
    assert response.headers["Accept-Ranges"] == "bytes"


def test_one_valid_range_is_still_a_206_and_one_outside_the_file_a_416(member, lc, archived):
    url = f"/api/scraper/jobs/{archived.id}/archive/download"
    data = lc.store.path(archived.archive_path).read_bytes()
    partial = member.get(url, headers={"Range": "bytes=-10"})
    assert partial.status_code == 206 and partial.data == data[-10:]
    assert partial.headers["Content-Range"] == f"bytes {len(data) - 10}-{len(data) - 1}/{len(data)}"
    outside = member.get(url, headers={"Range": f"bytes={len(data)}-"})
    assert outside.status_code == 416 and outside.headers["Content-Range"] == f"bytes */{len(data)}"


@pytest.fixture
def loose_umask():
    previous = os.umask(0o022)  # the usual default: new files 0644, folders 0755
    yield
    os.umask(previous)


def modes(folder):
    return {path.name: stat.S_IMODE(path.stat().st_mode) for path in [folder, *folder.iterdir()]}


def test_flask_db_upgrade_makes_the_instance_folder_and_sqlite_file_the_owners_alone(tmp_path, clean_env, loose_umask):
    instance = tmp_path / "instance"
    app = create_app({"SCRAPER_DATA_PATH": str(tmp_path / "data"), "INSTANCE_PATH": str(instance)})
    with app.app_context():
        assert app.test_cli_runner().invoke(args=["db", "upgrade"]).exit_code == 0
        result = app.test_cli_runner().invoke(args=["users", "ensure-admin"])
        db.engine.dispose()
    assert result.exit_code == 0, result.output
    assert (instance / "agar.db").stat().st_size > 0  # the migrated database, not an empty file
    found = modes(instance)
    assert {"instance", "agar.db", "secret_key", "first-admin.txt"} <= found.keys()
    # SQLite's -wal and -shm files, when present, take the database file's mode.
    assert found == {name: 0o700 if name == "instance" else 0o600 for name in found}


def test_an_instance_folder_left_readable_is_tightened_at_start(tmp_path, clean_env, loose_umask):
    instance = tmp_path / "instance"
    instance.mkdir(mode=0o755)
    for name in ("agar.db", "secret_key", "first-admin.txt"):
        (instance / name).write_text("x" * 64)
        (instance / name).chmod(0o644)
    app = create_app({"SCRAPER_DATA_PATH": str(tmp_path / "data"), "INSTANCE_PATH": str(instance)})
    with app.app_context():
        db.engine.dispose()
    assert modes(instance) == {"instance": 0o700, "agar.db": 0o600, "secret_key": 0o600, "first-admin.txt": 0o600}


def test_a_sqlite_file_named_by_database_url_is_the_owners_alone_too(tmp_path, clean_env, loose_umask):
    elsewhere = tmp_path / "db" / "agar.sqlite"
    elsewhere.parent.mkdir()
    config = {"DATABASE_URL": f"sqlite:///{elsewhere}", "SCRAPER_DATA_PATH": str(tmp_path / "data")}
    app = create_app({**config, "INSTANCE_PATH": str(tmp_path / "instance")})
    with app.app_context():
        assert app.test_cli_runner().invoke(args=["db", "upgrade"]).exit_code == 0
        db.engine.dispose()
    assert elsewhere.stat().st_size > 0 and stat.S_IMODE(elsewhere.stat().st_mode) == 0o600
    elsewhere.chmod(0o644)  # left readable by an older version: tightened at the next start
    create_app({**config, "INSTANCE_PATH": str(tmp_path / "instance")})
    assert stat.S_IMODE(elsewhere.stat().st_mode) == 0o600


def test_the_product_code_passes_ruffs_security_rules_and_ci_runs_them():
    root = Path(__file__).parent.parent
    config = tomllib.loads((root / "pyproject.toml").read_text())
    assert "S" in config["tool"]["ruff"]["lint"]["select"]  # `make test` runs `ruff check .`
    ruff = Path(sys.executable).parent / "ruff"
    paths = ["app", "scripts", "worker.py", "wsgi.py"]
    result = subprocess.run(
        [str(ruff), "check", "--select", "S", "--output-format", "concise", *paths],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout
