"""Keyboard and screen readers (issue 13): an axe-core audit of every dashboard page in Chromium.

axe-core 4.14.1 is vendored in tests/vendor (``npm pack axe-core@4.14.1``; MPL-2.0, its licence
beside it) and evaluated in the page through the DevTools protocol, which the page's CSP does not
govern. WCAG 2.x A and AA rules; a serious or critical violation fails the test, named with the
elements it found.
"""

from pathlib import Path

from tests.support import add_policy, log_in, one_in_each_tier, shot
from tests.test_browser import PASSWORD, pytestmark  # noqa: F401 (pytestmark: Chromium or skip)

AXE = (Path(__file__).parent / "vendor" / "axe-4.14.1.min.js").read_text()
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def audit(page) -> list[str]:
    """The serious and critical violations axe finds in the page as it is now."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE)
    found = page.evaluate(
        "(tags) => axe.run(document, {runOnly: {type: 'tag', values: tags}}).then((r) => r.violations)", TAGS
    )
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — " + "; ".join(node["target"][0] for node in v["nodes"][:5])
        for v in found
        if v["impact"] in ("serious", "critical")
    ]


def test_every_dashboard_page_passes_an_axe_audit(live_server, page, lc, admin, make_run):
    from playwright.sync_api import expect

    names = ("Book catalogue of Monday", "Quotes of last week", "Prices nobody needs")
    active, archived, trashed = one_in_each_tier(lc, make_run, admin.user.id, names)
    policy = add_policy(lc, name="books", scraper_pattern="books-*", archive_after_days=7)

    page.goto(live_server + "/login")
    assert audit(page) == [], "/login"
    log_in(page, live_server + "/login")
    expect(page.get_by_role("heading", name="Runs")).to_be_visible()

    pages = [
        "/runs",
        "/runs?tier=archived",
        "/runs?tier=deleted",
        "/runs?q=Book",
        f"/runs/{active.id}",
        f"/runs/{archived.id}",
        f"/runs/{trashed.id}",
        "/archive",
        "/audit",
        "/storage",
        "/storage/forecast",
        "/storage/check",
        "/scrapers",
        "/policies",
        f"/policies/{policy.id}",
        "/password",
        "/api",
    ]
    failures = {}
    for path in pages:
        page.goto(live_server + path)
        page.wait_for_load_state("networkidle")  # the storage page's forecast, loaded after it
        found = audit(page)
        if found:
            failures[path] = found
    # The controls that open: a row's Extend and Delete forms, a run page's two reason fields.
    page.goto(live_server + "/runs")
    page.locator(f"#row-{active.id}").get_by_text("Extend", exact=True).click()
    page.locator(f"#row-{active.id}").get_by_text("Delete", exact=True).click()
    if found := audit(page):
        failures["/runs, a row's forms open"] = found
    page.goto(live_server + f"/runs/{active.id}")
    page.get_by_text("Extend retention", exact=True).first.click()
    page.locator("summary", has_text="Delete").click()
    expect(page.get_by_label("Reason for extending the retention")).to_be_visible()
    expect(page.get_by_label("Reason for deleting the run")).to_be_visible()
    if found := audit(page):
        failures["/runs/<id>, forms open"] = found
    shot(page, "a11y-run-forms-open")
    assert failures == {}


def test_the_runs_list_works_from_the_keyboard_alone(live_server, page, lc, admin, make_run):
    from playwright.sync_api import expect

    make_run(days_ago=1, owner=admin.user.id, name="Book catalogue of Monday")
    lc.session.commit()
    page.goto(live_server + "/login")
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Runs")).to_be_visible()
    names = []
    for _ in range(60):  # Tab through the page: every control is reached, named and shows its focus
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement === document.body"):
            break  # past the last control
        focused = page.evaluate(
            """() => {
                const el = document.activeElement;
                const style = getComputedStyle(el);
                const name = el.getAttribute('aria-label') || el.textContent.trim() || el.name || el.id;
                return {tag: el.tagName, name, outline: style.outlineStyle !== 'none' && style.outlineWidth !== '0px'};
            }"""
        )
        assert focused["name"], focused
        assert focused["outline"], f"no visible focus on {focused}"
        names.append(focused["name"])
    for expected in (
        "Runs",
        "Select Book catalogue of Monday",
        "Archive now: Book catalogue of Monday",
        "Apply to selected",
    ):
        assert expected in names, names
