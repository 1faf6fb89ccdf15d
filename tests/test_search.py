"""Search everywhere (issue 13): the runs search finds runs in every tier by name, scraper, folder or
id — a full or partial id with or without dashes, a folder or a path pasted from a shell — counts the
matches per tier, and opens the run when exactly one matches."""

import pytest

from app.lifecycle import archival
from app.lifecycle.access import SYSTEM
from app.lifecycle.naming import run_folder_name
from app.lifecycle.queries import TIERS, runs_in_tier
from app.lifecycle.runs import id_text_forms
from app.models import Job
from tests.support import one_in_each_tier


@pytest.fixture
def three(lc, make_run, member):
    """A run in each tier, all the member's."""
    names = ("Book catalogue of Monday", "Quotes 100%_done", "Prices of May")
    return one_in_each_tier(lc, make_run, member.user.id, names, scraper="quotes-toscrape")


def found(lc, text):
    """The runs the text finds, in every tier."""
    return {
        job_id
        for tier in TIERS
        for job_id in lc.session.scalars(runs_in_tier(SYSTEM, tier, text=text).with_only_columns(Job.id))
    }


def test_an_id_a_folder_or_a_path_finds_its_run_in_any_tier(lc, three):
    active, archived, trashed = three
    whole = str(archived.id)
    folder = run_folder_name(archived.folder_name, archived.id)
    for text in (
        whole,
        whole.upper(),
        whole.replace("-", ""),  # as SQLite writes it
        whole[:8],  # the start the lists show
        whole[:13],  # a start with a dash in it
        whole[:13].replace("-", ""),
        folder,  # a folder pasted from a shell
        f"/srv/scraper_data/jobs/{folder}/",  # a path ending with it
        f"{archived.folder_name}_{whole[:8]}…",  # the folder as the lists show it
        f"{archived.folder_name}_{whole[:8]}",
    ):
        assert found(lc, text) == {archived.id}, text
    assert found(lc, str(trashed.id)) == {trashed.id}
    assert found(lc, "catalogue") == {active.id}  # any case, any part of the name
    assert found(lc, "PRICE-WATCH") == {trashed.id}  # the scraper
    assert found(lc, "100%_") == {archived.id} and found(lc, "100x") == set()  # % and _ are themselves
    assert found(lc, "0000000-0000-4000-8000-000000000000") == set()


def test_the_runs_page_counts_matches_per_tier_and_shows_a_tier_that_has_them(browse, member, lc, make_run, three):
    active, archived, trashed = three
    another = make_run(days_ago=11, owner=member.user.id, name="Quotes 100 again")
    archival.archive_run(lc, another.id, actor="scheduler")
    browser = browse(member)
    page = browser.get("/runs?q=o").text  # all three names have an "o"
    assert 'Active <span class="count">1</span>' in page
    assert 'Archived <span class="count">2</span>' in page and 'Deleted <span class="count">1</span>' in page
    only_archived = browser.get("/runs?q=quotes%20100").text  # asked on Active, two archived runs match
    assert "No active runs match “quotes 100”; showing the archived runs that do." in only_archived
    assert 'Active <span class="count">0</span>' in only_archived


def test_one_match_opens_the_run_and_typing_gets_the_list_alone(browse, member, other_member, lc, make_run, three):
    active, archived, trashed = three
    browser = browse(member)
    jump = browser.get(f"/runs?tier=active&q={archived.id}")  # pasted on Active: the archived run opens
    assert jump.status_code == 302 and jump.headers["Location"] == f"/runs/{archived.id}"
    assert "HX-Request" in jump.headers.get("Vary", "")
    typing = browser.get(f"/runs?tier=active&q={str(archived.id)[:8]}", headers={"HX-Request": "true"})
    assert typing.status_code == 200 and "HX-Request" in typing.headers["Vary"]
    assert "<html" not in typing.text and typing.text.lstrip().startswith('<div id="runs">')
    assert "One run matches “" + str(archived.id)[:8] + "” (in Archived): press Enter to open it." in typing.text
    assert 'aria-current="page">\n    Archived' in typing.text  # the tier that has it
    assert f'id="row-{archived.id}"' in typing.text
    # A history restore asks through HTMX too: the whole page.
    restore = browser.get("/runs?q=o", headers={"HX-Request": "true", "HX-History-Restore-Request": "true"})
    assert "<html" in restore.text
    # Someone else's run is not found, so nothing opens.
    theirs = make_run(days_ago=1, owner=other_member.user.id, name="Olga's")
    nothing = browser.get(f"/runs?q={theirs.id}")
    assert nothing.status_code == 200 and "No run matches" in nothing.text and "Olga" not in nothing.text


def test_a_piece_of_an_id_finds_its_run_however_its_dashes_are_written(lc, make_run, three):
    active, archived, trashed = three
    whole, digits = str(archived.id), archived.id.hex
    for text in (
        digits[5:11],  # six digits across the first dash, without it (PostgreSQL writes one there)
        whole[5:12],  # the same with it (SQLite writes none)
        digits[10:30],  # a middle piece, no dashes
        whole[10:33].upper(),  # the same as PostgreSQL writes it, in capitals
        f"{archived.folder_name}_{digits[:11]}",  # a folder with a longer start of the id than the lists show
    ):
        assert found(lc, text) == {archived.id}, text
    assert id_text_forms(digits[5:11]) >= {digits[5:11], digits[5:8] + "-" + digits[8:11]}
    assert found(lc, digits[5:11] + "g") == set()  # not a piece of an id: no id is searched


def test_hostile_or_foreign_text_is_only_text(browse, admin, lc, make_run):
    odd = make_run(days_ago=1, owner=admin.user.id, name="Préfecture 東京 \\ 50% off_sale 🚀")
    make_run(days_ago=2, owner=admin.user.id, name="Prefecture plain 50 offXsale")
    assert found(lc, "東京") == {odd.id} and found(lc, "🚀") == {odd.id} and found(lc, "Préfecture") == {odd.id}
    assert (
        found(lc, "\\") == {odd.id} and found(lc, "% off_") == {odd.id} and found(lc, "f_s") == {odd.id}
    )  # folders have "_" too
    browser = browse(admin)
    assert browser.get("/runs?q=" + "x" * 201).status_code == 400
    assert browser.get("/runs?q=" + "x" * 200).status_code == 200
    assert browser.get("/runs?q=%25").headers["Location"] == f"/runs/{odd.id}"  # "%" itself: one run
    page = browser.get("/runs?q=%3Cscript%3E", headers={"HX-Request": "true"})
    assert page.status_code == 200 and "<script>" not in page.text and "&lt;script&gt;" in page.text


def test_an_admin_counts_everyones_runs_and_a_member_only_their_own(browse, admin, member, other_member, lc, make_run):
    from app.lifecycle import archival

    mine = make_run(days_ago=1, owner=member.user.id, name="shared word mine")
    theirs = make_run(days_ago=9, owner=other_member.user.id, name="shared word theirs")
    archival.archive_run(lc, theirs.id, actor="scheduler")
    as_member = browse(member).get("/runs?q=shared%20word")
    assert as_member.status_code == 302 and as_member.headers["Location"] == f"/runs/{mine.id}"
    as_admin = browse(admin).get("/runs?q=shared%20word").text
    assert 'Active <span class="count">1</span>' in as_admin and 'Archived <span class="count">1</span>' in as_admin
    assert "shared word mine" in as_admin and "shared word theirs" not in as_admin  # Active is asked and has one
    typing = browse(member).get(f"/runs?q={theirs.id.hex[:10]}", headers={"HX-Request": "true"}).text
    assert 'Archived <span class="count">0</span>' in typing and "No run matches" in typing


def test_few_matches_are_paged_newest_first_as_many_are(lc, make_run):
    from app.lifecycle.queries import newest_runs_page

    for day in range(7):
        make_run(days_ago=day + 1, name=f"paged {day}")
    query = runs_in_tier(SYSTEM, "active", text="paged")
    for offset in (0, 2, 6):
        few = lc.session.scalars(newest_runs_page(query, 3, offset, few=True)).all()
        many = lc.session.scalars(newest_runs_page(query, 3, offset, few=False)).all()
        assert [job.name for job in few] == [job.name for job in many] == [f"paged {d}" for d in range(offset, 7)][:3]
