"""``flask demo seed``: realistic runs for a fresh install, that the real lifecycle then moves along."""

import dataclasses
import shutil
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from app.demo import has_ever_had_runs, seed_demo
from app.lifecycle import passes
from app.lifecycle.disk import folder_size
from app.lifecycle.naming import find_run_folder, folder_name_for
from app.lifecycle.runs import tier_of
from app.models import Job


@pytest.fixture
def seed(runner):
    def invoke(*args):
        return runner.invoke(args=["demo", "seed", *args], catch_exceptions=False)

    return invoke


def test_seeded_runs_are_real_runs_spread_over_the_past_days(lc, admin):
    now = datetime.now(UTC)
    jobs_path, owner = lc.settings.jobs_path, admin.user.id
    made = seed_demo(lc.session, jobs_path, runs=12, days=45, run_bytes=64 << 10, now=now, created_by=owner, seed=3)
    assert len(made) == 12
    assert [job.created_at for job in made] == sorted(job.created_at for job in made)
    assert all(now - timedelta(days=45) <= job.created_at <= now for job in made)
    statuses = [job.status for job in made]
    newest = made[-1]
    assert statuses[-1] == "running" and newest.completed_at is None and newest.created_at > now - timedelta(hours=1)
    assert set(statuses[:-1]) <= {"completed", "failed", "cancelled"} and statuses.count("completed") >= 6
    kinds = set()
    for job in made:
        assert job.created_by == admin.user.id and job.folder_name == folder_name_for(job.created_at)
        folder = find_run_folder(lc.settings.jobs_path, job.folder_name, job.id)
        assert folder is not None and (folder / "stats.json").is_file() and (folder / "logs" / "scraper.log").is_file()
        kinds |= {path.name for path in folder.iterdir() if path.is_dir()}
        if job.status != "running":
            assert job.size_bytes == folder_size(folder) > 0
            assert job.created_at < job.completed_at <= now
        assert job.stats["pages"] == len(list((folder / "results").glob("page-*.json")))
    assert kinds == {"results", "screenshots", "pdfs", "logs"}
    assert lc.session.scalar(select(func.count()).select_from(Job)) == 12


def test_the_same_seed_makes_the_same_runs(lc, admin, tmp_path):
    now = datetime.now(UTC)

    def made(root):
        jobs = seed_demo(lc.session, root, runs=3, days=5, run_bytes=4096, now=now, created_by=None, seed=9)
        return [(job.id, job.created_at, job.size_bytes, job.stats) for job in jobs]

    first = made(tmp_path / "a")
    lc.session.query(Job).delete()
    lc.session.commit()
    assert made(tmp_path / "b") == first


def test_the_lifecycle_archives_and_deletes_the_older_demo_runs_and_saves_space(lc, admin, clock):
    clock.now = datetime.now(UTC).replace(microsecond=0)
    seed_demo(
        lc.session, lc.settings.jobs_path, runs=20, days=45, run_bytes=128 << 10, now=clock.now, created_by=None, seed=5
    )
    archived = passes.archive_old_runs(lc)
    # A first cleanup deletes a backlog: more than DELETE_MAX_SHARE of the archive, which the deletion
    # limit holds for an admin (tests/test_deletion_limits.py). The age rules are what is tested here.
    lc.settings = dataclasses.replace(lc.settings, delete_max_share=1.0)
    cleaned = passes.cleanup_old_runs(lc)
    assert archived.failed == cleaned.failed == 0
    jobs = lc.session.scalars(select(Job).execution_options(populate_existing=True)).all()
    age = {job.id: clock.now - (job.completed_at or clock.now) for job in jobs}
    tiers = {job.id: tier_of(job) for job in jobs}
    for job in jobs:
        expected = "active" if age[job.id] < timedelta(days=7) else "archived"
        if age[job.id] >= timedelta(days=30):
            expected = "deleted"
        assert tiers[job.id] == expected, (job.completed_at, age[job.id])
    assert {"active", "archived", "deleted"} <= set(tiers.values())
    # The demo mix is the product's storage claim: 40-60 % less once archived (SPEC §8).
    stored = [job for job in jobs if job.archive_size_bytes]
    saved = 1 - sum(job.archive_size_bytes for job in stored) / sum(job.size_bytes for job in stored)
    assert 0.40 <= saved <= 0.60, saved


def test_seed_command_reports_what_it_wrote(seed, admin, lc):
    result = seed("--runs", "4", "--days", "10", "--size", "64K", "--seed", "1")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Seeded 4 demo runs of the past 10 days")
    assert "owned by ada" in result.output and "flask runs archive" in result.output
    assert lc.session.scalar(select(func.count()).select_from(Job)) == 4


def test_the_demo_adds_its_retention_policies_once_each_kind_of_rule_shown(seed, admin, lc):
    from app.lifecycle import policies
    from tests.support import policy_changes

    result = seed("--runs", "2", "--size", "8K", "--seed", "1")
    assert "Added 3 demo retention policies" in result.output
    saved = {policy.name: policy for policy in policies.list_policies(lc.session)}
    assert saved["latest book catalogues"].keep_last == 3 and saved["price dispute with acme"].legal_hold
    assert saved["invoices for the auditors"].delete_after_days == 365
    assert all(change.actor == "ada" and change.reason.startswith("demo: ") for change in policy_changes(lc))
    again = seed("--runs", "2", "--size", "8K", "--seed", "2")
    assert again.exit_code == 0 and "demo retention policies" not in again.output
    assert len(policies.list_policies(lc.session)) == 3


def test_first_start_seeds_only_an_install_that_never_had_runs(seed, admin, lc, make_run):
    assert not has_ever_had_runs(lc.session)
    assert seed("--first-start", "--runs", "2", "--size", "8K").exit_code == 0
    assert lc.session.scalar(select(func.count()).select_from(Job)) == 2
    result = seed("--first-start", "--runs", "2", "--size", "8K")
    assert result.exit_code == 0 and result.output == ""
    assert lc.session.scalar(select(func.count()).select_from(Job)) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--runs", "0"), "0 is not in the range"),
        (("--runs", "many"), "'many' is not a valid integer"),
        (("--runs", "999999"), "999999 is not in the range"),
        (("--days", "-3"), "-3 is not in the range"),
        (("--size", "12Q"), "'12Q' is not a size"),
        (("--size", "../etc"), "'../etc' is not a size"),
        (("--size", "10"), "'10' is not between 1K"),
        (("--size", "5G"), "'5G' is not between 1K"),
        (("--seed", "x"), "'x' is not a valid integer"),
    ],
)
def test_bad_input_is_a_usage_error_and_writes_nothing(seed, admin, lc, args, message):
    result = seed(*args)
    assert result.exit_code == 2 and message in result.output
    assert lc.session.scalar(select(func.count()).select_from(Job)) == 0
    assert not lc.settings.jobs_path.exists() or not any(lc.settings.jobs_path.iterdir())


def test_an_unknown_owner_or_no_admin_is_a_clear_error(seed, lc, make_account):
    result = seed("--runs", "1")
    assert result.exit_code == 1 and "no admin yet" in result.output
    make_account("max")
    result = seed("--runs", "1", "--user", "nobody")
    assert result.exit_code == 1 and "no user 'nobody'" in result.output
    assert seed("--runs", "1", "--size", "4K", "--user", "MAX").exit_code == 0


@pytest.mark.parametrize("blocked", ["not a folder", "permission denied"])
def test_a_jobs_folder_it_cannot_write_is_a_clear_error_and_leaves_nothing(seed, admin, lc, blocked, monkeypatch):
    import app.demo as demo

    jobs = lc.settings.jobs_path
    if blocked == "not a folder":
        shutil.rmtree(jobs, ignore_errors=True)
        jobs.parent.mkdir(parents=True, exist_ok=True)
        jobs.write_text("a file where jobs/ should be")
    else:  # as the tests may run as root, who writes through any mode, the refusal is simulated

        def refuse(path, data):
            raise PermissionError(13, "Permission denied", str(path))

        monkeypatch.setattr(demo, "_write", refuse)
    try:
        result = seed("--runs", "2", "--size", "4K")
    finally:
        if jobs.is_dir():
            jobs.chmod(0o700)
        else:
            jobs.unlink()
            jobs.mkdir()
    assert result.exit_code == 1 and "cannot write the demo runs" in result.output
    assert ("Permission denied" if blocked == "permission denied" else "Not a directory") in result.output
    assert lc.session.scalar(select(func.count()).select_from(Job)) == 0
    assert not jobs.is_dir() or not any(jobs.iterdir())


def test_a_failure_mid_run_removes_the_folder_it_was_writing(lc, admin, monkeypatch):
    import app.demo as demo

    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real(*args, **kwargs)

    real = demo.log_blob  # every run writes one log: the second run fails half-written
    monkeypatch.setattr(demo, "log_blob", failing)
    now = datetime.now(UTC)
    with pytest.raises(OSError, match="No space left"):
        seed_demo(lc.session, lc.settings.jobs_path, runs=3, days=3, run_bytes=64 << 10, now=now, created_by=None)
    registered = lc.session.scalars(select(Job)).all()
    assert len(registered) == 1
    folders = sorted(path.name for path in lc.settings.jobs_path.iterdir())
    assert folders == sorted(f"{job.folder_name}_{job.id}" for job in registered)
