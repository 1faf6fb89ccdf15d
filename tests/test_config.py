"""Settings: defaults, and every invalid value stopping start-up with a message naming the variable."""

import subprocess
import sys
from pathlib import Path

import pytest

from app import create_app
from app.config import ConfigError, load_settings

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_follow_the_spec(tmp_path):
    settings = load_settings({"SCRAPER_DATA_PATH": str(tmp_path)})
    assert settings.archive_after_days == 7
    assert settings.delete_after_days == 30
    assert settings.archive_compression == "gzip"
    assert settings.deletion_strategy == "soft"
    assert settings.delete_grace_days == 7
    assert settings.restore_ttl_days == 7
    assert settings.secure_delete is False
    assert settings.archive_schedule == "0 2 * * *"
    assert settings.cleanup_schedule == "0 3 * * *"
    assert settings.snapshot_schedule == "0 * * * *"  # hourly (SPEC §4)
    assert settings.alerts_schedule == "*/15 * * * *"  # every 15 minutes, as the README and CLI help say
    assert settings.storage_alert_percent == 80
    assert settings.delete_max_per_pass == 1000  # the deletion safety limit (SPEC §9)
    assert settings.delete_max_share == 0.2
    assert settings.jobs_path == tmp_path / "jobs"
    assert settings.archive_base_path == tmp_path / "archive"
    assert settings.trash_path == tmp_path / "trash"


def test_archive_base_path_may_move_the_archive(tmp_path):
    settings = load_settings({"SCRAPER_DATA_PATH": str(tmp_path / "d"), "ARCHIVE_BASE_PATH": str(tmp_path / "a")})
    assert settings.archive_base_path == tmp_path / "a"


def test_values_are_parsed(tmp_path):
    settings = load_settings(
        {
            "ARCHIVE_AFTER_DAYS": "3",
            "DELETE_AFTER_DAYS": "10",
            "ARCHIVE_COMPRESSION": "ZSTD",
            "DELETION_STRATEGY": "hard",
            "SECURE_DELETE": "yes",
            "ARCHIVE_SCHEDULE": "30 1 * * 1-5",
        }
    )
    assert (settings.archive_after_days, settings.delete_after_days) == (3, 10)
    assert settings.archive_compression == "zstd"
    assert settings.deletion_strategy == "hard"
    assert settings.secure_delete is True
    assert settings.archive_schedule == "30 1 * * 1-5"


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"ARCHIVE_AFTER_DAYS": "-1"}, "ARCHIVE_AFTER_DAYS"),
        ({"ARCHIVE_AFTER_DAYS": "seven"}, "ARCHIVE_AFTER_DAYS"),
        ({"DELETE_AFTER_DAYS": "7"}, "DELETE_AFTER_DAYS"),
        ({"ARCHIVE_AFTER_DAYS": "40"}, "DELETE_AFTER_DAYS"),
        ({"DELETE_GRACE_DAYS": "-3"}, "DELETE_GRACE_DAYS"),
        ({"RESTORE_TTL_DAYS": "0"}, "RESTORE_TTL_DAYS"),
        ({"ARCHIVE_COMPRESSION": "rar"}, "ARCHIVE_COMPRESSION"),
        ({"DELETION_STRATEGY": "shred"}, "DELETION_STRATEGY"),
        ({"SECURE_DELETE": "maybe"}, "SECURE_DELETE"),
        ({"ARCHIVE_SCHEDULE": "every night"}, "ARCHIVE_SCHEDULE"),
        ({"CLEANUP_SCHEDULE": "61 3 * * *"}, "CLEANUP_SCHEDULE"),
        ({"ARCHIVE_BATCH_SIZE": "0"}, "ARCHIVE_BATCH_SIZE"),
        ({"ARCHIVE_MAX_CONCURRENCY": "1.5"}, "ARCHIVE_MAX_CONCURRENCY"),
        ({"STORAGE_ALERT_PERCENT": "150"}, "STORAGE_ALERT_PERCENT"),
        ({"ALERT_WEBHOOK_URL": "ftp://example"}, "ALERT_WEBHOOK_URL"),
        ({"REDIS_URL": "localhost:6379"}, "REDIS_URL"),
        ({"DELETE_MAX_PER_PASS": "0"}, "DELETE_MAX_PER_PASS"),
        ({"DELETE_MAX_PER_PASS": "many"}, "DELETE_MAX_PER_PASS"),
        ({"DELETE_MAX_SHARE": "0"}, "DELETE_MAX_SHARE"),
        ({"DELETE_MAX_SHARE": "1.5"}, "DELETE_MAX_SHARE"),
        ({"DELETE_MAX_SHARE": "20%"}, "DELETE_MAX_SHARE"),
        ({"DELETE_MAX_SHARE": "nan"}, "DELETE_MAX_SHARE"),
    ],
)
def test_invalid_values_name_the_variable(env, variable):
    with pytest.raises(ConfigError, match=variable):
        load_settings(env)


def test_the_deletion_limits_are_read_and_a_bad_share_says_what_it_must_be():
    settings = load_settings({"DELETE_MAX_PER_PASS": "50", "DELETE_MAX_SHARE": "1"})
    assert (settings.delete_max_per_pass, settings.delete_max_share) == (50, 1.0)
    assert load_settings({"DELETE_MAX_SHARE": " 0.05 "}).delete_max_share == 0.05
    with pytest.raises(ConfigError) as stop:
        load_settings({"DELETE_MAX_SHARE": "20"})
    assert str(stop.value) == "DELETE_MAX_SHARE must be a fraction above 0 and at most 1 (0.2 is a fifth), got '20'"


def test_create_app_refuses_invalid_settings(tmp_path, clean_env):
    with pytest.raises(ConfigError, match="DELETE_AFTER_DAYS"):
        create_app({"SCRAPER_DATA_PATH": str(tmp_path), "ARCHIVE_AFTER_DAYS": 30, "DELETE_AFTER_DAYS": 30})


def test_unwritable_data_path_stops_start_up(tmp_path, clean_env):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match="SCRAPER_DATA_PATH"):
        create_app({"SCRAPER_DATA_PATH": str(blocker / "data"), "INSTANCE_PATH": str(tmp_path / "i")})


def test_start_up_prints_one_clear_line(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "SCRAPER_DATA_PATH": str(tmp_path), "ARCHIVE_COMPRESSION": "lzma"}
    result = subprocess.run(
        [sys.executable, "-c", "import wsgi"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "Configuration error: ARCHIVE_COMPRESSION must be one of gzip, bz2, xz, zstd, got 'lzma'"
    )


def test_create_app_takes_test_config(app, tmp_path):
    assert app.testing
    assert app.extensions["agar.settings"].jobs_path.is_dir()
    assert app.extensions["agar.settings"].archive_base_path.is_dir()


def test_an_unsupported_database_url_names_the_variable_and_hides_the_password():
    with pytest.raises(ConfigError) as stop:
        load_settings({"DATABASE_URL": "mysql://root:hunter2@db.example/agar"})
    assert (
        str(stop.value)
        == "DATABASE_URL must be a sqlite:// or postgresql:// (psycopg) URL, got 'mysql://root:***@db.example/agar'"
    )
    for accepted in ("sqlite:///agar.db", "postgresql://u@h/d", "postgres://u@h/d", "postgresql+psycopg://u@h/d"):
        assert load_settings({"DATABASE_URL": accepted}).database_url == accepted
    for driver_not_installed in ("postgresql+psycopg2://u@h/d", "postgresql+asyncpg://u@h/d"):
        with pytest.raises(ConfigError, match="DATABASE_URL must be"):  # not an import traceback at start
            load_settings({"DATABASE_URL": driver_not_installed})


def test_create_app_for_a_process_refuses_a_database_it_cannot_reach(tmp_path, clean_env):
    url = f"sqlite:///{tmp_path / 'no-such-folder' / 'agar.db'}"
    config = {"DATABASE_URL": url, "SCRAPER_DATA_PATH": str(tmp_path / "d"), "INSTANCE_PATH": str(tmp_path / "i")}
    with pytest.raises(ConfigError) as stop:
        create_app(config, check_database=True)
    assert str(stop.value) == f"DATABASE_URL: cannot connect to {url}: unable to open database file"
    assert create_app(config).extensions["agar.settings"].database_url == url  # tests build apps without the check


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "postgresql://postgres:secret@127.0.0.1:1/nothing",
            "DATABASE_URL: cannot connect to postgresql://postgres:***@127.0.0.1:1/nothing: Connection refused",
        ),
        ("mysql://x/y", "DATABASE_URL must be a sqlite:// or postgresql:// (psycopg) URL, got 'mysql://x/y'"),
    ],
    ids=["unreachable", "unsupported"],
)
@pytest.mark.parametrize(
    "command",
    [["-m", "flask", "--app", "wsgi", "users", "list"], ["worker.py", "--burst"], ["worker.py", "scheduler"]],
    ids=["flask-cli", "worker", "scheduler"],
)
def test_every_process_stops_on_a_bad_database_url_with_one_line(tmp_path, url, message, command):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SCRAPER_DATA_PATH": str(tmp_path), "DATABASE_URL": url}
    env["REDIS_URL"] = "redis://127.0.0.1:1/0"  # nobody's Redis: a process that got past the database fails too
    result = subprocess.run([sys.executable, *command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert result.stdout == ""
    assert result.stderr.strip() == f"Configuration error: {message}"


def test_archives_are_verified_weekly_within_a_byte_budget_by_default(tmp_path):
    settings = load_settings({"SCRAPER_DATA_PATH": str(tmp_path)})
    assert settings.verify_schedule == "0 4 * * 0"
    assert settings.verify_max_bytes_per_run == 50 * 1024**3
    chosen = load_settings({"VERIFY_SCHEDULE": "30 5 * * 6", "VERIFY_MAX_BYTES_PER_RUN": "1000000"})
    assert (chosen.verify_schedule, chosen.verify_max_bytes_per_run) == ("30 5 * * 6", 1_000_000)


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"VERIFY_SCHEDULE": "sundays"}, "VERIFY_SCHEDULE"),
        ({"VERIFY_MAX_BYTES_PER_RUN": "0"}, "VERIFY_MAX_BYTES_PER_RUN"),
        ({"VERIFY_MAX_BYTES_PER_RUN": "50GB"}, "VERIFY_MAX_BYTES_PER_RUN"),
    ],
)
def test_invalid_verification_settings_name_the_variable(env, variable):
    with pytest.raises(ConfigError, match=variable):
        load_settings(env)
