"""Every name a file system allows archives, lists, reads and restores byte-identically (issue 9, point 3).

Tar stores names as bytes; the manifest, the API and the pages show an escaped text form
(``naming.escape_name``). Before this, a run holding ``back\\slash.txt`` archived and then could
not be restored, and a name with non-UTF-8 bytes failed every archival, every night.
"""

import os
import subprocess
import tarfile
import urllib.parse

import pytest
from sqlalchemy import select

from app.lifecycle import archival
from app.lifecycle.naming import escape_name, run_folder_path
from app.models import ArchiveMember, LifecycleEvent
from tests.support import new_run, tree

# As the file system gives them: undecodable bytes as surrogates (os.fsdecode).
HOSTILE = {
    "back\\slash.txt": b"a backslash is a plain character on POSIX",
    "new\nline.json": b'{"line": "break"}',
    "-rf --no-preserve-root": b"a leading dash",
    os.fsdecode(b"caf\xe9-latin1.html"): b"<p>latin-1 bytes in the name</p>",
    "t" * 251 + ".log": b"a 255-byte name",
    "sub dir/\\x41 not an escape\t.txt": b"a literal backslash-x and a tab",
    "ünïcode ✓.txt": b"plain UTF-8",
}


def hostile_run(lc, clock):
    job = new_run(lc, clock, {}, days_ago=20)
    folder = run_folder_path(lc.settings.jobs_path, job.folder_name, job.id)
    for name, content in HOSTILE.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    os.symlink("back\\slash.txt", folder / "link\\to back")
    return job, folder


@pytest.mark.parametrize("codec", ["gzip", "zstd", "bz2", "xz"])
def test_hostile_names_archive_and_restore_byte_identically(lc_with, clock, codec):
    lc = lc_with(ARCHIVE_COMPRESSION=codec)
    job, folder = hostile_run(lc, clock)
    original = tree(folder)
    assert archival.archive_run(lc, job.id, actor="scheduler") == "succeeded"
    assert not folder.exists()
    stored = set(lc.session.scalars(select(ArchiveMember.path).where(ArchiveMember.job_id == job.id)))
    assert {escape_name(name) for name in HOSTILE} <= stored
    assert all("\n" not in path and "\udce9" not in path for path in stored)
    assert archival.restore_run(lc, job.id, actor="ada") == "succeeded"
    assert tree(folder) == original
    assert {os.fsencode(name) for name in os.listdir(folder)} >= {b"caf\xe9-latin1.html", b"-rf --no-preserve-root"}


def test_gnu_tar_extracts_the_same_bytes_and_names(lc, clock, tmp_path):
    job, folder = hostile_run(lc, clock)
    original = tree(folder)
    archival.archive_run(lc, job.id, actor="scheduler")
    path = lc.store.path(archival.load_run(lc, job.id).archive_path)
    out = tmp_path / "gnu"
    out.mkdir()
    subprocess.run(["tar", "-xzf", str(path), "-C", str(out)], check=True)
    assert tree(out) == original
    with tarfile.open(path, "r:gz") as tar:
        assert {m.name for m in tar.getmembers()} >= set(HOSTILE)


def test_the_api_lists_escaped_names_and_reads_each_member_by_its_escaped_name(lc, clock, admin):
    job, folder = hostile_run(lc, clock)
    archival.archive_run(lc, job.id, actor="scheduler")
    listing = admin.get(f"/api/scraper/jobs/{job.id}/archive/files?limit=500").json
    paths = {item["path"] for item in listing["items"]}
    assert {escape_name(name) for name in HOSTILE} <= paths
    for name, content in HOSTILE.items():
        url_path = urllib.parse.quote(escape_name(name), safe="/")
        response = admin.get(f"/api/scraper/jobs/{job.id}/archive/files/{url_path}")
        assert response.status_code == 200, (name, response.data[:300])
        assert response.data == content


def test_the_run_page_shows_escaped_names(app, lc, clock, admin):
    from tests.test_web import Browser

    job, _folder = hostile_run(lc, clock)
    archival.archive_run(lc, job.id, actor="scheduler")
    browser = Browser(app.test_client())
    assert browser.login("ada").status_code == 302
    page = browser.get(f"/runs/{job.id}").get_data(as_text=True)
    assert "caf\\xe9-latin1.html" in page and "new\\nline.json" in page


def test_a_name_restore_would_refuse_keeps_the_folder_and_fails_loudly(lc, clock, monkeypatch):
    """No archive is kept, nor its folder removed, unless restore would accept it: one rule for both."""
    from app.lifecycle import tarball

    job, folder = hostile_run(lc, clock)
    original = tree(folder)
    real = tarball.refusal
    monkeypatch.setattr(
        tarball, "refusal", lambda info, dest: "refused for the test" if "latin1" in info.name else real(info, dest)
    )
    with pytest.raises(tarball.HostileArchive):
        archival.archive_run(lc, job.id, actor="scheduler")
    assert tree(folder) == original
    assert list(lc.store.keys()) == [] and list(lc.store.partials()) == []
    event = lc.session.scalars(select(LifecycleEvent).where(LifecycleEvent.job_id == job.id)).one()
    assert event.outcome == "failed" and "caf\\xe9-latin1.html" in event.error
    assert archival.load_run(lc, job.id).archived_at is None
