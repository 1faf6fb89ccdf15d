"""Archiving runs: the disk and database effects of every codec, links, rules and idempotency."""

import hashlib
import os
import subprocess
import tarfile
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.lifecycle import archival, passes
from app.lifecycle.errors import RunConflict
from app.lifecycle.naming import run_folder_path
from app.models import ArchiveMember, Job, LifecycleEvent
from tests.support import new_run, tree


def events(lc, job_id, action=None):
    query = select(LifecycleEvent).where(LifecycleEvent.job_id == job_id).order_by(LifecycleEvent.id)
    if action:
        query = query.where(LifecycleEvent.action == action)
    return list(lc.session.scalars(query))


def test_archive_writes_a_verified_archive_and_removes_the_folder(lc, make_run):
    job = make_run()
    folder = run_folder_path(lc.settings.jobs_path, job.folder_name, job.id)
    original = tree(folder)
    assert archival.archive_run(lc, job.id, actor="scheduler") == "succeeded"

    job = archival.load_run(lc, job.id)
    expected_key = f"archive/{job.folder_name[:4]}/{job.folder_name[4:6]}/{job.folder_name}_{job.id}.tar.gz"
    assert job.archive_path == expected_key
    path = lc.store.path(job.archive_path)
    assert path.is_file() and not folder.exists()
    assert job.archive_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert job.archive_size_bytes == path.stat().st_size
    assert job.compression == "gzip" and job.archived_at == lc.now()
    assert job.size_bytes == sum(len(v) for v in original.values() if isinstance(v, bytes))
    assert not list(path.parent.glob(".*.partial"))

    members = {m.path: m for m in lc.session.scalars(select(ArchiveMember).where(ArchiveMember.job_id == job.id))}
    assert set(members) == set(original)
    assert members["results.json"].sha256 == hashlib.sha256(original["results.json"]).hexdigest()
    assert members["screens"].kind == "dir"

    [event] = events(lc, job.id)
    assert (event.action, event.actor, event.outcome) == ("archive", "scheduler", "succeeded")
    assert event.bytes_before == job.size_bytes and event.bytes_after == job.archive_size_bytes


def test_archive_is_a_standard_tar_gz(lc, make_run):
    job = make_run()
    archival.archive_run(lc, job.id, actor="t")
    path = lc.store.path(archival.load_run(lc, job.id).archive_path)
    listing = subprocess.run(["tar", "tzf", str(path)], capture_output=True, text=True, check=True).stdout.split()
    assert sorted(listing) == sorted(
        ["logs/", "logs/run.log", "report.pdf", "results.json", "screens/", "screens/home.png"]
    )
    subprocess.run(["gzip", "-t", str(path)], check=True)


def test_zstd_archive_is_standard_and_compresses_each_kind_at_its_level(lc_with, clock):
    """Text at ZSTD_LEVEL, images at ZSTD_PACKED_LEVEL, in frames `zstd -d` and `tar` read as one."""
    import zstandard

    from app.lifecycle.codecs import ZSTD_LEVEL, ZSTD_PACKED_LEVEL

    lc = lc_with(ARCHIVE_COMPRESSION="zstd")
    files = {
        "results.json": '{"title": "A Light in the Attic", "price": 51.77}\n' * 4000,
        "screens/home.png": os.urandom(300_000),  # large enough for a frame of its own
        "screens/next.png": os.urandom(100_000),  # small: stays in the frame at hand
        "logs/run.log": "INFO fetched https://books.toscrape.com/ status=200\n" * 3000,
    }
    job = new_run(lc, clock, files)
    archival.archive_run(lc, job.id, actor="t")
    path = lc.store.path(archival.load_run(lc, job.id).archive_path)
    listing = subprocess.run(
        ["tar", "-I", "zstd -d", "-tf", str(path)], capture_output=True, text=True, check=True
    ).stdout.split()
    assert sorted(listing) == sorted(["logs/", "screens/", *files])
    subprocess.run(["zstd", "-t", "-q", str(path)], check=True)

    frames, rest = [], path.read_bytes()
    while rest:  # one frame per stretch of members of one kind
        frame = zstandard.ZstdDecompressor().decompressobj()
        frames.append(frame.decompress(rest))
        rest = frame.unused_data
    headers = [[name for name in files if name.encode() in content] for content in frames]
    assert headers == [["results.json", "logs/run.log"], ["screens/home.png", "screens/next.png"]]
    assert ZSTD_PACKED_LEVEL < ZSTD_LEVEL


def test_member_offsets_point_at_the_data(lc, make_run):
    job = make_run()
    archival.archive_run(lc, job.id, actor="t")
    job = archival.load_run(lc, job.id)
    with tarfile.open(lc.store.path(job.archive_path), "r:gz") as tar:
        offsets = {m.name: m.offset_data for m in tar.getmembers() if m.isreg()}
    for member in archival.manifest_of(lc, job.id):
        if member.kind == "file":
            assert member.offset == offsets[member.path]


@pytest.mark.parametrize(("codec", "ext"), [("gzip", "gz"), ("bz2", "bz2"), ("xz", "xz"), ("zstd", "zst")])
def test_every_codec_round_trips(lc_with, clock, codec, ext):
    lc = lc_with(ARCHIVE_COMPRESSION=codec)
    job = new_run(lc, clock, {}, days_ago=39)
    folder = run_folder_path(lc.settings.jobs_path, job.folder_name, job.id)
    (folder / "deep" / "er").mkdir(parents=True)
    (folder / "deep" / "er" / "data.bin").write_bytes(os.urandom(300_000))
    (folder / "empty.txt").write_bytes(b"")
    (folder / "empty-dir").mkdir()
    original = tree(folder)
    archival.archive_run(lc, job.id, actor="t")
    job = archival.load_run(lc, job.id)
    assert job.archive_path.endswith(f".tar.{ext}") and job.compression == codec
    archival.restore_run(lc, job.id, actor="t")
    assert tree(folder) == original


def test_links_inside_are_kept_and_links_outside_left_out(lc, make_run, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("not the run's")
    job = make_run({"results.json": "{}", "sub/a.txt": "a"})
    folder = run_folder_path(lc.settings.jobs_path, job.folder_name, job.id)
    os.symlink("results.json", folder / "latest.json")
    os.symlink("../results.json", folder / "sub" / "up.json")
    os.symlink(str(secret), folder / "absolute")
    os.symlink("../../../../etc/passwd", folder / "climb")
    os.symlink(str(tmp_path), folder / "outside-dir")
    os.mkfifo(folder / "pipe")
    archival.archive_run(lc, job.id, actor="t")
    manifest = {m.path: m for m in archival.manifest_of(lc, job.id)}
    assert manifest["latest.json"].link_target == "results.json"
    assert manifest["sub/up.json"].link_target == "../results.json"
    assert not {"absolute", "climb", "outside-dir", "pipe"} & set(manifest)
    [event] = events(lc, job.id)
    warnings = " ".join(event.details["warnings"])
    for name in ("absolute", "climb", "outside-dir", "pipe"):
        assert name in warnings
    assert secret.read_text() == "not the run's"


@pytest.mark.parametrize("status", ["pending", "running"])
def test_unfinished_runs_are_never_archived(lc, make_run, status):
    job = make_run(status=status, days_ago=100)
    report = passes.archive_old_runs(lc)
    assert report.outcomes == {"succeeded": 0, "failed": 0, "skipped": 0}
    with pytest.raises(RunConflict):
        archival.archive_run(lc, job.id, actor="admin", manual=True)
    assert archival.load_run(lc, job.id).archived_at is None
    assert run_folder_path(lc.settings.jobs_path, job.folder_name, job.id).is_dir()
    assert [e.outcome for e in events(lc, job.id)] == ["failed"]


def test_the_pass_archives_exactly_the_due_runs(lc, make_run, clock):
    due = make_run(days_ago=8)
    very_old = make_run(days_ago=45)  # past DELETE_AFTER_DAYS: still archived first, never deleted unarchived
    failed_run = make_run(days_ago=9, status="failed")
    young = make_run(days_ago=6)
    kept = make_run(days_ago=20)
    retained = make_run(days_ago=20)
    expired_retention = make_run(days_ago=20)
    lc.session.get(Job, kept.id).keep_forever = True
    lc.session.get(Job, retained.id).retain_until = clock.now + timedelta(days=1)
    lc.session.get(Job, expired_retention.id).retain_until = clock.now - timedelta(days=1)
    lc.session.commit()

    report = passes.archive_old_runs(lc)
    archived = {job.id for job in lc.session.scalars(select(Job).where(Job.archived_at.is_not(None)))}
    assert archived == {due.id, very_old.id, failed_run.id, expired_retention.id}
    assert report.outcomes["succeeded"] == 4
    assert young.id not in archived and kept.id not in archived and retained.id not in archived


def test_archiving_twice_is_harmless(lc, make_run):
    job = make_run()
    assert archival.archive_run(lc, job.id, actor="t") == "succeeded"
    assert archival.archive_run(lc, job.id, actor="t") == "skipped"
    assert passes.archive_old_runs(lc).outcomes["succeeded"] == 0
    assert len(list(lc.store.keys())) == 1


def test_manual_archive_overrides_age_and_retention(lc, make_run):
    job = make_run(days_ago=0.1)
    lc.session.get(Job, job.id).keep_forever = True
    lc.session.commit()
    assert archival.archive_run(lc, job.id, actor="t") == "skipped"
    assert archival.archive_run(lc, job.id, actor="admin", manual=True) == "succeeded"


def test_legacy_bare_uuid_folder_is_archived(lc, make_run):
    job = make_run({"a.txt": "legacy"})
    named = run_folder_path(lc.settings.jobs_path, job.folder_name, job.id)
    named.rename(lc.settings.jobs_path / str(job.id))
    lc.session.get(Job, job.id).folder_name = None
    lc.session.commit()
    archival.archive_run(lc, job.id, actor="t")
    job = archival.load_run(lc, job.id)
    assert job.folder_name is not None and job.archive_path.endswith(f"{job.folder_name}_{job.id}.tar.gz")
    assert not (lc.settings.jobs_path / str(job.id)).exists()


def test_a_missing_folder_fails_loudly(lc, make_run):
    import shutil

    job = make_run()
    shutil.rmtree(run_folder_path(lc.settings.jobs_path, job.folder_name, job.id))
    report = passes.archive_old_runs(lc)
    assert report.failed == 1 and "missing" in report.errors[0]
    [event] = events(lc, job.id)
    assert event.outcome == "failed" and "missing" in event.error


def test_archive_place_depends_on_the_runs_start_not_on_when_archived(lc, make_run, clock):
    job = make_run(days_ago=40)
    clock.advance(days=100)
    archival.archive_run(lc, job.id, actor="t")
    job = archival.load_run(lc, job.id)
    assert job.archive_path.split("/")[1:3] == [job.folder_name[:4], job.folder_name[4:6]]


def test_the_archive_base_path_may_live_elsewhere(lc_with, clock, tmp_path):
    lc = lc_with(ARCHIVE_BASE_PATH=str(tmp_path / "cold-storage"))
    job = new_run(lc, clock, {}, days_ago=39)
    archival.archive_run(lc, job.id, actor="t")
    job = archival.load_run(lc, job.id)
    assert lc.store.path(job.archive_path).is_relative_to(tmp_path / "cold-storage")


@pytest.mark.parametrize("codec", ["gzip", "zstd", "bz2", "xz"])
def test_read_back_verification_catches_bytes_corrupted_on_the_way_to_disk(lc_with, clock, monkeypatch, codec):
    from app.lifecycle import streams
    from app.lifecycle.tarball import ArchiveInvalid

    lc = lc_with(ARCHIVE_COMPRESSION=codec)
    job = new_run(lc, clock, {}, days_ago=39)
    folder = run_folder_path(lc.settings.jobs_path, job.folder_name, job.id)
    (folder / "data.json").write_text('{"k": "v"}\n' * 50_000)
    (folder / "shot.png").write_bytes(os.urandom(300_000))  # so the compressed stream is long
    original = tree(folder)
    real_write = streams.CountingWriter.write

    def corrupting(self, data):
        data = bytearray(data)
        at = 100_000
        if self.bytes_written <= at < self.bytes_written + len(data):
            data[at - self.bytes_written] ^= 0x55  # one byte on disk differs from what was made
        return real_write(self, bytes(data))

    monkeypatch.setattr(streams.CountingWriter, "write", corrupting)
    with pytest.raises(ArchiveInvalid, match="read back|decode"):
        archival.archive_run(lc, job.id, actor="t")
    assert tree(folder) == original
    assert list(lc.store.keys()) == [] and list(lc.store.partials()) == []
    assert archival.load_run(lc, job.id).archived_at is None
