"""``flask users``: creating users, tokens stored hashed, passwords hashed with a KDF."""

import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from app.auth.users import hash_token, user_for_password, user_for_token
from app.extensions import db
from app.models import User

ROOT = Path(__file__).resolve().parent.parent


def test_create_prints_the_token_last_and_stores_only_hashes(runner):
    result = runner.invoke(args=["users", "create", "alice", "--admin", "--password", "s3cret-pass"])
    assert result.exit_code == 0, result.output
    token = result.output.strip().splitlines()[-1]
    user = db.session.scalar(select(User).where(User.username == "alice"))
    assert user.role == "admin"
    assert user.api_token_hash == hash_token(token) and token not in user.api_token_hash
    assert user.password_hash.startswith(("scrypt:", "pbkdf2:"))
    assert "s3cret-pass" not in user.password_hash
    assert user_for_token(db.session, token) == user
    assert user_for_password(db.session, "alice", "s3cret-pass") == user
    assert user_for_password(db.session, "alice", "wrong") is None


def test_create_without_password_generates_and_prints_one(runner):
    result = runner.invoke(args=["users", "create", "bob"])
    assert result.exit_code == 0
    lines = result.output.strip().splitlines()
    password = next(line.split(": ", 1)[1] for line in lines if line.startswith("Password: "))
    assert user_for_password(db.session, "bob", password).role == "member"


def test_duplicate_reserved_and_malformed_names_are_refused(runner):
    assert runner.invoke(args=["users", "create", "carol"]).exit_code == 0
    for name, message in [
        ("Carol", "already exists"),
        ("scheduler", "reserved"),
        ("../evil", "username must be"),
        ("", "username must be"),
    ]:
        result = runner.invoke(args=["users", "create", name])
        assert result.exit_code == 1
        assert message in result.output
    assert runner.invoke(args=["users", "create", "dave", "--password", "short"]).exit_code == 1
    assert db.session.scalar(select(User).where(User.username == "dave")) is None


def test_ensure_admin_creates_one_admin_once(runner, app):
    first = runner.invoke(args=["users", "ensure-admin"])
    assert first.exit_code == 0
    assert "username:  admin" in first.output
    note = Path(app.instance_path) / "first-admin.txt"
    assert note.stat().st_mode & 0o077 == 0
    second = runner.invoke(args=["users", "ensure-admin"])
    assert second.exit_code == 0 and second.output == ""
    assert [u.username for u in db.session.scalars(select(User))] == ["admin"]


def test_flask_help_lists_db_and_users(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "SCRAPER_DATA_PATH": str(tmp_path), "HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "--help"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    commands = {line.split()[0] for line in result.stdout.split("Commands:")[1].splitlines() if line.strip()}
    assert {"db", "users"} <= commands
