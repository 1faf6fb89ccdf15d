"""The dashboard: login, CSRF, who sees what, the runs of each tier, one run, and its actions."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from rq import Queue
from sqlalchemy import update

from app import tasks
from app.lifecycle import archival, deletion
from app.models import Job, User
from tests.support import PASSWORD, loads_from_elsewhere, run_burst_worker


def csrf_of(response):
    return re.search(r'name="csrf-token" content="([^"]+)"', response.text).group(1)


class Browser:
    """A logged-in session of the dashboard, posting forms with their CSRF token.

    The tests' app context outlives requests, so Flask-WTF's per-request token cache in ``g``
    would carry one browser's token into another's session, and the database session would keep
    what it read before a worker process changed it: each request starts without either, as it
    does in production.
    """

    def __init__(self, client):
        self._client = client
        self.token = None

    def _request(self, method, *args, **kwargs):
        from flask import g

        from app.extensions import db

        g.pop("csrf_token", None)
        db.session.commit()  # ends the read transaction and forgets what it read
        return getattr(self._client, method)(*args, **kwargs)

    def login(self, username, password=PASSWORD, next_url=None):
        self.token = csrf_of(self._request("get", "/login"))
        url = "/login" + (f"?next={next_url}" if next_url else "")
        data = {"username": username, "password": password, "csrf_token": self.token}
        response = self._request("post", url, data=data)
        if response.status_code == 302:  # logging in opens a new session, with a new token
            self.token = csrf_of(self._request("get", "/runs"))
        return response

    def get(self, url, **kwargs):
        return self._request("get", url, **kwargs)

    def post(self, url, data=None, htmx=False, token=True, **kwargs):
        headers = {"HX-Request": "true"} if htmx else {}
        form = {**(data or {}), **({"csrf_token": self.token} if token else {})}
        return self._request("post", url, data=form, headers=headers, **kwargs)


def test_pages_ask_for_a_login_first(browse):
    anonymous = browse()
    response = anonymous.get("/runs?tier=archived")
    assert response.status_code == 302 and response.headers["Location"] == "/login?next=/runs?tier%3Darchived"
    assert anonymous.get("/").headers["Location"] == "/login?next=/"
    htmx = anonymous.get("/runs", headers={"HX-Request": "true"})
    assert htmx.status_code == 401 and htmx.headers["HX-Redirect"] == "/login"
    login = anonymous.get("/login")
    assert login.status_code == 200 and 'for="username">Username<' in login.text and ">Log in<" in login.text
    assert anonymous.get("/static/htmx-2.0.11.min.js").status_code == 200


def test_login_checks_the_password_and_goes_back_only_to_this_site(browse, member):
    browser = browse()
    wrong = browser.login("max", "nope")
    assert wrong.status_code == 401 and "Wrong username or password." in wrong.text
    assert browser.login("", "").status_code == 401
    assert browser.login("max", next_url="/runs?tier=deleted").headers["Location"] == "/runs?tier=deleted"
    assert browser.get("/").headers["Location"] == "/runs"
    for hostile in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        assert browse().login("max", next_url=hostile).headers["Location"] == "/runs"


def test_every_post_needs_the_csrf_token(browse, member, make_run):
    job = make_run(days_ago=1, owner=member.user.id)
    browser = browse(member)
    no_token = browser.post(f"/runs/{job.id}/archive", token=False)
    assert no_token.status_code == 400 and "CSRF" in no_token.text
    assert browse().post("/login", data={"username": "max", "password": PASSWORD}, token=False).status_code == 400
    assert browser.post("/logout", token=False).status_code == 400
    forged = browser.post(f"/runs/{job.id}/archive", data={"csrf_token": "forged"}, token=False)
    assert forged.status_code == 400


def test_logout_and_a_new_password_end_the_session(browse, member, lc):
    browser = browse(member)
    assert browser.get("/runs").status_code == 200
    assert browser.post("/logout").headers["Location"] == "/login"
    assert browser.get("/runs").status_code == 302
    browser = browse(member)
    lc.session.execute(update(User).where(User.id == member.user.id).values(password_hash="pbkdf2:sha256:1$x$y"))
    lc.session.commit()
    assert browser.get("/runs").status_code == 302


def test_members_see_their_runs_and_admins_see_all_with_owners(browse, member, other_member, admin, make_run):
    mine = make_run(days_ago=1, owner=member.user.id, name="mine")
    theirs = make_run(days_ago=2, owner=other_member.user.id, name="theirs")
    page = browse(member).get("/runs").text
    assert "mine" in page and "theirs" not in page and ">Owner<" not in page
    admin_page = browse(admin).get("/runs").text
    assert "mine" in admin_page and "theirs" in admin_page and ">Owner<" in admin_page and ">olga<" in admin_page
    assert browse(member).get(f"/runs/{theirs.id}").status_code == 404
    assert browse(admin).get(f"/runs/{theirs.id}").status_code == 200
    assert browse(member).get(f"/runs/{mine.id}").status_code == 200


def test_the_runs_of_each_tier_with_counts_search_and_pages(browse, member, lc, make_run, monkeypatch):
    from app.web import runs as pages

    monkeypatch.setattr(pages, "PAGE_SIZE", 2)
    active = [make_run(days_ago=d / 10, owner=member.user.id, name=f"active {d}") for d in (1, 2, 3)]
    old = make_run(days_ago=10, owner=member.user.id, name="cold one")
    archival.archive_run(lc, old.id, actor="test")
    browser = browse(member)
    first = browser.get("/runs").text
    assert (
        re.search(r"Active <span class=\"count\">3</span>", first) and 'Archived <span class="count">1</span>' in first
    )
    assert "active 1" in first and "active 2" in first and "active 3" not in first and "Page 1 of 2" in first
    second = browser.get("/runs?page=2").text
    assert "active 3" in second and "active 1" not in second
    archived = browser.get("/runs?tier=archived").text
    assert "cold one" in archived and "active 1" not in archived and "% saved" not in archived and "−" in archived
    found = browser.get("/runs?q=ACTIVE%202")  # one run matches: it opens
    assert found.status_code == 302 and found.headers["Location"] == f"/runs/{active[1].id}"
    several = browser.get("/runs?q=ACTIVE").text
    assert "active 1" in several and "active 2" in several and "cold one" not in several
    assert "No deleted runs" in browser.get("/runs?tier=deleted").text
    assert str(active[0].id)[:8] in first


@pytest.mark.parametrize(
    ("url", "status", "message"),
    [
        ("/runs?tier=frozen", 400, "tier must be active, archived or deleted"),
        ("/runs?page=0", 400, "page must be a whole number"),
        ("/runs?page=-1", 400, "page must be a whole number"),
        ("/runs?page=abc", 400, "page must be a whole number"),
        ("/runs?page=%C2%B2", 400, "page must be a whole number"),  # "²": isdigit() said yes, int() a 500
        ("/audit?page=%C2%B2", 400, "page must be a whole number"),
        ("/runs?page=%D9%A3", 400, "page must be a whole number"),  # an Arabic-Indic 3
        ("/runs?page=99999", 400, "page must be a whole number"),
        ("/runs?q=" + "x" * 201, 400, "at most 200 characters"),
        ("/runs/not-a-uuid", 400, "not a valid run id"),
        ("/runs/..%2F..%2Fetc%2Fpasswd", 404, "not found"),
        ("/runs/8dafff36-6b15-478a-88fc-19cdbbcfca5f", 404, "no such run"),
        ("/runs/8dafff36-6b15-478a-88fc-19cdbbcfca5f/download", 404, "no such run"),
        ("/tasks/bad$id?job=x", 400, "a task id has only"),
        ("/tasks/no-such-task", 404, "no such task"),
    ],
)
def test_bad_input_gets_a_clear_page(browse, member, url, status, message):
    response = browse(member).get(url)
    assert response.status_code == status
    assert message.lower() in response.text.lower()


def test_a_run_page_shows_the_run_its_history_and_the_actions_its_tier_allows(browse, member, lc, make_run):
    job = make_run(days_ago=10, owner=member.user.id, name="books of today")
    browser = browse(member)
    whole = browser.get(f"/runs/{job.id}").text
    assert "books of today" in whole and f"{job.folder_name}_{job.id}" in whole
    page = whole.split('aria-label="Actions"')[1].split("</section>")[0]  # the actions, not the files' links
    assert ">Archive now<" in page and ">Extend retention<" in page and ">Delete<" in page and ">Confirm<" in page
    assert ">Restore<" not in page and ">Download<" not in page and ">Undelete<" not in page
    assert 'value="hard"' not in page  # members do not choose the strategy
    archival.archive_run(lc, job.id, actor="scheduler")
    page = browser.get(f"/runs/{job.id}").text
    assert ">Restore<" in page and ">Download<" in page and ">Archive now<" not in page
    assert "scheduler" in page and "succeeded" in page and "% saved" in page
    running = make_run(days_ago=0, owner=member.user.id, status="running")
    page = browser.get(f"/runs/{running.id}").text
    assert ">Archive now<" not in page and ">Confirm<" not in page


def test_archive_now_queues_the_task_shows_its_progress_and_a_worker_does_it(
    browse, member, lc, make_run, redis_db, process_env
):
    job = make_run(days_ago=0.2, owner=member.user.id)
    lc.session.commit()
    browser = browse(member)
    fragment = browser.post(f"/runs/{job.id}/archive", data={"reason": "cold now"}, htmx=True)
    assert fragment.status_code == 200 and "Archiving… waiting for a worker" in fragment.text
    task_id = re.search(r"/tasks/([A-Za-z0-9_-]+)\?", fragment.text).group(1)
    queued = Queue(tasks.QUEUE_NAME, connection=redis_db).fetch_job(task_id)
    assert queued.args == (str(job.id), "max", "cold now") and queued.meta["owner"] == str(member.user.id)
    poll = browser.get(f"/tasks/{task_id}?job={job.id}&doing=Archiving", headers={"HX-Request": "true"})
    assert poll.status_code == 200 and 'hx-trigger="every 1s"' in poll.text
    run_burst_worker(process_env, timeout=120)
    done = browser.get(f"/tasks/{task_id}?job={job.id}&doing=Archiving", headers={"HX-Request": "true"})
    assert done.status_code == 204 and done.headers["HX-Redirect"] == f"/runs/{job.id}"
    page = browser.get(f"/runs/{job.id}").text
    assert "Archiving finished." in page and ">archived<" in page and "cold now" in page
    # Without JavaScript the form posts, and the run's page shows the task.
    other = make_run(days_ago=0.2, owner=member.user.id)
    plain = browser.post(f"/runs/{other.id}/archive")
    assert plain.status_code == 302 and f"/runs/{other.id}?task=" in plain.headers["Location"]
    assert "Archiving… waiting for a worker" in browser.get(plain.headers["Location"]).text
    # Another member cannot follow the task.
    assert browse(browse_other(member, lc)).get(f"/tasks/{task_id}?job={job.id}").status_code == 404


def browse_other(member, lc):
    """An account with no rights over ``member``'s tasks."""
    from app.auth.users import create_user
    from tests.support import Account

    user, _password, token = create_user(lc.session, "nina", PASSWORD, admin=False)
    return Account(user, token, None)


def test_actions_are_refused_with_the_reason_when_the_run_is_not_ready(browse, member, admin, lc, make_run):
    running = make_run(days_ago=0, owner=member.user.id, status="running")
    active = make_run(days_ago=1, owner=member.user.id)
    browser = browse(member)
    refused = browser.post(f"/runs/{running.id}/archive")
    assert refused.status_code == 409 and "only finished runs are archived" in refused.text
    htmx = browser.post(f"/runs/{running.id}/archive", htmx=True)
    assert htmx.status_code == 409 and htmx.text.startswith('<p class="error" role="alert">')
    assert browser.post(f"/runs/{active.id}/restore").status_code == 409
    assert browser.post(f"/runs/{active.id}/undelete").status_code == 409
    assert browser.get(f"/runs/{active.id}/download").status_code == 409
    no_reason = browser.post(f"/runs/{active.id}/delete", data={"confirm": "yes"})
    assert no_reason.status_code == 400 and "a reason is required" in no_reason.text
    unconfirmed = browser.post(f"/runs/{active.id}/delete", data={"reason": "gone"})
    assert unconfirmed.status_code == 400 and "confirm the deletion" in unconfirmed.text
    hard = browser.post(f"/runs/{active.id}/delete", data={"reason": "gone", "confirm": "yes", "strategy": "hard"})
    assert hard.status_code == 403 and "only admins choose" in hard.text
    weird = browse(admin).post(f"/runs/{active.id}/delete", data={"reason": "x", "confirm": "yes", "strategy": "burn"})
    assert weird.status_code == 400 and "strategy must be soft or hard" in weird.text
    too_long = browser.post(f"/runs/{active.id}/delete", data={"reason": "x" * 1001, "confirm": "yes"})
    assert too_long.status_code == 400 and "at most 1000 characters" in too_long.text
    lc.session.expire_all()
    assert lc.session.get(Job, active.id).deleted_at is None


def test_delete_queues_the_deletion_and_undelete_brings_the_run_back(
    browse, member, lc, make_run, redis_db, process_env
):
    job = make_run(days_ago=10, owner=member.user.id)
    archival.archive_run(lc, job.id, actor="scheduler")
    lc.session.commit()
    browser = browse(member)
    response = browser.post(f"/runs/{job.id}/delete", data={"reason": "duplicate run", "confirm": "yes"})
    assert response.status_code == 302
    run_burst_worker(process_env, timeout=120)
    lc.session.expire_all()
    deleted = lc.session.get(Job, job.id)
    assert deleted.deleted_at is not None and deleted.deletion_reason == "duplicate run" and deleted.deleted_by == "max"
    page = browser.get(f"/runs/{job.id}").text
    assert ">Undelete<" in page and "Undelete until" in page and "duplicate run" in page
    back = browser.post(f"/runs/{job.id}/undelete", htmx=True)
    assert back.status_code == 204 and back.headers["HX-Redirect"] == f"/runs/{job.id}"
    lc.session.expire_all()
    assert lc.session.get(Job, job.id).deleted_at is None
    assert "The run is back." in browser.get(f"/runs/{job.id}").text


def test_extend_retention_checks_dates_owners_and_records_it(browse, member, other_member, admin, lc, make_run):
    job = make_run(days_ago=1, owner=member.user.id)
    browser = browse(member)
    future = (datetime.now(UTC) + timedelta(days=90)).date().isoformat()
    cases = [
        ({"retain_until": "31/12/2030", "reason": "audit"}, 400, "is not a date"),
        ({"retain_until": "2020-01-01", "reason": "audit"}, 400, "a day still to come"),
        ({"reason": "audit"}, 400, "choose a date"),
        ({"retain_until": future}, 400, "a reason is required"),
    ]
    for data, status, message in cases:
        response = browser.post(f"/runs/{job.id}/retention", data=data)
        assert response.status_code == status and message in response.text, data
    ok = browser.post(f"/runs/{job.id}/retention", data={"retain_until": future, "reason": "audit"})
    assert ok.status_code == 302
    lc.session.expire_all()
    assert lc.session.get(Job, job.id).retain_until.date().isoformat() == future
    assert "Retention extended." in browser.get(f"/runs/{job.id}").text
    forever = browse(admin).post(f"/runs/{job.id}/retention", data={"keep_forever": "yes", "reason": "legal hold"})
    assert forever.status_code == 302
    lc.session.expire_all()
    assert lc.session.get(Job, job.id).keep_forever is True
    assert browse(other_member).post(f"/runs/{job.id}/retention", data={"keep_forever": "yes"}).status_code == 404


def test_download_streams_the_archive_with_its_checksum(browse, member, lc, make_run):
    job = make_run(days_ago=10, owner=member.user.id)
    archival.archive_run(lc, job.id, actor="scheduler")
    archived = archival.load_run(lc, job.id)
    response = browse(member).get(f"/runs/{job.id}/download")
    assert response.status_code == 200 and response.headers["ETag"] == f'"{archived.archive_sha256}"'
    assert response.headers["Content-Disposition"].endswith(f"{job.folder_name}_{job.id}.tar.gz")
    import hashlib

    assert hashlib.sha256(response.data).hexdigest() == archived.archive_sha256
    deletion.delete_run(lc, job.id, actor="test", reason="x", strategy="soft")
    assert browse(member).get(f"/runs/{job.id}/download").status_code == 409


def test_the_storage_page_draws_its_charts_from_the_tables_and_shows_alerts(browse, admin, lc, make_run, monkeypatch):
    import dataclasses
    import json

    from app.models import Alert
    from app.monitoring.snapshots import take_snapshot

    job = make_run(days_ago=10, owner=admin.user.id)
    archival.archive_run(lc, job.id, actor="scheduler")
    browser = browse(admin)  # members are refused the page: its figures are the whole site's
    page = browser.get("/storage").text
    assert "plotly-4.1.1.min.js" in page and loads_from_elsewhere(page) == []
    figures = dict(re.findall(r'id="chart-([a-z-]+)" class="plot" data-figure="([^"]+)"', page))
    assert set(figures) == {"tiers-now", "savings", "success", "deletions"}  # no trend before two snapshots
    success = json.loads(figures["success"].replace("&#34;", '"').replace("&amp;", "&"))
    assert success["layout"]["title"]["text"] == "Archive attempts per day (100.0 % succeeded)"
    assert sum(success["data"][0]["y"]) == 1
    assert "the trend over time appears once there are two snapshots (0 so far)" in page
    now = datetime.now(UTC)
    take_snapshot(lc.session, lc.settings.scraper_data_path, now - timedelta(hours=1))
    take_snapshot(lc.session, lc.settings.scraper_data_path, now)
    lc.session.add(Alert(kind="archive_failed", severity="warning", message="3 archives failed tonight"))
    lc.session.commit()
    from app.web import reports

    low_threshold = dataclasses.replace(lc.settings, storage_alert_percent=1)  # any disk is past 1 %
    monkeypatch.setattr(reports, "settings", lambda: low_threshold)
    page = browser.get("/storage").text
    assert 'id="chart-trend"' in page
    assert "3 archives failed tonight" in page and "% full (alert at 1 %)" in page
    assert '<span class="count alarm" title="open alerts">1 alert</span>' in browser.get("/runs").text


def test_the_storage_page_always_says_how_the_alerts_stand(browse, admin, member, lc, monkeypatch):
    import dataclasses

    from app.models import Alert
    from app.web import reports

    browser = browse(admin)
    monkeypatch.setattr(reports, "settings", lambda: dataclasses.replace(lc.settings, storage_alert_percent=100))
    page = browser.get("/storage").text
    assert "No open alerts. Watched: the disk (alert at 100 %)" in page and "Recently resolved" not in page
    now = datetime.now(UTC)
    lc.session.add(Alert(kind="archive_failed", severity="warning", message="2 archives failed", resolved_at=now))
    lc.session.add(Alert(kind="disk", severity="critical", message="the disk is 97 % full"))
    lc.session.commit()
    monkeypatch.setattr(reports, "settings", lambda: dataclasses.replace(lc.settings, storage_alert_percent=1))
    page = browser.get("/storage").text
    assert '<span class="count alarm">1 open</span>' in page and "No open alerts" not in page
    assert "the disk is 97 % full" in page and "% full (alert at 1 %)" not in page  # the open alert says it once
    resolved = page.split("Recently resolved")[1].split("</details>")[0]
    assert "2 archives failed" in resolved and "the disk is 97 % full" not in resolved
    theirs = browse(member).get("/storage")
    assert theirs.status_code == 200 and "Retention in force" in theirs.text
    assert 'id="alerts-title"' not in theirs.text  # the site's alerts are admins'


def test_the_audit_page_lists_actions_and_deletions_a_user_may_see(browse, member, other_member, admin, lc, make_run):
    mine = make_run(days_ago=10, owner=member.user.id, name="my run")
    theirs = make_run(days_ago=10, owner=other_member.user.id, name="olga's run")
    for job in (mine, theirs):
        archival.archive_run(lc, job.id, actor="scheduler")
    deletion.delete_run(lc, mine.id, actor="max", reason="not needed", strategy="hard")
    page = browse(member).get("/audit").text
    deletions = page.split("Deletions")[1]
    assert "not needed" in deletions and "my run" in deletions and "olga&#39;s run" not in page
    every = browse(admin).get("/audit").text
    assert "olga&#39;s run" in every and "(removed)" in every  # the hard-deleted run's history stays
    only_deletes = browse(admin).get("/audit?action=delete&outcome=succeeded").text
    actions_table = only_deletes.split('id="actions-title"')[1].split("Deletions")[0]
    assert "<td>delete</td>" in actions_table and "<td>archive</td>" not in actions_table
    for bad, message in (("action=explode", "action must be one of"), ("outcome=meh", "outcome must be one of")):
        response = browse(member).get(f"/audit?{bad}")
        assert response.status_code == 400 and message in response.text


def test_the_archive_page_totals_what_was_saved_and_filters_by_start(browse, member, lc, make_run):
    runs = [make_run(days_ago=d, owner=member.user.id, name=f"cold {d}") for d in (10, 20)]
    for job in runs:
        archival.archive_run(lc, job.id, actor="scheduler")
    make_run(days_ago=1, owner=member.user.id, name="warm")
    browser = browse(member)
    page = browser.get("/archive").text
    assert "cold 10" in page and "cold 20" in page and "warm" not in page and "2 gzip" in page
    lc.session.expire_all()
    newer = lc.session.get(Job, runs[0].id)
    day = newer.created_at.date().isoformat()
    one = browser.get(f"/archive?from={day}&to={day}").text
    assert "cold 10" in one and "cold 20" not in one
    for bad, message in (("from=yesterday", "is not a date"), ("from=2026-02-30", "is not a date")):
        response = browser.get(f"/archive?{bad}")
        assert response.status_code == 400 and message in response.text
    backwards = browser.get("/archive?from=2026-05-02&to=2026-05-01")
    assert backwards.status_code == 400 and "ends before it starts" in backwards.text


def test_the_api_accepts_the_dashboard_session_with_csrf_for_changes(browse, member, other_member, lc, make_run):
    mine = make_run(days_ago=1, owner=member.user.id, name="mine")
    make_run(days_ago=1, owner=other_member.user.id, name="theirs")
    lc.session.commit()
    browser = browse(member)
    listed = browser.get("/api/scraper/jobs")
    assert listed.status_code == 200 and [item["name"] for item in listed.json["items"]] == ["mine"]
    url = f"/api/scraper/jobs/{mine.id}/archive"
    no_token = browser._request("post", url, json={})
    assert no_token.status_code == 403 and no_token.json["error"]["code"] == "csrf"
    forged = browser._request("post", url, json={}, headers={"X-CSRFToken": "forged"})
    assert forged.status_code == 403
    accepted = browser._request("post", url, json={}, headers={"X-CSRFToken": browser.token})
    assert accepted.status_code == 202 and accepted.json["status"] == "queued"
    browser.post("/logout")
    assert browser.get("/api/scraper/jobs").status_code == 401
    assert member.get("/api/scraper/jobs").status_code == 200  # tokens work as before, with no CSRF header


def test_an_archived_run_lists_its_files_and_opens_one_without_restoring(browse, member, lc, make_run, monkeypatch):
    from app.web import runs as pages

    job = make_run(days_ago=10, owner=member.user.id)
    archival.archive_run(lc, job.id, actor="scheduler")
    browser = browse(member)
    page = browser.get(f"/runs/{job.id}").text
    assert 'Files in the archive <span class="count">4</span>' in page
    link = f"/runs/{job.id}/files/logs/run.log"
    assert f'href="{link}"' in page and f'href="/runs/{job.id}/raw/logs/run.log" download' in page
    opened = browser.get(f"/runs/{job.id}/raw/logs/run.log")  # its bytes, out of the archive
    assert opened.status_code == 200 and opened.data == b"INFO fetched page\n" * 300
    monkeypatch.setattr(pages, "MEMBERS_SHOWN", 2)
    page = browser.get(f"/runs/{job.id}").text
    assert "The first 2 are listed" in page and page.count(f"/runs/{job.id}/files/") == 2
    assert f"/api/scraper/jobs/{job.id}/archive/files" in page  # the API lists them all
    active = make_run(days_ago=1, owner=member.user.id)
    page = browser.get(f"/runs/{active.id}").text
    assert "Files in the archive" not in page and 'Files in the run folder <span class="count">4</span>' in page


def test_the_run_page_says_which_policy_keeps_the_run_and_a_hold_hides_delete(browse, admin, lc, make_run):
    from app.lifecycle import policies

    job = make_run(days_ago=10, owner=admin.user.id)
    browser = browse(admin)
    page = browser.get(f"/runs/{job.id}").text
    assert (
        "archived 7 days after it finished (ARCHIVE_AFTER_DAYS): due now" in page
        and "<summary>Delete</summary>" in page
    )
    for fields in (
        {"name": "keep one", "scraper_pattern": "books-*", "archive_after_days": 1, "keep_last": 1},
        {"name": "litigation", "scraper_pattern": "*", "archive_after_days": 1, "legal_hold": True},
    ):
        policies.add_policy(
            lc.session, policies.read_fields(fields, partial=False), actor="ada", reason="r", now=lc.now()
        )
    lc.session.commit()
    page = browser.get(f"/runs/{job.id}").text
    assert "held: legal hold of policy &#39;litigation&#39;; kept: newest 1 of books-toscrape" in page
    assert "keep one</a>" in page and "<summary>Delete</summary>" not in page
    refused = browser.post(f"/runs/{job.id}/delete", data={"reason": "old", "confirm": "yes"})
    assert refused.status_code == 409 and "litigation" in refused.text
