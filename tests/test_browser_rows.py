"""One click from every list, in Chromium under the dashboard's CSP: a row's Archive now updates the
row in place when the task ends; selected rows are extended in one bulk action (issue 13)."""

from tests.support import log_in, shot, watch
from tests.test_browser import PASSWORD, pytestmark  # noqa: F401 (pytestmark: Chromium or skip)


def test_an_admin_archives_a_row_in_place_and_extends_selected_rows_at_once(live_server, page, lc, admin, make_run):
    from playwright.sync_api import expect

    from app.lifecycle.runs import load_run

    first = make_run(days_ago=3, owner=admin.user.id, name="Book catalogue of Monday")
    second = make_run(days_ago=2, owner=admin.user.id, name="Book catalogue of Tuesday")
    third = make_run(days_ago=1, owner=admin.user.id, name="Book catalogue of Wednesday")
    lc.session.commit()
    complaints, dialogs = watch(page)

    log_in(page, live_server + "/runs")
    expect(page.get_by_role("heading", name="Runs")).to_be_visible()
    shot(page, "rows-1-list")

    row = page.locator(f"#row-{first.id}")
    row.get_by_role("button", name="Archive now: Book catalogue of Monday").click()
    expect(row.get_by_role("status")).to_contain_text("Archiving finished.")  # the row, swapped when the task ended
    expect(row.get_by_role("link", name="archived")).to_be_visible()
    expect(row.get_by_role("button", name="Restore Book catalogue of Monday")).to_be_visible()
    assert page.url == live_server + "/runs"  # no page load
    shot(page, "rows-2-archived-in-place")

    # A row's Extend opens its own small form, its fields named for the run.
    page.locator(f"#row-{third.id}").get_by_text("Extend", exact=True).click()
    expect(page.get_by_label("Reason for extending").first).to_be_visible()

    page.get_by_label("Select Book catalogue of Tuesday").check()
    page.get_by_label("Select Book catalogue of Wednesday").check()
    expect(page.locator("#selected-count")).to_have_text("2")
    page.get_by_label("Action on the selected runs").select_option("extend")
    expect(page.get_by_label("Confirm the deletion")).to_be_hidden()  # only the chosen action's fields
    page.locator("#bulk").get_by_label("forever").check()
    page.get_by_label("Reason for the selected runs").fill("the quarterly review")
    shot(page, "rows-3-selected")
    page.get_by_role("button", name="Apply to selected").click()
    expect(page.get_by_role("heading", name="Extend the selected runs' retention")).to_be_visible()
    expect(page.get_by_text("Finished: 2 done.")).to_be_visible()
    shot(page, "rows-4-bulk-done")
    assert load_run(lc, second.id).keep_forever and load_run(lc, third.id).keep_forever
    assert not load_run(lc, first.id).keep_forever

    page.goto(live_server + "/runs")
    page.get_by_label("Select every run on this page").check()
    expect(page.locator("#selected-count")).to_have_text("2")
    assert dialogs == [] and complaints == []


def test_pasting_an_archived_runs_id_finds_it_as_one_types_and_enter_opens_it(live_server, page, lc, admin, make_run):
    from playwright.sync_api import expect

    from app.lifecycle import archival

    make_run(days_ago=1, owner=admin.user.id, name="Book catalogue of Monday")
    cold = make_run(days_ago=10, owner=admin.user.id, name="Quotes of last month")
    archival.archive_run(lc, cold.id, actor="scheduler")
    lc.session.commit()
    complaints, dialogs = watch(page)
    log_in(page, live_server + "/runs")
    expect(page.get_by_role("link", name="Book catalogue of Monday")).to_be_visible()

    page.evaluate("window.notReloaded = true")
    page.get_by_role("searchbox").fill(str(cold.id)[:8])  # the start of its id, as the lists show it
    expect(page.get_by_role("link", name="Quotes of last month", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="Archived 1")).to_have_attribute("aria-current", "page")
    expect(page.get_by_text("One run matches")).to_be_visible()
    assert page.evaluate("window.notReloaded === true")  # the list was swapped in, the page stayed
    expect(page.get_by_role("searchbox")).to_be_focused()  # typing goes on
    shot(page, "search-1-as-you-type")
    page.get_by_role("searchbox").press("Enter")
    expect(page.get_by_role("heading", name="Quotes of last month")).to_be_visible()
    assert page.url == live_server + f"/runs/{cold.id}"
    assert dialogs == [] and complaints == []
