"""Restoring working copies: exact contents, expiry, corrupt and hostile archives refused."""

import hashlib
import io
import os
import tarfile
from datetime import timedelta

import pytest
from sqlalchemy import delete, insert, select, update

from app.lifecycle import archival, passes
from app.lifecycle.errors import RunConflict
from app.lifecycle.naming import run_folder_path
from app.lifecycle.runs import load_run
from app.lifecycle.tarball import ArchiveInvalid, HostileArchive
from app.models import ArchiveMember, Job, LifecycleEvent
from tests.support import tree


@pytest.fixture
def archived(lc, make_run):
    job = make_run()
    folder = run_folder_path(lc.settings.jobs_path, job.folder_name, job.id)
    original = tree(folder)
    archival.archive_run(lc, job.id, actor="t")
    return load_run(lc, job.id), folder, original


def test_restore_writes_exactly_the_archived_files(lc, archived, clock):
    job, folder, original = archived
    archive_file = lc.store.path(job.archive_path)
    before = archive_file.stat()
    assert archival.restore_run(lc, job.id, actor="ada") == "succeeded"
    assert tree(folder) == original
    job = load_run(lc, job.id)
    assert job.restored_at == clock.now
    assert job.restore_expires_at == clock.now + timedelta(days=7)
    assert job.archived_at is not None  # the archive stays the source of truth
    assert archive_file.stat().st_mtime_ns == before.st_mtime_ns
    assert not list(lc.settings.jobs_path.glob(".*"))


def test_restoring_an_active_or_deleted_run_is_refused(lc, make_run):
    job = make_run()
    with pytest.raises(RunConflict):
        archival.restore_run(lc, job.id, actor="t")


def test_restore_twice_is_harmless(lc, archived):
    job, folder, original = archived
    archival.restore_run(lc, job.id, actor="t")
    assert archival.restore_run(lc, job.id, actor="t") == "skipped"
    assert tree(folder) == original


def test_the_archival_pass_expires_working_copies_without_recompressing(lc, archived, clock):
    job, folder, _ = archived
    archival.restore_run(lc, job.id, actor="t")
    archive_stat = lc.store.path(job.archive_path).stat()
    clock.advance(days=6)
    passes.archive_old_runs(lc)
    assert folder.is_dir()
    clock.advance(days=1, seconds=1)
    report = passes.archive_old_runs(lc)
    assert report.extra["restores_expired"] == 1
    assert not folder.exists()
    job = load_run(lc, job.id)
    assert job.restored_at is None and job.restore_expires_at is None
    assert lc.store.path(job.archive_path).stat().st_mtime_ns == archive_stat.st_mtime_ns
    actions = [e.action for e in lc.session.scalars(select(LifecycleEvent).order_by(LifecycleEvent.id))]
    assert actions == ["archive", "restore", "expire_restore"]


def flip_a_byte(path, where=0.5):
    data = bytearray(path.read_bytes())
    data[int(len(data) * where)] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("where", [0.2, 0.5, 0.99])
def test_a_corrupted_archive_is_detected_on_restore(lc, archived, where):
    job, folder, _ = archived
    flip_a_byte(lc.store.path(job.archive_path), where)
    with pytest.raises(ArchiveInvalid):
        archival.restore_run(lc, job.id, actor="t")
    assert not folder.exists()
    assert not list(lc.settings.jobs_path.iterdir())
    event = lc.session.scalar(select(LifecycleEvent).where(LifecycleEvent.action == "restore"))
    assert event.outcome == "failed" and "ArchiveInvalid" in event.error
    assert load_run(lc, job.id).restored_at is None


def test_a_truncated_archive_is_detected_on_restore(lc, archived):
    job, folder, _ = archived
    path = lc.store.path(job.archive_path)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ArchiveInvalid):
        archival.restore_run(lc, job.id, actor="t")
    assert not folder.exists()


def _tar_with(build) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        build(tar)
    return buffer.getvalue()


def _file(tar, name, data=b"x", **attrs):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in attrs.items():
        setattr(info, key, value)
    tar.addfile(info, io.BytesIO(data))


def _special(tar, name, kind, linkname=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    tar.addfile(info)


HOSTILE = {
    "parent traversal": lambda tar: _file(tar, "../escaped.txt"),
    "deep traversal": lambda tar: _file(tar, "a/../../escaped.txt"),
    "absolute path": lambda tar: _file(tar, "/tmp/agar-escaped.txt"),
    "symlink escape": lambda tar: _special(tar, "evil", tarfile.SYMTYPE, "/etc"),
    "relative symlink escape": lambda tar: _special(tar, "evil", tarfile.SYMTYPE, "../../../../etc"),
    "write through a link": lambda tar: (_special(tar, "d", tarfile.SYMTYPE, "."), _file(tar, "d/x.txt")),
    "hardlink outside": lambda tar: _special(tar, "h", tarfile.LNKTYPE, "../../../../etc/passwd"),
    "hardlink inside": lambda tar: (_file(tar, "a.txt"), _special(tar, "h", tarfile.LNKTYPE, "a.txt")),
    "character device": lambda tar: _special(tar, "dev", tarfile.CHRTYPE),
    "block device": lambda tar: _special(tar, "blk", tarfile.BLKTYPE),
    "fifo": lambda tar: _special(tar, "fifo", tarfile.FIFOTYPE),
    "member not in the manifest": lambda tar: (_file(tar, "results.json"), _file(tar, "extra.sh")),
    "dot segments": lambda tar: _file(tar, "./a/./b.txt"),
    "file before its folder": lambda tar: _file(tar, "nowhere/x.txt"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archives_are_refused_and_never_partly_extracted(lc, archived, tmp_path, case):
    job, folder, _ = archived
    data = _tar_with(HOSTILE[case])
    # The attacker also controls the record (checksum and manifest) - the extraction rules must hold alone.
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        names = [m for m in tar.getmembers()]
    manifest_rows = [
        {
            "job_id": job.id,
            "path": m.name,
            "kind": "file" if m.isreg() else "symlink" if m.issym() else "dir",
            "size": m.size,
            "sha256": hashlib.sha256(b"x").hexdigest(),
            "link_target": m.linkname or None,
        }
        for m in names
        if case != "member not in the manifest" or m.name == "results.json"
    ]
    lc.session.execute(delete(ArchiveMember).where(ArchiveMember.job_id == job.id))
    lc.session.execute(insert(ArchiveMember), manifest_rows)
    lc.store.path(job.archive_path).write_bytes(data)
    lc.session.execute(update(Job).where(Job.id == job.id).values(archive_sha256=hashlib.sha256(data).hexdigest()))
    lc.session.commit()
    with pytest.raises(ArchiveInvalid):
        archival.restore_run(lc, job.id, actor="t")
    assert not folder.exists()
    assert list(lc.settings.jobs_path.iterdir()) == []
    assert not (lc.settings.scraper_data_path / "escaped.txt").exists()
    assert not os.path.exists("/tmp/agar-escaped.txt")
    event = lc.session.scalar(select(LifecycleEvent).where(LifecycleEvent.action == "restore"))
    assert event.outcome == "failed"


def test_hostile_error_names_the_member(lc, archived):
    job, _folder, _ = archived
    data = _tar_with(HOSTILE["parent traversal"])
    lc.session.execute(delete(ArchiveMember).where(ArchiveMember.job_id == job.id))
    lc.session.execute(
        insert(ArchiveMember),
        [{"job_id": job.id, "path": "../escaped.txt", "kind": "file", "size": 1, "sha256": None}],
    )
    lc.store.path(job.archive_path).write_bytes(data)
    lc.session.execute(update(Job).where(Job.id == job.id).values(archive_sha256=hashlib.sha256(data).hexdigest()))
    lc.session.commit()
    with pytest.raises(HostileArchive, match="escaped.txt"):
        archival.restore_run(lc, job.id, actor="t")
