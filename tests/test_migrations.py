"""One migration history that upgrades, matches the models, and downgrades on SQLite and PostgreSQL."""

import pytest
from flask_migrate import check, downgrade, upgrade
from sqlalchemy import inspect, text

from app import create_app
from app.extensions import db
from tests.support import throwaway_database

TABLES = {"jobs", "job_audit", "lifecycle_events", "storage_snapshots", "users", "alerts"}


@pytest.fixture
def fresh_database_url(tmp_path):
    with throwaway_database(tmp_path) as url:
        yield url


def test_upgrade_check_downgrade_upgrade(fresh_database_url, tmp_path, clean_env):
    app = create_app(
        {"DATABASE_URL": fresh_database_url, "SCRAPER_DATA_PATH": str(tmp_path), "INSTANCE_PATH": str(tmp_path / "i")}
    )
    with app.app_context():
        upgrade()
        assert TABLES <= set(inspect(db.engine).get_table_names())
        check()  # raises if the models and the migrations disagree
        indexes = {index["name"] for index in inspect(db.engine).get_indexes("jobs")}
        assert {"ix_jobs_folder_name", "ix_jobs_archived_at", "ix_jobs_deleted_at", "ix_jobs_scraper"} <= indexes
        # 0006: the lists' filters and the deleted tier; the text search's trigram indexes on PostgreSQL
        assert {
            "ix_jobs_active_status_created_at_id",
            "ix_jobs_active_scraper_created_at_id",
            "ix_jobs_deleted_created_at_id",
            "ix_jobs_archived_totals",
        } <= indexes
        if db.engine.dialect.name == "postgresql":
            with db.engine.connect() as connection:
                trigram = connection.scalars(
                    text(
                        "SELECT indexname FROM pg_indexes "
                        "WHERE schemaname = current_schema() AND indexname LIKE 'ix_jobs_%_trgm'"
                    )
                ).all()
            # 0006 the active tier's, 0011 the archived and deleted tiers': a search counts in every tier
            assert sorted(trigram) == [
                f"ix_jobs_{tier}_{c}_trgm"
                for tier in ("active", "archived", "deleted")
                for c in ("folder_name", "id", "name", "scraper")
            ]
        audit_indexes = {index["name"] for index in inspect(db.engine).get_indexes("job_audit")}
        assert {"ix_job_audit_deleted_at", "ix_job_audit_job_id"} <= audit_indexes
        downgrade(revision="base")
        assert not TABLES & set(inspect(db.engine).get_table_names())
        upgrade()
        assert TABLES <= set(inspect(db.engine).get_table_names())
        db.engine.dispose()


def test_stats_is_jsonb_on_postgresql_and_json_on_sqlite(app):
    columns = {c["name"]: c["type"] for c in inspect(db.engine).get_columns("jobs")}
    if db.engine.dialect.name == "postgresql":
        assert type(columns["stats"]).__name__ == "JSONB"
        assert columns["created_at"].timezone is True
    else:
        assert type(columns["stats"]).__name__ == "JSON"


def test_0004_escapes_stored_member_names_and_its_downgrade_keeps_every_manifest(
    fresh_database_url, tmp_path, clean_env
):
    """Raw names stored before 0004 become their escaped form; a downgrade on SQLite must not
    rebuild jobs (its DROP TABLE would cascade to archive_members)."""
    import uuid

    from sqlalchemy import text

    app = create_app(
        {"DATABASE_URL": fresh_database_url, "SCRAPER_DATA_PATH": str(tmp_path), "INSTANCE_PATH": str(tmp_path / "i")}
    )
    job_id = uuid.uuid4()
    raw_names = ["back\\slash.txt", "new\nline", "ctl\x01\x7f", "plain.txt"]
    with app.app_context():
        upgrade(revision="0003_tier_indexes")
        with db.engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO jobs (id, name, scraper, status, created_at, keep_forever) "
                    "VALUES (:id, 'n', 's', 'completed', CURRENT_TIMESTAMP, false)"
                ),
                {"id": job_id.hex if db.engine.dialect.name == "sqlite" else str(job_id)},
            )
            for name in raw_names:
                connection.execute(
                    text("INSERT INTO archive_members (job_id, path, kind, size) VALUES (:job, :path, 'file', 1)"),
                    {"job": job_id.hex if db.engine.dialect.name == "sqlite" else str(job_id), "path": name},
                )
        upgrade()
        with db.engine.connect() as connection:
            paths = sorted(connection.execute(text("SELECT path FROM archive_members")).scalars())
        assert paths == sorted(["back\\\\slash.txt", "new\\nline", "ctl\\x01\\x7f", "plain.txt"])
        downgrade(revision="0003_tier_indexes")
        with db.engine.connect() as connection:
            paths = sorted(connection.execute(text("SELECT path FROM archive_members")).scalars())
        assert paths == sorted(raw_names)
        db.engine.dispose()
