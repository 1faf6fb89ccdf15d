"""Seekable archives (issue 14): gzip and zstd archives written as independent blocks stay standard
(tar, gzip -t, zstd -t and tarfile read them), their block index is kept with the manifest, and a
member read decompresses — and reads from the store — only the blocks holding the member."""

import io
import os
import random
import subprocess
import tarfile

import pytest
from sqlalchemy import delete, select, update

from app.lifecycle import archival, codecs
from app.lifecycle.codecs import blocks_holding
from app.lifecycle.members import find_member, read_member
from app.lifecycle.runs import load_run
from app.models import ArchiveIndex, ArchiveMember

CODECS = ["gzip", "zstd"]


def run_files(count=60, size=48_000, seed=3):
    """JSON-ish pages and a few incompressible screenshots: enough bytes for several blocks."""
    rng = random.Random(seed)
    files = {}
    for n in range(count):
        words = " ".join(rng.choice(["books", "price", "stock", "title", "rating", "url"]) for _ in range(size // 6))
        files[f"results/page-{n:05d}.json"] = '{"text": "' + words + '"}'
    for n in range(4):
        files[f"screens/shot-{n}.png"] = rng.randbytes(700_000)
    return files


@pytest.fixture(params=CODECS)
def archived(request, lc_with, make_run):
    lc = lc_with(ARCHIVE_COMPRESSION=request.param)
    job = make_run(run_files(), days_ago=10)
    archival.archive_run(lc, job.id, actor="scheduler")
    return lc, load_run(lc, job.id)


def test_a_seekable_archive_is_still_a_standard_archive_every_tool_reads(archived, tmp_path):
    lc, job = archived
    path = lc.store.path(job.archive_path)
    index = lc.session.get(ArchiveIndex, job.id)
    assert index is not None and index.codec == job.compression and len(index.blocks) > 3
    assert index.blocks[0] == [0, 0] and index.blocks == sorted(index.blocks)
    tool = {"gzip": ["gzip", "-t"], "zstd": ["zstd", "-q", "-t"]}[job.compression]
    assert subprocess.run([*tool, str(path)], capture_output=True).returncode == 0
    out = tmp_path / "out"
    out.mkdir()
    flags = {"gzip": ["-xzf"], "zstd": ["--zstd", "-xf"]}[job.compression]
    assert subprocess.run(["tar", *flags, str(path), "-C", str(out)], capture_output=True).returncode == 0
    files = run_files()
    for name, content in files.items():
        data = (out / name).read_bytes()
        assert data == (content.encode() if isinstance(content, str) else content), name
    if job.compression == "gzip":
        with tarfile.open(path, "r:gz") as archive:  # Python's tarfile reads the members as one stream
            assert sorted(m.name for m in archive.getmembers() if m.isfile()) == sorted(files)


def test_each_block_decompresses_on_its_own_from_its_offset(archived):
    import zlib

    import zstandard

    lc, job = archived
    data = lc.store.path(job.archive_path).read_bytes()
    blocks = lc.session.get(ArchiveIndex, job.id).blocks
    whole = b""
    for (start, plain), (end, _next) in zip(blocks, [*blocks[1:], [len(data), None]], strict=True):
        assert len(whole) == plain  # the uncompressed offset the index gives
        piece = data[start:end]
        if job.compression == "gzip":
            whole += zlib.decompress(piece, wbits=31)  # one gzip member, complete
        else:
            whole += zstandard.ZstdDecompressor().decompressobj().decompress(piece)  # one frame
    assert whole == codecs.decompressor(io.BytesIO(data), job.compression).read()


def test_a_member_read_touches_only_the_blocks_holding_it(archived, monkeypatch):
    lc, job = archived
    blocks = lc.session.get(ArchiveIndex, job.id).blocks
    size = lc.store.size(job.archive_path)
    read_from_store = []
    opened = lc.store.open_range

    def counting(key, start, end):
        handle = opened(key, start, end)
        original = handle.readinto

        def readinto(buffer):
            count = original(buffer)
            read_from_store.append(count)
            return count

        handle.readinto = readinto
        return handle

    monkeypatch.setattr(lc.store, "open_range", counting)
    for path in ("results/page-00000.json", "results/page-00030.json", "screens/shot-3.png"):
        member = find_member(lc, job, path)
        read_from_store.clear()
        data = b"".join(read_member(lc, job, member).chunks)
        assert len(data) == member.size
        first, stop, _start = blocks_holding(blocks, member.offset, member.offset + member.size)
        span = (stop if stop is not None else size) - first
        assert sum(read_from_store) <= span, path  # one range of the store, no byte outside it
        assert span < size / 2, path  # a small part of the archive
    expected = run_files()["results/page-00030.json"].encode()
    assert b"".join(read_member(lc, job, find_member(lc, job, "results/page-00030.json")).chunks) == expected


def _forget_member_blocks(lc, job):
    lc.session.execute(
        update(ArchiveMember)
        .where(ArchiveMember.job_id == job.id)
        .values(block_start=None, block_stop=None, block_plain=None)
    )


def test_archives_without_an_index_are_read_from_their_start_as_before(archived, monkeypatch):
    lc, job = archived
    lc.session.execute(delete(ArchiveIndex).where(ArchiveIndex.job_id == job.id))
    _forget_member_blocks(lc, job)
    lc.session.commit()
    monkeypatch.setattr(lc.store, "open_range", None)  # the sequential path reads the whole file
    member = find_member(lc, job, "screens/shot-2.png")
    assert b"".join(read_member(lc, job, member).chunks) == run_files()["screens/shot-2.png"]


def test_each_member_row_says_where_its_blocks_are_so_a_read_needs_no_index(archived, monkeypatch):
    lc, job = archived
    blocks = lc.session.get(ArchiveIndex, job.id).blocks
    rows = lc.session.scalars(select(ArchiveMember).where(ArchiveMember.job_id == job.id, ArchiveMember.kind == "file"))
    for row in rows:
        start, stop, plain = blocks_holding(blocks, row.offset, row.offset + max(1, row.size))
        assert (row.block_start, row.block_stop, row.block_plain) == (start, stop, plain), row.path
    lc.session.execute(delete(ArchiveIndex).where(ArchiveIndex.job_id == job.id))
    lc.session.commit()
    ranges = _ranges_read(lc, monkeypatch)
    member = find_member(lc, job, "results/page-00030.json")
    assert b"".join(read_member(lc, job, member).chunks) == run_files()["results/page-00030.json"].encode()
    assert ranges == [(member.block_start, member.block_stop)]  # one range, found from the row alone


def _ranges_read(lc, monkeypatch):
    ranges, opened = [], lc.store.open_range

    def open_range(key, start, end):
        ranges.append((start, end))
        return opened(key, start, end)

    monkeypatch.setattr(lc.store, "open_range", open_range)
    return ranges


def test_member_rows_recorded_without_their_blocks_are_read_through_the_index(archived, monkeypatch):
    lc, job = archived
    blocks = lc.session.get(ArchiveIndex, job.id).blocks
    _forget_member_blocks(lc, job)
    lc.session.commit()
    ranges = _ranges_read(lc, monkeypatch)
    member = find_member(lc, job, "screens/shot-1.png")
    assert b"".join(read_member(lc, job, member).chunks) == run_files()["screens/shot-1.png"]
    start, stop, _plain = blocks_holding(blocks, member.offset, member.offset + member.size)
    assert ranges == [(start, stop)]


def test_blocks_holding_picks_the_first_and_the_stop_block():
    blocks = [[0, 0], [100, 1000], [180, 2000], [260, 3000]]
    assert blocks_holding(blocks, 0, 10) == (0, 100, 0)
    assert blocks_holding(blocks, 999, 1001) == (0, 180, 0)
    assert blocks_holding(blocks, 1000, 2000) == (100, 180, 1000)
    assert blocks_holding(blocks, 2500, 3500) == (180, None, 2000)
    assert blocks_holding(blocks, 3000, 3001) == (260, None, 3000)


def test_an_empty_run_still_makes_one_valid_block():
    for codec in CODECS:
        raw = io.BytesIO()
        stream = codecs.compressor(raw, codec)
        stream.close()
        assert stream.blocks == [[0, 0]]
        assert codecs.decompressor(io.BytesIO(raw.getvalue()), codec).read() == b""


def test_blocks_end_at_member_headers_once_full_and_never_hold_more_than_the_maximum(monkeypatch):
    monkeypatch.setattr(codecs, "GZIP_BLOCK_BYTES", 1000)
    monkeypatch.setattr(codecs, "BLOCK_MAX", 4000)
    raw = io.BytesIO()
    stream = codecs.GzipBlocks(raw, threads=0)
    stream.member("a.json", 600)
    stream.write(b"a" * 600)
    stream.member("b.json", 600)  # 600 < 1000: same block
    stream.write(b"b" * 600)
    stream.member("c.json", 9000)  # 1200 >= 1000: a new block starts at c
    for _ in range(3):
        stream.write(os.urandom(3000))  # the block reaches 4000 inside c: it ends there, mid-write
    stream.close()
    assert [plain for _packed, plain in stream.blocks] == [0, 1200, 5200, 9200]
    assert codecs.decompressor(io.BytesIO(raw.getvalue()), "gzip").read()[:1200] == b"a" * 600 + b"b" * 600


def test_a_large_gzip_member_starts_a_block_so_a_read_of_it_decodes_nothing_before_it(monkeypatch):
    monkeypatch.setattr(codecs, "GZIP_BLOCK_BYTES", 1000)
    raw = io.BytesIO()
    stream = codecs.GzipBlocks(raw, threads=0)
    stream.member("a.json", 300)
    stream.write(b"a" * 300)
    stream.member("b.png", 1500)  # 300 < 1000, but b is large: its block starts here
    stream.write(b"b" * 1500)
    stream.member("c.json", 200)  # 1500 >= 1000: a new block
    stream.write(b"c" * 200)
    stream.member("d.json", 200)
    stream.write(b"d" * 200)
    stream.close()
    assert [plain for _packed, plain in stream.blocks] == [0, 300, 1800]


def test_a_ranged_member_read_answers_206_from_the_blocks_holding_the_range(archived, client):
    lc, job = archived
    from app.auth.users import create_user

    user, _password, token = create_user(lc.session, "reader", "correct horse battery", admin=True)
    lc.session.commit()
    auth = {"Authorization": f"Bearer {token}"}
    path = "screens/shot-1.png"
    content = run_files()[path]
    url = f"/api/scraper/jobs/{job.id}/archive/files/{path}"
    for start, end in ((0, 99), (300_000, 300_999), (len(content) - 10, len(content) - 1)):
        answer = client.get(url, headers={**auth, "Range": f"bytes={start}-{end}"})
        assert answer.status_code == 206 and answer.data == content[start : end + 1]
        assert answer.headers["Content-Range"] == f"bytes {start}-{end}/{len(content)}"
        assert "Repr-Digest" not in answer.headers
    suffix = client.get(url, headers={**auth, "Range": "bytes=-5"})
    assert suffix.status_code == 206 and suffix.data == content[-5:]
    whole = client.get(url, headers={**auth, "Range": "bytes=0-1, 5-9"})  # several ranges: the whole member
    assert whole.status_code == 200 and whole.data == content and whole.headers["Accept-Ranges"] == "bytes"
    stale = client.get(url, headers={**auth, "Range": "bytes=0-9", "If-Range": '"not-its-etag"'})
    assert stale.status_code == 200 and stale.data == content
    outside = client.get(url, headers={**auth, "Range": f"bytes={len(content) + 10}-"})
    assert outside.status_code == 416 and str(len(content)) in outside.json["error"]["message"]
    # An archive without an index answers the same range, read from its start.
    lc.session.execute(delete(ArchiveIndex).where(ArchiveIndex.job_id == job.id))
    lc.session.commit()
    again = client.get(url, headers={**auth, "Range": "bytes=300000-300999"})
    assert again.status_code == 206 and again.data == content[300_000:301_000]


# -- archives written before: rewritten as seekable (flask runs make-seekable) ------------------------


def _as_written_before(lc, job):
    """Turn the run's archive into one written before this change: one stream, no index, no member blocks."""
    import hashlib

    import zstandard
    from isal import igzip

    path = lc.store.path(job.archive_path)
    tar = codecs.decompressor(io.BytesIO(path.read_bytes()), job.compression).read()
    if job.compression == "gzip":
        data = igzip.compress(tar, codecs.GZIP_LEVEL)
    else:
        data = zstandard.ZstdCompressor(level=3, write_checksum=True).compress(tar)
    path.write_bytes(data)
    job.archive_sha256, job.archive_size_bytes = hashlib.sha256(data).hexdigest(), len(data)
    lc.session.execute(delete(ArchiveIndex).where(ArchiveIndex.job_id == job.id))
    _forget_member_blocks(lc, job)
    lc.session.commit()
    return tar


def test_make_seekable_rewrites_an_archive_written_before_and_every_member_still_reads(archived, runner, tmp_path):
    from app.models import LifecycleEvent

    lc, job = archived
    tar = _as_written_before(lc, job)
    old_key, shas = job.archive_path, {m.path: m.sha256 for m in archival.manifest_of(lc, job.id)}
    old_size = job.archive_size_bytes
    dry = runner.invoke(args=["runs", "make-seekable", "--dry-run"])
    assert dry.exit_code == 0 and "would rewrite 1 run" in dry.output
    result = runner.invoke(args=["runs", "make-seekable"])
    assert result.exit_code == 0, result.output
    assert "rewritten 1 run" in result.output
    lc.session.expire_all()
    job = load_run(lc, job.id)
    assert job.archive_path != old_key and "/seekable/" in job.archive_path
    assert not lc.store.exists(old_key)  # removed once the record pointed at the new file
    path = lc.store.path(job.archive_path)
    assert codecs.decompressor(io.BytesIO(path.read_bytes()), job.compression).read() == tar  # the same tar
    assert len(lc.session.get(ArchiveIndex, job.id).blocks) > 3
    assert {m.path: m.sha256 for m in archival.manifest_of(lc, job.id)} == shas
    tool = {"gzip": ["gzip", "-t"], "zstd": ["zstd", "-q", "-t"]}[job.compression]
    assert subprocess.run([*tool, str(path)], capture_output=True).returncode == 0
    from app.lifecycle.verification import verify_archive

    assert verify_archive(lc, job.id, actor="test").outcome == "ok"  # its new SHA-256 is the file's
    files = run_files()
    for name in ("results/page-00000.json", "results/page-00059.json", "screens/shot-3.png"):
        member = find_member(lc, job, name)
        assert member.block_start is not None
        expected = files[name].encode() if isinstance(files[name], str) else files[name]
        assert b"".join(read_member(lc, job, member).chunks) == expected
    event = lc.session.scalars(
        select(LifecycleEvent).where(LifecycleEvent.job_id == job.id, LifecycleEvent.action == "migrate")
    ).one()
    assert event.outcome == "succeeded" and event.details["from"] == old_key and event.details["to"] == job.archive_path
    assert (event.bytes_before, event.bytes_after) == (
        old_size,
        job.archive_size_bytes,
    ) and old_size != event.bytes_after
    again = runner.invoke(args=["runs", "make-seekable", "--job", str(job.id)])
    assert again.exit_code == 0 and "rewritten 0 runs" in again.output  # already seekable: nothing to do


def test_make_seekable_refuses_an_archive_that_does_not_match_its_record(archived):
    from app.lifecycle.seekable import make_seekable, rewritten_key
    from app.lifecycle.tarball import ArchiveInvalid

    lc, job = archived
    _as_written_before(lc, job)
    path = lc.store.path(job.archive_path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ArchiveInvalid):
        make_seekable(lc, job.id, actor="test")
    lc.session.expire_all()
    again = load_run(lc, job.id)
    assert again.archive_path == job.archive_path and lc.store.exists(job.archive_path)
    assert not lc.store.exists(rewritten_key(job.archive_path))
    assert not lc.store.partial_path(rewritten_key(job.archive_path)).exists()
    assert lc.session.get(ArchiveIndex, job.id) is None


@pytest.mark.parametrize("step", ["rewrite.published", "rewrite.committed"])
def test_a_rewrite_stopped_at_any_step_leaves_a_readable_recorded_archive(archived, step, monkeypatch):
    from app.lifecycle.reconcile import reconcile
    from app.lifecycle.seekable import make_seekable

    lc, job = archived
    tar = _as_written_before(lc, job)
    old_key = job.archive_path

    def fault(at):
        if at == step:
            raise RuntimeError(f"stopped at {at}")

    lc.fault = fault
    remove = lc.store.remove
    monkeypatch.setattr(lc.store, "remove", lambda key, **kw: None)  # the process dies: nothing is cleaned up
    with pytest.raises(RuntimeError):
        make_seekable(lc, job.id, actor="test")
    lc.fault = None
    monkeypatch.setattr(lc.store, "remove", remove)
    lc.session.expire_all()
    job = load_run(lc, job.id)
    assert len(list(lc.store.keys())) == 2  # the old file and its rewrite, one of them unrecorded
    reconcile(lc, actor="test")  # a leftover copy (the old file after the commit) is removed
    keys = sorted(lc.store.keys())
    assert keys == [job.archive_path]  # one file: the recorded one
    assert (job.archive_path == old_key) == (step == "rewrite.published")
    data = lc.store.path(job.archive_path).read_bytes()
    assert codecs.decompressor(io.BytesIO(data), job.compression).read() == tar
    from app.lifecycle.verification import verify_archive

    assert verify_archive(lc, job.id, actor="test").outcome == "ok"


def test_a_range_of_a_small_member_is_read_from_its_blocks_and_of_a_large_one_from_the_blocks_holding_it(
    archived, monkeypatch
):
    from app.lifecycle import members
    from app.lifecycle.members import read_member_range

    lc, job = archived
    content = run_files()["screens/shot-2.png"]
    member = find_member(lc, job, "screens/shot-2.png")
    ranges = _ranges_read(lc, monkeypatch)
    assert b"".join(read_member_range(lc, job, member, 1000, 2000).chunks) == content[1000:2000]
    assert ranges == [(member.block_start, member.block_stop)]  # whole, checked by its SHA-256, then cut
    monkeypatch.setattr(members, "WHOLE_READ_MAX", 100_000)  # now a large member: only the blocks of the range
    ranges.clear()
    blocks = lc.session.get(ArchiveIndex, job.id).blocks
    assert b"".join(read_member_range(lc, job, member, 600_000, 600_100).chunks) == content[600_000:600_100]
    start, stop, _plain = blocks_holding(blocks, member.offset + 600_000, member.offset + 600_100)
    assert ranges == [(start, stop)]


def test_a_range_from_a_block_that_fails_its_checksum_is_refused_before_a_byte_is_sent(archived, monkeypatch):
    from app.lifecycle import members
    from app.lifecycle.members import ArchiveCorrupt, read_member_range

    lc, job = archived
    monkeypatch.setattr(members, "WHOLE_READ_MAX", 100_000)  # a large member: read by the blocks of the range
    member = find_member(lc, job, "screens/shot-2.png")
    blocks = lc.session.get(ArchiveIndex, job.id).blocks
    start, stop, _plain = blocks_holding(blocks, member.offset + 1000, member.offset + 2000)
    path = lc.store.path(job.archive_path)
    data = bytearray(path.read_bytes())
    at = (stop or len(data)) - 6  # in the block's checksum, after the range's bytes
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ArchiveCorrupt):
        read_member_range(lc, job, member, 1000, 2000)  # one piece: held until its block checked out


def test_a_read_of_an_archive_rewritten_meanwhile_is_told_to_read_again_not_marked_corrupt(archived, monkeypatch):
    from app.lifecycle.errors import RunConflict
    from app.lifecycle.seekable import make_seekable

    lc, job = archived
    _as_written_before(lc, job)
    stale = load_run(lc, job.id)
    lc.session.expunge(stale)  # what a request loaded before the rewrite committed
    monkeypatch.setattr(lc.store, "remove", lambda key, **kw: None)  # the old file still there while read
    make_seekable(lc, job.id, actor="test")
    member = find_member(lc, job, "screens/shot-3.png")  # its row: the new file's blocks, far into it
    assert member.block_start > 0
    with pytest.raises(RunConflict):
        b"".join(read_member(lc, stale, member).chunks)
    lc.session.expire_all()
    assert load_run(lc, job.id).verify_outcome != "corrupt"


def test_a_block_writer_that_failed_raises_again_on_close_and_writes_nothing_more():
    class Broken(io.RawIOBase):
        writes = 0

        def writable(self):
            return True

        def write(self, data):
            Broken.writes += 1
            raise OSError(28, "No space left on device")

    stream = codecs.GzipBlocks(Broken(), threads=1)
    with pytest.raises(OSError):
        for _ in range(40):
            stream.member("x.bin", 1 << 20)
            stream.write(os.urandom(1 << 20))
    seen = Broken.writes
    with pytest.raises(OSError):
        stream.close()
    assert Broken.writes == seen and stream.closed
    assert stream.pool._shutdown and stream.writer._shutdown
