"""One click from every list (issue 13): each row's actions, the row updated in place, and bulk
actions on the selected rows as one task with an outcome per run."""

import re

from app.lifecycle import archival, bulk, deletion
from app.lifecycle.runs import load_run
from app.models import Job
from tests.support import add_policy, one_in_each_tier, run_burst_worker
from tests.test_web import Browser


def row_of(page, job):
    match = re.search(rf'<tr id="row-{job.id}".*?</tr>', page, re.S)
    assert match, f"no row of {job.id}"
    return match.group(0)


def buttons(row):
    """The actions a row offers, by their visible words."""
    words = re.findall(r"<(?:button|a class=\"button\"|summary)[^>]*>([^<]+)</", row)
    return [word.strip() for word in words if word.strip() != "Confirm delete" and word.strip() != "Extend retention"]


def test_each_row_offers_the_actions_its_run_allows(browse, member, lc, make_run):
    active, archived, trashed = one_in_each_tier(lc, make_run, member.user.id, ("fresh one", "cold one", "binned one"))
    browser = browse(member)
    assert buttons(row_of(browser.get("/runs").text, active)) == ["Archive now", "Extend", "Delete"]
    archived_page = browser.get("/runs?tier=archived").text
    assert buttons(row_of(archived_page, archived)) == ["Restore", "Download", "Extend", "Delete"]
    assert buttons(row_of(browser.get("/runs?tier=deleted").text, trashed)) == ["Undelete"]  # members: no hard delete
    # The same rows on the Archive page; the checkbox of each row belongs to the bulk form.
    assert buttons(row_of(browser.get("/archive").text, archived)) == ["Restore", "Download", "Extend", "Delete"]
    assert f'<input type="checkbox" name="job_id" value="{active.id}" form="bulk"' in browser.get("/runs").text
    # A legal hold takes Delete off the rows it holds (read from the rules, no query per row).
    add_policy(lc, reason="case 42", name="hold", scraper_pattern="*", archive_after_days=7, legal_hold=True)
    assert buttons(row_of(browser.get("/runs").text, active)) == ["Archive now", "Extend"]


def test_a_rows_archive_shows_its_progress_in_place_and_the_row_as_it_ends(
    browse, member, lc, make_run, process_env, redis_db
):
    job = make_run(days_ago=10, owner=member.user.id, name="row run")
    browser = browse(member)
    answer = browser.post(f"/runs/{job.id}/archive", data={"row": "active"}, htmx=True)
    assert answer.status_code == 200 and "<html" not in answer.text
    assert (
        answer.text.lstrip().startswith(f'<tr id="row-{job.id}"') and "Archiving… waiting for a worker" in answer.text
    )
    poll = re.search(r'hx-get="([^"]+)" hx-trigger="every 1s"', answer.text).group(1).replace("&amp;", "&")
    assert poll.startswith(f"/runs/{job.id}/row?") and "tier=active" in poll
    assert "Archive now" not in answer.text  # no second click while it runs
    run_burst_worker(process_env, timeout=120)
    done = browser.get(poll, headers={"HX-Request": "true"}).text
    assert "✓ Archiving finished." in done and 'class="moved"' in done and ">archived</a>" in done
    assert "every 1s" not in done and "Restore" in done  # what the run offers now
    assert load_run(lc, job.id).archived_at is not None
    # Without JavaScript the row's form posts and the run's page follows the task.
    other = make_run(days_ago=10, owner=member.user.id)
    plain = browser.post(f"/runs/{other.id}/archive", data={"row": "active"})
    assert plain.status_code == 302 and f"/runs/{other.id}?task=" in plain.headers["Location"]


def test_a_rows_extend_and_undelete_answer_the_row_with_what_was_done(browse, member, lc, make_run):
    job = make_run(days_ago=10, owner=member.user.id, name="keep me")
    browser = browse(member)
    row = browser.post(
        f"/runs/{job.id}/retention", data={"row": "active", "keep_forever": "yes", "reason": "audit"}, htmx=True
    ).text
    assert row.lstrip().startswith(f'<tr id="row-{job.id}"') and "✓ Retention extended." in row
    assert "kept forever" in row and 'class="moved"' not in row
    archival.archive_run(lc, job.id, actor="scheduler")
    deletion.delete_run(lc, job.id, actor="max", reason="oops", strategy="soft")
    back = browser.post(f"/runs/{job.id}/undelete", data={"row": "deleted"}, htmx=True).text
    assert "✓ The run is back." in back and 'class="moved"' in back and ">archived</a>" in back
    refused = browser.post(f"/runs/{job.id}/retention", data={"row": "active", "reason": "x"}, htmx=True)
    assert refused.status_code == 400 and "keep it forever" in refused.text  # the single action's rules
    assert browser.get(f"/runs/{job.id}/row?tier=frozen").status_code == 400
    assert browser.get(f"/runs/{job.id}/row?tier=active&task=bad$id").status_code == 400


def test_bulk_archive_is_one_task_with_an_outcome_per_run_and_the_refused_listed_at_once(
    browse, member, other_member, lc, make_run, process_env, redis_db
):
    mine = [make_run(days_ago=10, owner=member.user.id, name=f"mine {n}") for n in range(3)]
    running = make_run(days_ago=0, owner=member.user.id, name="still running", status="running")
    theirs = make_run(days_ago=10, owner=other_member.user.id, name="olga's")
    browser = browse(member)
    ids = [str(job.id) for job in (*mine, running, theirs)]
    started = browser.post("/runs/bulk", data={"job_id": ids, "action": "archive", "tier": "active"})
    assert started.status_code == 303
    progress_url = started.headers["Location"]
    assert re.fullmatch(r"/runs/bulk/[A-Za-z0-9_-]+\?tier=active", progress_url)
    page = browser.get(progress_url).text
    assert "Archive: 0 of 3 runs done, 2 refused" in page and 'hx-trigger="every 1s"' in page
    assert "no such run" in page and "olga" not in page  # someone else's run is not even named
    assert "still running" in page and "only finished runs are archived" in page
    run_burst_worker(process_env, timeout=120)
    fragment = browser.get(progress_url, headers={"HX-Request": "true"}).text
    assert "<html" not in fragment and "every 1s" not in fragment
    assert "Archive: 3 of 3 runs done, 2 refused" in fragment and "Finished: 3 done, 2 refused." in fragment
    assert all(load_run(lc, job.id).archived_at is not None for job in mine)
    assert load_run(lc, theirs.id).archived_at is None and load_run(lc, running.id).archived_at is None
    # Someone else cannot follow it.
    other = Browser(browser._client.application.test_client())
    assert other.login(other_member.user.username).status_code == 302
    assert other.get(progress_url).status_code == 404


def test_one_run_failing_stops_nothing_and_is_listed_with_its_error(lc, make_run):
    good = [make_run(days_ago=10) for _ in range(2)]
    broken = make_run(days_ago=10)
    folder = lc.settings.jobs_path / f"{load_run(lc, broken.id).folder_name}_{broken.id}"
    for path in sorted(folder.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    folder.rmdir()
    seen = []
    results = bulk.act_on_runs(
        lc,
        bulk.BulkAsk("archive"),
        [(good[0].id, None), (broken.id, None), (good[1].id, None)],
        actor="ada",
        on_run=lambda index, state: seen.append((index, state["status"])),
    )
    assert [result["status"] for result in results] == ["succeeded", "failed", "succeeded"]
    assert "folder" in results[1]["error"].lower() or "no such" in results[1]["error"].lower()
    assert seen == [(0, "working"), (0, "succeeded"), (1, "working"), (1, "failed"), (2, "working"), (2, "succeeded")]
    assert all(lc.session.get(Job, job.id).archived_at is not None for job in good)


def test_bulk_asks_that_cannot_be_done_are_clear_4xx_and_queue_nothing(browse, member, lc, make_run, redis_db):
    from rq import Queue

    from app import tasks

    job = make_run(days_ago=10, owner=member.user.id)
    browser = browse(member)
    cases = [
        ({"action": "archive"}, 400, "select the runs to act on first"),
        ({"action": "archive", "job_id": "not-an-id"}, 400, "is not a run id"),
        ({"action": "melt", "job_id": str(job.id)}, 400, "action must be one of"),
        ({"action": "delete", "job_id": str(job.id), "reason": "x"}, 400, "confirm the deletion"),
        ({"action": "delete", "job_id": str(job.id), "confirm": "yes"}, 400, "needs a reason"),
        ({"action": "extend", "job_id": str(job.id), "reason": "x"}, 400, "keep them forever"),
        (
            {"action": "extend", "job_id": str(job.id), "reason": "x", "retain_until": "2001-01-01"},
            400,
            "still to come",
        ),
        ({"action": "restore", "job_id": str(job.id)}, 409, "none of the selected runs may be restored"),
        ({"action": "delete", "job_id": str(job.id), "reason": "x", "confirm": "yes", "strategy": "hard"}, 403, ""),
    ]
    for data, status, message in cases:
        answer = browser.post("/runs/bulk", data=data)
        assert answer.status_code == status, (data, answer.status_code)
        assert message.lower() in answer.text.lower(), (data, message)
    too_many = browser.post(
        "/runs/bulk",
        data={
            "action": "archive",
            "job_id": [str(job.id)] * 1 + [f"00000000-0000-4000-8000-{n:012d}" for n in range(bulk.MAX_RUNS)],
        },
    )
    assert too_many.status_code == 400 and f"at most {bulk.MAX_RUNS} runs" in too_many.text
    assert Queue(tasks.QUEUE_NAME, connection=redis_db).count == 0
    assert browser.get("/runs/bulk/no-such-task").status_code == 404
