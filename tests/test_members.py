"""The core's reading of an archive for a client, without HTTP: which member a path names, the member list."""

import pytest

from app.lifecycle import archival
from app.lifecycle.members import (
    ArchiveMissing,
    InvalidMemberPath,
    MemberNotFound,
    NotAFile,
    find_member,
    member_page,
    read_member,
    require_archive,
)
from app.models import Job


@pytest.fixture
def archived(lc, make_run):
    job = make_run({"results.json": '{"ok": true}', "screens/home.png": b"\x89PNG" * 10, "odd\\name.txt": "x"})
    archival.archive_run(lc, job.id, actor="scheduler")
    lc.session.rollback()
    return lc.session.get(Job, job.id)


def test_a_member_is_found_by_its_escaped_path_and_read_back(lc, archived):
    member = find_member(lc, archived, "screens/./home.png")
    assert member.path == "screens/home.png" and member.kind == "file"
    assert b"".join(read_member(lc, archived, member).chunks) == b"\x89PNG" * 10
    assert find_member(lc, archived, "odd\\\\name.txt").path == "odd\\\\name.txt"  # a backslash, escaped


def test_a_path_that_names_no_file_is_refused_with_the_reason(lc, archived):
    with pytest.raises(InvalidMemberPath):
        find_member(lc, archived, "../escape.txt")
    with pytest.raises(InvalidMemberPath, match="lone backslash"):
        find_member(lc, archived, "odd\\qname.txt")
    with pytest.raises(MemberNotFound, match="no file 'missing.json' in the archive of run"):
        find_member(lc, archived, "missing.json")
    with pytest.raises(NotAFile, match="'screens' is a dir, not a file"):
        find_member(lc, archived, "screens")


def test_the_member_list_pages_in_archive_order_with_its_total(lc, archived):
    everything, total = member_page(lc, archived, 100, 0)
    assert total == len(everything) >= 4  # three files and a directory
    rows, again = member_page(lc, archived, 2, 1)
    assert again == total and [row.path for row in rows] == [row.path for row in everything[1:3]]


def test_an_archive_gone_from_the_store_is_refused_before_any_read(lc, archived):
    require_archive(lc, archived)
    lc.store.path(archived.archive_path).unlink()
    with pytest.raises(ArchiveMissing, match=f"the archive of run {archived.id} is not in the store"):
        require_archive(lc, archived)


def test_an_archive_gone_from_the_store_is_a_409_at_both_doors_that_changes_nothing(lc, make_run, app, member):
    from sqlalchemy import func, select

    from app.models import Alert
    from tests.test_web import Browser

    job = make_run({"results.json": "{}"}, owner=member.user.id)
    archival.archive_run(lc, job.id, actor="scheduler")
    lc.session.rollback()
    archived = lc.session.get(Job, job.id)
    lc.store.path(archived.archive_path).unlink()
    member_read = member.get(f"/api/scraper/jobs/{archived.id}/archive/files/results.json")
    download = member.get(f"/api/scraper/jobs/{archived.id}/archive/download")
    for response in (member_read, download):
        assert response.status_code == 409 and response.json["error"]["code"] == "archive_missing"
        assert "flask runs verify --job" in response.json["error"]["message"]
    browser = Browser(app.test_client())
    assert browser.login(member.user.username).status_code == 302
    page = browser.get(f"/runs/{archived.id}/download")
    assert page.status_code == 409 and "is not in the store" in page.text
    lc.session.expire_all()
    assert lc.session.get(Job, archived.id).verify_outcome is None  # a read records nothing
    assert lc.session.scalar(select(func.count()).select_from(Alert)) == 0
