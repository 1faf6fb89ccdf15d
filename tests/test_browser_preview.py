"""A run's files seen in Chromium under the dashboard's CSP (issue 13): JSON folded, a log searched as
one types, a screenshot and an invoice shown as they are, with no console error or CSP refusal."""

from tests.support import log_in, shot, watch
from tests.test_accessibility import audit
from tests.test_browser import PASSWORD, pytestmark  # noqa: F401 (pytestmark: Chromium or skip)
from tests.test_preview import FILES


def test_an_admin_previews_an_archived_runs_files(live_server, page, lc, admin, make_run):
    from playwright.sync_api import expect

    from app.lifecycle import archival

    job = make_run(FILES, days_ago=10, owner=admin.user.id, name="Book catalogue of Monday")
    archival.archive_run(lc, job.id, actor="scheduler")
    lc.session.commit()
    complaints, dialogs = watch(page)
    log_in(page, live_server + f"/runs/{job.id}")
    expect(page.get_by_role("heading", name="Files in the archive")).to_be_visible()

    page.get_by_role("link", name="data/items.json", exact=True).click()
    expect(page.get_by_text("[ 2 items ]")).to_be_visible()
    page.get_by_text("[ 2 items ]").click()  # folds the array
    expect(page.get_by_text("A <b>bold</b> book", exact=False)).to_be_hidden()
    assert audit(page) == []
    shot(page, "preview-1-json")

    page.goto(live_server + f"/runs/{job.id}/files/logs/run.log")
    expect(page.get_by_text("The last 500 of 2,000 lines")).to_be_visible()
    assert page.evaluate("(() => { const p = document.querySelector('pre.lines'); return p.scrollTop > 0; })()")
    page.get_by_label("Find lines containing").fill("error")
    expect(page.get_by_text("20 lines of 2,000 contain “error”")).to_be_visible()  # swapped in as one types
    assert audit(page) == []
    shot(page, "preview-2-log-search")

    page.goto(live_server + f"/runs/{job.id}/files/screenshots/page-00001.png")
    image = page.get_by_role("img", name="screenshots/page-00001.png")
    expect(image).to_be_visible()
    assert page.evaluate("document.querySelector('img.member-image').naturalWidth") == 800  # a real PNG, drawn
    shot(page, "preview-3-image")

    page.goto(live_server + f"/runs/{job.id}/files/pdfs/invoice.pdf")
    frame = page.locator("iframe.member-pdf")
    expect(frame).to_be_visible()
    page.wait_for_timeout(2000)  # the viewer draws the page after it loads
    shot(page, "preview-4-pdf")

    page.goto(live_server + f"/runs/{job.id}/files/pages/evil.html")
    expect(page.get_by_text("<script>alert('xss')</script>", exact=False)).to_be_visible()  # as text
    assert dialogs == []  # nothing it holds ran
    page.goto(live_server + f"/runs/{job.id}/files/blobs/data.bin")
    expect(page.locator("table.hex")).to_be_visible()
    shot(page, "preview-5-hex")
    assert [c for c in complaints if "favicon" not in c] == []
