"""Work reports what it does: progress in bytes, and CLI summaries in words (issue 9, point 8)."""

import os

import pytest
from rq import Queue
from rq.job import Job as RQJob

from app import tasks
from app.lifecycle import archival
from app.lifecycle.naming import find_run_folder
from tests.support import run_burst_worker

BIG = {f"pages/{i:03d}.html": os.urandom(256 * 1024) for i in range(24)}  # 6 MiB in 24 files


def test_archive_and_restore_report_progress_in_bytes(lc, make_run):
    job = make_run(BIG, days_ago=10)
    total = sum(len(content) for content in BIG.values())
    seen: list[tuple[int, int]] = []
    lc.progress = lambda done, of: seen.append((done, of))
    archival.archive_run(lc, job.id, actor="scheduler")
    assert {of for _done, of in seen} == {total}
    steps = [done for done, _of in seen]
    assert steps == sorted(steps) and steps[-1] == total
    assert len([done for done in steps if 0 < done < total]) >= 10  # not 0 % then 100 %

    seen.clear()
    archival.restore_run(lc, job.id, actor="ada")
    assert {of for _done, of in seen} == {total}
    assert len([done for done, _of in seen if 0 < done < total]) >= 10 and seen[-1][0] == total


@pytest.mark.slow
def test_a_restore_task_shows_its_bytes(lc, make_run, admin, process_env):
    job = make_run(BIG, days_ago=10)
    archival.archive_run(lc, job.id, actor="scheduler")
    task_id = admin.post(f"/api/scraper/jobs/{job.id}/restore").json["task_id"]
    lc.session.commit()
    run_burst_worker(process_env)
    body = admin.get(f"/api/scraper/tasks/{task_id}").json
    total = sum(len(content) for content in BIG.values())
    assert body["status"] == "finished" and body["bytes_total"] == total and body["bytes_done"] == total
    meta = RQJob.fetch(task_id, connection=Queue(tasks.QUEUE_NAME, connection=lc.locks.redis).connection).meta
    assert meta["bytes_done"] == total


@pytest.fixture
def cli(app, lc):
    runner = app.test_cli_runner()
    return lambda *args: runner.invoke(args=["runs", *args], catch_exceptions=False)


def test_cli_summaries_say_what_would_happen_and_what_happened(cli, lc, make_run, clock):
    for _ in range(2):
        make_run({"data.bin": b"x" * (1536 * 1024)}, days_ago=10)  # 1.5 MB each
    dry = cli("archive", "--dry-run")
    assert "would archive 2 runs, 3.0 MB" in dry.output

    restored = make_run(days_ago=12)
    archival.archive_run(lc, restored.id, actor="scheduler")
    archival.restore_run(lc, restored.id, actor="ada")
    row = archival.load_run(lc, restored.id)
    row.restore_expires_at = row.restored_at  # its time is up (the CLI keeps the real clock)
    lc.session.commit()
    done = cli("archive")
    assert done.exit_code == 0
    assert "archived 2 runs, 3.0 MB" in done.output and "expired 1 restored copy" in done.output
    assert find_run_folder(lc.settings.jobs_path, restored.folder_name, restored.id) is None


def test_a_one_run_dry_run_says_what_it_would_do(cli, make_run):
    job = make_run({"a.bin": b"y" * 2048}, days_ago=1)
    result = cli("archive", "--job", str(job.id), "--dry-run")
    assert "would archive 1 run, 2.0 KB" in result.output
