"""Run patterns per scraper: the figures in SQL, the API, the Scrapers page, who sees what."""

import json
import re
import statistics
from datetime import timedelta

import pytest
from sqlalchemy import update

from app.api.schemas import SCRAPER
from app.lifecycle import archival, deletion
from app.lifecycle.runs import load_run
from app.models import Job, utcnow
from app.monitoring.scrapers import median_per, scraper_stats
from tests.support import loads_from_elsewhere
from tests.test_web import Browser


def sized(lc, job, size):
    """Give a run the folder size its scraper reported (the demo's folders are not needed here)."""
    lc.session.execute(update(Job).where(Job.id == job.id).values(size_bytes=size))
    lc.session.commit()
    return job


@pytest.fixture
def patterns(lc, make_run, admin, member):
    """Two scrapers of the admin's, one of the member's; runs inside and outside a 7-day window."""
    mine, theirs = admin.user.id, member.user.id
    books = [
        sized(lc, make_run(days_ago=days, status=status, scraper="books", owner=mine), size)
        for days, status, size in (
            (0.2, "completed", 100),
            (1.2, "failed", 300),
            (2.2, "completed", 200),
            (3.2, "completed", 1000),
            (3.3, "running", None),
            (20, "completed", 5000),  # outside the window: stored bytes only
        )
    ]
    quotes = [
        sized(lc, make_run(days_ago=days, status=status, scraper="quotes", owner=mine), size)
        for days, status, size in ((1.2, "completed", 5), (1.3, "cancelled", 1), (4.2, "failed", 3))
    ]
    prices = [
        sized(lc, make_run(days_ago=days, scraper="prices", owner=theirs), size) for days, size in ((2.2, 40), (9, 60))
    ]
    # One of books archived (the old one), one trashed; one of prices archived and restored.
    archival.archive_run(lc, books[5].id, actor="t")
    archival.archive_run(lc, quotes[2].id, actor="t")
    deletion.delete_run(lc, quotes[2].id, actor="t", reason="dup", strategy="soft")
    archival.archive_run(lc, prices[1].id, actor="t")
    archival.restore_run(lc, prices[1].id, actor="t")
    return {
        name: [load_run(lc, job.id) for job in jobs]
        for name, jobs in (("books", books), ("quotes", quotes), ("prices", prices))
    }


def test_each_scraper_has_its_runs_per_day_failure_rate_median_size_and_bytes_per_tier(admin, lc, patterns):
    body = admin.get("/api/scraper/scrapers/stats?days=7").json
    assert body["days"] == 7 and body["since"] == (utcnow() - timedelta(days=6)).date().isoformat()
    figures = {entry["scraper"]: entry for entry in body["scrapers"]}
    assert list(figures) == ["books", "prices", "quotes"]  # by name
    assert all(tuple(entry) == SCRAPER.keys for entry in body["scrapers"])  # the documented shape, exactly
    books, quotes, prices = figures["books"], figures["quotes"], figures["prices"]
    assert (books["runs"], books["finished"], books["failed"]) == (5, 4, 1)  # the running one has no outcome
    assert books["runs_per_day"] == round(5 / 7, 3) and books["failure_rate"] == 0.25
    assert books["median_size_bytes"] == statistics.median([100, 300, 200, 1000]) == 250  # an even count
    assert (quotes["runs"], quotes["failed"], quotes["failure_rate"]) == (3, 1, round(1 / 3, 4))
    # The trashed run finished in the window: its size (archiving measured its folder) is in the median.
    trashed_size = patterns["quotes"][2].size_bytes
    assert trashed_size > 5 and quotes["median_size_bytes"] == statistics.median([5, 1, trashed_size]) == 5
    assert (prices["runs"], prices["median_size_bytes"]) == (1, 40)  # the 9-day-old run is outside the window
    old_books, trashed, restored = patterns["books"][5], patterns["quotes"][2], patterns["prices"][1]
    assert books["tiers"] == {
        "active": {"runs": 5, "bytes": 100 + 300 + 200 + 1000},
        "archived": {"runs": 1, "bytes": old_books.archive_size_bytes},
        "trash": {"runs": 0, "bytes": 0},
        "restored": {"runs": 0, "bytes": 0},
    }
    assert quotes["tiers"]["trash"] == {"runs": 1, "bytes": trashed.archive_size_bytes}
    assert quotes["tiers"]["active"] == {"runs": 2, "bytes": 6}
    assert prices["tiers"]["restored"] == {"runs": 1, "bytes": restored.size_bytes}
    assert prices["tiers"]["archived"] == {"runs": 1, "bytes": restored.archive_size_bytes}
    # Per UTC day of the window, oldest first: every day present, counted by the run's start.
    assert [day["day"] for day in books["per_day"]][0] == body["since"] and len(books["per_day"]) == 7
    by_day = {}
    for job in patterns["books"][:5]:
        by_day.setdefault(job.created_at.date().isoformat(), [0, 0])
        by_day[job.created_at.date().isoformat()][0] += 1
        by_day[job.created_at.date().isoformat()][1] += job.status == "failed"
    assert {d["day"]: [d["runs"], d["failed"]] for d in books["per_day"] if d["runs"]} == by_day
    assert sum(d["runs"] for d in books["per_day"]) == 5
    # A wider window takes the older runs in; the bytes per tier do not depend on it.
    wide = {entry["scraper"]: entry for entry in admin.get("/api/scraper/scrapers/stats?days=30").json["scrapers"]}
    assert wide["books"]["runs"] == 6 and wide["books"]["median_size_bytes"] == 300
    assert wide["books"]["tiers"] == books["tiers"]


def test_a_member_sees_the_scrapers_of_their_own_runs_only(member, admin, lc, patterns, make_run):
    make_run(days_ago=1, scraper="books", owner=member.user.id)  # a scraper the admin uses too
    body = member.get("/api/scraper/scrapers/stats").json
    figures = {entry["scraper"]: entry for entry in body["scrapers"]}
    assert sorted(figures) == ["books", "prices"]
    assert figures["books"]["runs"] == 1 and figures["books"]["tiers"]["active"]["runs"] == 1  # theirs alone
    assert figures["prices"]["runs"] == 2 and figures["prices"]["tiers"]["restored"]["runs"] == 1


def test_the_median_is_the_middle_value_or_the_mean_of_the_middle_two_on_every_database(lc, make_run):
    sizes = {"even": [7, 1, 1000, 3, 5, 9], "odd": [40, 10, 30], "one": [12], "none": [None]}
    for scraper, values in sizes.items():
        for value in values:
            sized(lc, make_run(days_ago=1, scraper=scraper), value)
    medians = median_per(lc.session, Job.scraper, Job.size_bytes, Job.status == "completed")
    assert medians == {"even": 6.0, "odd": 30.0, "one": 12.0}  # a scraper without sizes has no median
    assert all(isinstance(value, float) for value in medians.values())


def test_a_scraper_long_gone_from_the_disk_and_the_window_is_not_listed(lc, make_run, admin, clock):
    old = make_run(days_ago=60, scraper="retired")
    archival.archive_run(lc, old.id, actor="t")
    deletion.delete_run(lc, old.id, actor="t", reason="old", strategy="hard")
    make_run(days_ago=60, scraper="dormant")  # still on disk: listed with no runs in the window
    figures = scraper_stats(lc.session, admin.user, days=30, now=utcnow())["scrapers"]
    assert [(entry["scraper"], entry["runs"], entry["failure_rate"]) for entry in figures] == [("dormant", 0, None)]


@pytest.mark.parametrize("days", ["0", "366", "-1", "x", "1.5", "7\x00"])
def test_a_bad_window_is_a_400_at_both_doors(app, admin, days):
    response = admin.get("/api/scraper/scrapers/stats", query_string={"days": days})
    assert response.status_code == 400 and response.json["error"]["message"]
    browser = Browser(app.test_client())
    browser.login("ada")
    assert browser.get("/scrapers", query_string={"days": days}).status_code == 400


def test_the_scrapers_page_shows_the_table_and_charts_and_is_linked_from_every_page(app, admin, member, patterns):
    browser = Browser(app.test_client())
    assert browser.login("ada").status_code == 302
    assert '<a href="/scrapers" >Scrapers</a>' in browser.get("/runs").text
    page = browser.get("/scrapers?days=7").text
    assert 'href="/scrapers" aria-current="page">Scrapers</a>' in page
    assert "plotly-4.1.1.min.js" in page and loads_from_elsewhere(page) == []
    rows = re.findall(r'<tr>\s*<td><a href="/runs\?q=([a-z]+)">', page)
    assert rows == ["books", "prices", "quotes"]
    assert '25.0 % <span class="sub">1 of 4</span>' in page  # books' failure rate
    figures = {
        key: json.loads(value.replace("&#34;", '"').replace("&amp;", "&"))
        for key, value in re.findall(r'id="chart-([a-z-]+)" class="plot" data-figure="([^"]+)"', page)
    }
    assert set(figures) == {"runs-per-day", "failure-rate", "median-size", "tiers"}
    assert [trace["name"] for trace in figures["runs-per-day"]["data"]] == ["books", "prices", "quotes"]
    assert sum(sum(trace["y"]) for trace in figures["runs-per-day"]["data"]) == 5 + 1 + 3
    assert [trace["name"] for trace in figures["tiers"]["data"]] == ["Active", "Archived", "Trash", "Restored"]
    assert figures["median-size"]["data"][0]["x"] == ["books", "prices", "quotes"]
    mine = Browser(app.test_client())
    assert mine.login("max").status_code == 302
    theirs = mine.get("/scrapers").text
    assert re.findall(r'<td><a href="/runs\?q=([a-z]+)">', theirs) == ["prices"] and "of your runs" in theirs
