"""Reading one member of an archived run (issue 14): the seekable archive's block read against
today's sequential read, and against ratarmount's indexed access to the same archive.

``python -m bench.members`` (``--size 1G --files 12000`` by default) writes a run folder of JSON
pages, screenshots and PDFs under bench/data (kept for the next call), then for gzip and zstd:

- **Writing**: the archive as written now (independent blocks, ``app.lifecycle.codecs``) and as
  written before this change (gzip: ISA-L's threaded writer, one stream; zstd: frames only where
  the level changes), ROUNDS times each, alternating: ratio and throughput side by side.
- **Reading** the first, the middle and the last file member, READS times each, in this process:
  *seekable* — ``members.blocks_holding`` then one range of the file, decompressed and checked
  against the member's SHA-256 as ``members.read_member`` does; *sequential* — the same archive
  read from its start (what an archive without an index gets); *ratarmount* — ``ratarmountcore``
  with ``indexed_gzip`` on the same ``.tar.gz`` (its index built once, timed apart; zstd needs
  ``indexed_zstd``, not installed here). Wall time (median, p99) and CPU time per MiB of member.

The result replaces its section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import platform
import random
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import zstandard
from isal import igzip, igzip_threaded

from app.demo import json_blob, pdf_blob, png_blob, record_pool
from app.lifecycle import codecs
from app.lifecycle.codecs import blocks_holding
from app.lifecycle.members import _member_pieces
from app.lifecycle.store import RangeReader
from app.lifecycle.tarball import write_tar
from bench.archive import DATA, parse_size
from bench.results import write_section

ROUNDS = 6
READS = 30


def generate(folder: Path, size: int, files: int, seed: int = 14) -> None:
    """``files`` files of about ``size`` bytes in all: 60 % JSON pages, 32 % screenshots, 8 % PDFs."""
    rng = random.Random(seed)
    pool = record_pool(rng)
    mean = size // files
    kinds = [("results", "page-{:05d}.json", 0.60, lambda n: json_blob(rng, n, pool))]
    kinds += [("screenshots", "shot-{:05d}.png", 0.32, lambda n: png_blob(rng, n))]
    kinds += [("pdfs", "doc-{:05d}.pdf", 0.08, lambda n: pdf_blob(rng, n))]
    for kind, pattern, share, make in kinds:
        (folder / kind).mkdir(parents=True, exist_ok=True)
        for index in range(int(files * share)):
            (folder / kind / pattern.format(index)).write_bytes(make(max(2000, int(rng.uniform(0.4, 1.6) * mean))))


class TodayZstd(io.RawIOBase):
    """zstd as written before this change (kept here as the reference): one stream through zstd's
    own worker threads, a new frame only where the level changes (packed members)."""

    def __init__(self, raw):  # type: ignore[no-untyped-def]
        self.raw, self.level, self.frame, self.contexts = raw, codecs.ZSTD_LEVEL, None, {}

    def writable(self) -> bool:
        return True

    def member(self, name: str, size: int) -> None:
        if codecs.is_packed(name) and size < codecs.PACKED_FRAME_MIN:
            return
        level = codecs.ZSTD_PACKED_LEVEL if codecs.is_packed(name) else codecs.ZSTD_LEVEL
        if level != self.level and self.frame is not None:
            self.frame.close()
            self.frame = None
        self.level = level

    def write(self, data) -> int:  # type: ignore[no-untyped-def, override]
        if self.frame is None:
            if self.level not in self.contexts:
                self.contexts[self.level] = zstandard.ZstdCompressor(
                    level=self.level, threads=codecs._zstd_workers(), write_checksum=True
                )
            self.frame = self.contexts[self.level].stream_writer(self.raw, closefd=False)
        return self.frame.write(data)

    def close(self) -> None:
        if self.frame is not None:
            self.frame.close()
            self.frame = None
        super().close()


def write(folder: Path, target: Path, codec: str, seekable: bool) -> tuple[float, list, list | None]:
    """Archive ``folder`` into ``target``; seconds, the manifest, the block index (seekable only)."""
    start = time.perf_counter()
    with target.open("wb") as raw:
        if seekable:
            stream = codecs.compressor(raw, codec)
        elif codec == "gzip":  # gzip before this change: ISA-L's threaded writer, one stream
            threads = max(1, codecs._spare_cores())
            stream = igzip_threaded.open(raw, "wb", compresslevel=codecs.GZIP_LEVEL, threads=threads)
        else:
            stream = TodayZstd(raw)
        written = write_tar(folder, stream)
        stream.close()
    return time.perf_counter() - start, written.members, getattr(stream, "blocks", None) if seekable else None


def read_seekable(path: Path, codec: str, blocks: list, member) -> bytes:  # type: ignore[no-untyped-def]
    first, stop, block_start = blocks_holding(blocks, member.offset, member.offset + max(1, member.size))
    handle = path.open("rb")
    handle.seek(first)
    raw = RangeReader(handle, None if stop is None else stop - first)
    data = b"".join(_member_pieces(raw, codec, member.offset - block_start, member.size))  # type: ignore[arg-type]
    return data


def read_sequential(path: Path, codec: str, member) -> bytes:  # type: ignore[no-untyped-def]
    return b"".join(_member_pieces(path.open("rb"), codec, member.offset, member.size))


def alone(path: Path, codec: str, member):  # type: ignore[no-untyped-def]
    """The floor: the member's bytes compressed on their own (same codec and level), decoded whole.
    No seekable layout can read a member for less than this."""
    data = read_sequential(path, codec, member)
    if codec == "gzip":
        packed = igzip.compress(data, codecs.GZIP_LEVEL)
        return lambda: igzip.decompress(packed)
    packed_kind = codecs.is_packed(member.path) and member.size >= codecs.PACKED_FRAME_MIN
    level = codecs.ZSTD_PACKED_LEVEL if packed_kind else codecs.ZSTD_LEVEL
    packed = zstandard.ZstdCompressor(level=level, write_checksum=True).compress(data)
    return lambda: zstandard.ZstdDecompressor().decompress(packed)


def timed(read, sha: str, size: int) -> dict:  # type: ignore[no-untyped-def]
    walls, cpus = [], []
    for _ in range(READS):
        wall, cpu = time.perf_counter(), time.process_time()
        data = read()
        if hashlib.sha256(data).hexdigest() != sha or len(data) != size:
            raise SystemExit("a read returned the wrong bytes")
        cpus.append(time.process_time() - cpu)
        walls.append(time.perf_counter() - wall)
    walls.sort()
    mib = max(size, 1) / (1 << 20)
    return {
        "median_ms": statistics.median(walls) * 1000,
        "p99_ms": walls[min(len(walls) - 1, int(0.99 * len(walls)))] * 1000,
        "cpu_ms_per_mib": statistics.median(cpus) * 1000 / mib,
    }


def ratarmount_reader(path: Path, work: Path):  # type: ignore[no-untyped-def]
    """ratarmountcore's indexed access to the archive (None when it cannot open it), and its index build time."""
    try:
        from ratarmountcore.mountsource.factory import open_mount_source
    except ImportError:
        return None, None
    start = time.perf_counter()
    try:
        source = open_mount_source(str(path), writeIndex=True, indexFilePath=str(work / f"{path.name}.index.sqlite"))
    except Exception as error:  # noqa: BLE001 - a reference we measure against, not our code
        print(f"ratarmount cannot open {path.name}: {error}", flush=True)
        return None, None
    built = time.perf_counter() - start

    def read(member) -> bytes:  # type: ignore[no-untyped-def]
        info = source.lookup("/" + member.path)
        with source.open(info) as handle:
            return handle.read()

    return read, built


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1G")
    parser.add_argument("--files", type=int, default=12_000)
    parser.add_argument("--zstd-block", default=None, help="zstd's frame size to try (e.g. 1M)")
    args = parser.parse_args()
    if args.zstd_block:
        codecs.ZSTD_BLOCK_BYTES = parse_size(args.zstd_block)
    size = parse_size(args.size)
    folder = DATA / f"members-{args.size}-{args.files}"
    if not folder.exists():
        print(f"writing {args.files:,} files, {args.size} into {folder} …", flush=True)
        partial = folder.with_name(folder.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        generate(partial, size, args.files)
        partial.rename(folder)
    content = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    files = sum(1 for f in folder.rglob("*") if f.is_file())
    work = Path(tempfile.mkdtemp(prefix="agar-bench-members-"))
    writes, reads, builds = [], [], {}
    try:
        for codec in ("gzip", "zstd"):
            ext = {"gzip": "gz", "zstd": "zst"}[codec]
            results = {True: [], False: []}
            outputs = {}
            for round_ in range(ROUNDS):
                for seekable in (False, True) if round_ % 2 == 0 else (True, False):  # neither always goes first
                    target = work / f"{'seekable' if seekable else 'today'}.tar.{ext}"
                    seconds, members, blocks = write(folder, target, codec, seekable)
                    results[seekable].append(seconds)
                    outputs[seekable] = (target, members, blocks)
            for seekable in (False, True):
                target = outputs[seekable][0]
                writes.append(
                    {
                        "codec": codec,
                        "how": "seekable blocks" if seekable else "today (one stream)",
                        "seconds": statistics.median(results[seekable]),
                        "best": min(results[seekable]),
                        "bytes": target.stat().st_size,
                        "blocks": len(outputs[seekable][2] or []),
                    }
                )
            seek_path, members, blocks = outputs[True]
            today_path, today_members, _ = outputs[False]
            hashes = {}
            file_members = [m for m in members if m.kind == "file"]
            picks = {"first": file_members[0], "middle": file_members[len(file_members) // 2], "last": file_members[-1]}
            by_path = {m.path: m for m in today_members}
            rat, built = ratarmount_reader(today_path, work) if codec == "gzip" else (None, None)
            builds[codec] = built
            for where, member in picks.items():
                sha = hashes.setdefault(
                    member.path, hashlib.sha256(read_sequential(seek_path, codec, member)).hexdigest()
                )
                old = by_path[member.path]
                row = {"codec": codec, "where": where, "path": member.path, "size": member.size}
                row["seekable"] = timed(
                    lambda m=member, p=seek_path, c=codec, b=blocks: read_seekable(p, c, b, m), sha, member.size
                )
                row["sequential"] = timed(
                    lambda m=old, p=today_path, c=codec: read_sequential(p, c, m), sha, member.size
                )
                row["ratarmount"] = timed(lambda m=old, r=rat: r(m), sha, member.size) if rat else None
                row["alone"] = timed(alone(seek_path, codec, member), sha, member.size)
                reads.append(row)
                print(codec, where, {k: v for k, v in row.items() if k not in ("path",)}, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(args, content, files, writes, reads, builds)


def report(args, content, files, writes, reads, builds) -> None:  # type: ignore[no-untyped-def]
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "## Reading one member of an archived run, "
        f"blocks of {codecs.GZIP_BLOCK_BYTES >> 10} KiB (gzip) and {codecs.ZSTD_BLOCK_BYTES >> 10} KiB (zstd) "
        "(`bench/members.py`, issue 14)",
        "",
        f"`python -m bench.members --size {args.size} --files {args.files}"
        + (f" --zstd-block {args.zstd_block}" if args.zstd_block else "")
        + f"` on {platform.node()} "
        f"({os.cpu_count()} cores), {now}: a run of {files:,} files, {content / 1e9:.2f} GB (60 % JSON pages, "
        f"32 % screenshots, 8 % PDFs, {content // files // 1024} KB on average), warm page cache. Blocks end at a "
        f"member's header past the block size, inside a member at {codecs.BLOCK_MAX >> 20} MiB.",
        "",
        f"**Writing** ({ROUNDS} rounds, each writer first in every other round; the ratio is archive / content):",
        "",
        "| codec | written as | time (median) | best | MB/s (median) | archive | ratio | blocks |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for w in writes:
        lines.append(
            f"| {w['codec']} | {w['how']} | {w['seconds']:.2f} s | {w['best']:.2f} s | "
            f"{content / w['seconds'] / 1e6:.0f} | "
            f"{w['bytes'] / 1e6:.1f} MB | {w['bytes'] / content:.4f} | {w['blocks'] or '—'} |"
        )
    for codec in ("gzip", "zstd"):
        today, new = (w for w in writes if w["codec"] == codec)
        lines.append(
            f"\n{codec}: the seekable archive is {100 * (new['bytes'] / today['bytes'] - 1):+.2f} % in size and "
            f"{100 * (new['seconds'] / today['seconds'] - 1):+.1f} % in time against today's (best of each: "
            f"{100 * (new['best'] / today['best'] - 1):+.1f} %)."
        )
    lines += [
        "",
        f"**Reading one member** ({READS} reads each; the member's bytes checked against its SHA-256; CPU per MiB "
        "is the read's CPU time over the member's size; *member alone* is the floor: the member compressed "
        "on its own with the same codec and level, decoded whole and hashed):",
        "",
        "| codec | member | size | seekable median / p99 | CPU/MiB | sequential median / p99 | CPU/MiB "
        "| ratarmount median / p99 | CPU/MiB | member alone: CPU/MiB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def cell(result) -> str:  # type: ignore[no-untyped-def]
        if result is None:
            return "— | —"
        return f"{result['median_ms']:.2f} / {result['p99_ms']:.2f} ms | {result['cpu_ms_per_mib']:.1f} ms"

    for r in reads:
        lines.append(
            f"| {r['codec']} | {r['where']} | {r['size'] / 1024:.0f} KB | {cell(r['seekable'])} | "
            f"{cell(r['sequential'])} | {cell(r['ratarmount'])} | {r['alone']['cpu_ms_per_mib']:.1f} ms |"
        )
    built = builds.get("gzip")
    lines.append(
        "\nratarmount's index of the gzip archive took "
        + (f"{built:.1f} s to build (once; not in the reads above)." if built else "— (not available).")
        + " Our archives need no index build: the block index is written with the archive."
    )
    write_section("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
