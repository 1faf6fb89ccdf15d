"""The dashboard in a real browser: headless Chromium (Playwright) against gunicorn and a real RQ worker.

Controls are found by their visible, accessible names (SPEC §7), as a person finds them.
Screenshots of each step are written to ``$AGAR_SCREENSHOTS`` when it is set, to look at.
"""

import os

import pytest

from tests.support import CHROMIUM, PASSWORD, shot, watch

pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM), reason="needs Debian's chromium (apt-get install chromium; .ci/run does)"
)


def test_an_admin_logs_in_archives_restores_deletes_and_undeletes_a_run(live_server, page, lc, admin, make_run):
    from playwright.sync_api import expect

    job = make_run(days_ago=1, owner=admin.user.id, name="Book catalogue of Monday")
    lc.session.commit()

    page.goto(live_server + "/")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong username or password.")
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Runs")).to_be_visible()
    shot(page, "1-runs")

    page.get_by_role("link", name="Book catalogue of Monday").click()
    expect(page.locator(".tier")).to_have_text("active")
    page.get_by_role("button", name="Archive now").click()
    expect(page.get_by_role("status").filter(has_text="Archiving finished.")).to_be_visible()
    expect(page.locator(".tier")).to_have_text("archived")
    expect(page.get_by_role("link", name="Download", exact=True)).to_be_visible()
    shot(page, "2-archived")

    page.get_by_role("button", name="Restore").click()
    expect(page.get_by_role("status").filter(has_text="Restoring finished.")).to_be_visible()
    expect(page.get_by_text("Working copy")).to_be_visible()

    page.get_by_text("Extend retention", exact=True).first.click()
    page.get_by_label("Keep forever").check()
    page.locator("#extend-reason").fill("legal hold")
    page.get_by_role("button", name="Extend retention").click()
    expect(page.get_by_role("status").filter(has_text="Retention extended.")).to_be_visible()
    expect(page.get_by_text("kept forever")).to_be_visible()

    page.locator("summary", has_text="Delete").click()
    page.get_by_role("button", name="Confirm").click()  # no reason yet: the browser asks for one
    expect(page.locator(".tier")).to_have_text("archived")
    page.locator("#delete-reason").fill("duplicate of Tuesday's run")
    shot(page, "3-delete")
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("status").filter(has_text="Deleting finished.")).to_be_visible()
    expect(page.locator(".tier")).to_have_text("deleted")
    expect(page.get_by_text("duplicate of Tuesday's run").first).to_be_visible()
    shot(page, "4-deleted")

    page.get_by_role("button", name="Undelete").click()
    expect(page.get_by_role("status").filter(has_text="The run is back.")).to_be_visible()
    expect(page.locator(".tier")).to_have_text("archived")
    history = page.locator("table.events")
    for action in ("archive", "restore", "extend", "delete", "undelete"):
        expect(history.get_by_role("cell", name=action, exact=True).first).to_be_visible()
    shot(page, "5-history")

    page.get_by_role("link", name="Storage").click()
    expect(page.locator(".plot .main-svg").first).to_be_visible()  # plotly.js, served by us, drew the charts
    assert page.locator(".plot").count() == 4
    shot(page, "7-storage")
    page.get_by_role("link", name="Audit").click()
    expect(page.get_by_role("cell", name="duplicate of Tuesday's run").first).to_be_visible()
    lc.session.expire_all()
    assert lc.session.get(type(job), job.id).deleted_at is None


def test_a_member_sees_only_their_runs_and_a_refusal_says_why(live_server, page, lc, member, other_member, make_run):
    from playwright.sync_api import expect

    running = make_run(days_ago=0, owner=member.user.id, status="running", name="Still scraping")
    make_run(days_ago=1, owner=other_member.user.id, name="Olga's run")
    lc.session.commit()
    page.goto(live_server + f"/runs/{running.id}")
    page.get_by_label("Username").fill("max")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Still scraping")).to_be_visible()  # back where it was going
    expect(page.get_by_role("button", name="Archive now")).to_have_count(0)  # not finished yet
    page.goto(live_server + "/runs")
    expect(page.get_by_role("link", name="Still scraping")).to_be_visible()
    expect(page.get_by_text("Olga's run")).to_have_count(0)
    page.get_by_role("searchbox").fill("nothing like this")
    expect(page.get_by_text("No run matches “nothing like this” in any tier")).to_be_visible()
    shot(page, "6-member-search")


def test_pages_draw_and_act_under_the_content_security_policy_and_a_members_html_only_downloads(
    live_server, page, lc, admin, member, make_run
):
    from playwright.sync_api import expect

    from app.lifecycle import archival

    hostile = make_run(
        {"page.html": "<script>alert(document.cookie)</script>", "shot.png": b"\x89PNG\r\n\x1a\n"},
        days_ago=3,
        owner=member.user.id,
        name="A member's pages",
    )
    archival.archive_run(lc, hostile.id, actor="scheduler")
    make_run(days_ago=1, owner=admin.user.id, name="Book catalogue of Monday")
    lc.session.commit()
    complaints, dialogs = watch(page)

    page.goto(live_server + "/login")
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("searchbox").fill("Monday")  # HTMX swaps the table in place
    expect(page.get_by_role("link", name="A member's pages")).to_have_count(0)
    expect(page.get_by_role("link", name="Book catalogue of Monday")).to_be_visible()

    page.goto(live_server + f"/runs/{hostile.id}")
    expect(page.locator(".tier")).to_have_text("archived")
    with page.expect_download() as download:  # the admin's browser saves the member's page, never shows it
        page.get_by_role("link", name="Download page.html").click()
    assert download.value.suggested_filename == "page.html"
    assert page.url == live_server + f"/runs/{hostile.id}"
    page.get_by_role("link", name="page.html", exact=True).click()  # its preview: the markup as text
    expect(page.get_by_text("<script>alert(document.cookie)</script>")).to_be_visible()

    page.goto(live_server + "/storage")
    expect(page.locator(".plot .main-svg").first).to_be_visible()  # drawn by storage-charts.js, not inline script
    expect(page.locator("#chart-forecast .main-svg").first).to_be_visible()  # the forecast, loaded after the page
    assert page.locator(".plot").count() == 5 and page.locator(".plot .main-svg").count() >= 5
    page.get_by_role("link", name="90 days").click()  # HTMX swaps the forecast in place, its chart drawn again
    expect(page.get_by_role("link", name="90 days")).to_have_attribute("aria-current", "true")
    expect(page.locator("#chart-forecast .main-svg").first).to_be_visible()
    expect(page.get_by_text("for the next 90 days").or_(page.get_by_text("the alert line"))).not_to_have_count(0)
    assert page.url == live_server + "/storage"
    shot(page, "8-storage-under-csp")
    page.get_by_role("link", name="API", exact=True).click()  # the OpenAPI document, rendered by us
    expect(page.get_by_role("heading", name="Agar Run Manager API")).to_be_visible()
    expect(page.get_by_role("link", name="API", exact=True)).to_have_attribute("aria-current", "page")
    expect(page.locator("#schema-Job")).to_have_text("Job")
    shot(page, "9-api-docs-under-csp")
    assert dialogs == []
    assert [text for text in complaints if "Content Security Policy" in text or "Refused" in text] == []
    assert complaints == []


def test_an_admin_confirms_the_deletions_a_cleanup_pass_held(live_server, page, lc, admin, make_run):
    from playwright.sync_api import expect

    from app.lifecycle import archival, passes
    from app.lifecycle.deletion_limits import held_alert, pending_confirmation

    for days in (35, 34, 33):
        job = make_run(days_ago=days, owner=admin.user.id)
        archival.archive_run(lc, job.id, actor="scheduler")
    passes.cleanup_old_runs(lc)  # 3 archived runs, all due: a fifth of them rounds to one a pass, two held

    page.goto(live_server + "/storage")
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert").filter(has_text="deletion_limit")).to_be_visible()
    confirm = page.get_by_role("button", name="Confirm deletions")
    confirm.click()  # no reason yet: the browser asks for one
    expect(confirm).to_be_visible()
    page.get_by_label("Reason").fill("the backlog of a new install")
    shot(page, "6-deletions-held")
    confirm.click()
    expect(page.get_by_role("status").filter(has_text="Deletions confirmed by ada:")).to_be_visible()
    expect(confirm).to_have_count(0)
    shot(page, "7-deletions-confirmed")
    lc.session.expire_all()
    assert held_alert(lc.session) is None
    assert pending_confirmation(lc.session).data["reason"] == "the backlog of a new install"
