"""What the folder-against-archive comparison (issue 9, point 1) costs next to archiving itself.

    python -m bench.folder_check                 # a 1 GB run of the bench mix and 12,000 small JSON pages

Before a run folder is removed it is compared with its archive's manifest. After archival the
comparison stats each file and reads none whose fingerprint (size, inode, mtime, ctime) is the one
taken as it was read; reconcile and restore expiry have no fingerprints and hash every file. The
folders' timestamps are set a day back, as for a run archived a week after it finished (a file
changed within 2 s of being read is hashed again whatever its fingerprint says). Each figure is
the median of 3 interleaved rounds, page cache warm. Results go to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.archive import generate_run, parse_size, warm
from bench.results import write_section

ROOT = Path(__file__).resolve().parent.parent


def small_pages(folder: Path, count: int, size: int) -> None:
    """``count`` JSON pages of ``size`` bytes in 100 folders: a crawl's many small files."""
    import random

    from app.demo import json_blob, record_pool

    rng = random.Random(11)
    pool = record_pool(rng)
    for index in range(count):
        path = folder / f"pages/{index % 100:02d}/page-{index:05d}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(json_blob(rng, size, pool))


def age(folder: Path, seconds: float) -> None:
    moment = time.time() - seconds
    for path in folder.rglob("*"):
        os.utime(path, (moment, moment), follow_symlinks=False)


def measure(folder: Path, work: Path, rounds: int) -> dict[str, float]:
    from app.config import load_settings
    from app.lifecycle.archival import write_archive
    from app.lifecycle.context import Lifecycle
    from app.lifecycle.locks import RedisLocks
    from app.lifecycle.store import LocalArchiveStore
    from app.lifecycle.tarball import folder_differences

    settings = load_settings({"SCRAPER_DATA_PATH": str(work)})
    store = LocalArchiveStore(work / "archive", work / "trash")
    lc = Lifecycle(None, settings, store, RedisLocks(None))  # type: ignore[arg-type]  # no database, no lock
    times: dict[str, list[float]] = {"archive": [], "check_after_archival": [], "check_by_hash": []}
    for round_number in range(rounds):
        key = f"archive/bench-{round_number}.tar.gz"
        start = time.perf_counter()
        archive = write_archive(lc, folder, key, "gzip")
        times["archive"].append(time.perf_counter() - start)
        start = time.perf_counter()
        after = folder_differences(folder, archive.members, archive.fingerprints)
        times["check_after_archival"].append(time.perf_counter() - start)
        start = time.perf_counter()
        hashed = folder_differences(folder, archive.members)
        times["check_by_hash"].append(time.perf_counter() - start)
        if after or hashed:
            raise SystemExit(f"the folder differs from its own archive: {(after or hashed)[:3]}")
        store.remove(key)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1G", help="the bench-mix run's size")
    parser.add_argument("--pages", type=int, default=12_000, help="how many small JSON pages")
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "data" / "folder_check")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    cases = {}
    mix = args.work / "mix"
    generate_run(mix, parse_size(args.size))
    pages = args.work / "pages"
    small_pages(pages, args.pages, 40_000)
    for name, folder in ((f"bench mix, {args.size}", mix), (f"{args.pages:,} JSON pages of 40 KB", pages)):
        age(folder, 86_400)
        warm(folder)
        files = sum(1 for path in folder.rglob("*") if path.is_file())
        size = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
        cases[name] = (files, size, measure(folder, args.work / "out", args.rounds))
    shutil.rmtree(args.work, ignore_errors=True)

    lines = [
        "## Folder check before removal (issue 9)",
        "",
        f"`python -m bench.folder_check` on {platform.node()} ({os.cpu_count()} cores), "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; median of {args.rounds} rounds, gzip, warm page cache.",
        "",
        "| run | files | MB | archive (write_archive) | check after archival (fingerprints) | share | "
        "check by hash (reconcile, expiry) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, (files, size, t) in cases.items():
        share = t["check_after_archival"] / t["archive"]
        lines.append(
            f"| {name} | {files:,} | {size / 2**20:,.0f} | {t['archive']:.2f} s | "
            f"{t['check_after_archival'] * 1000:.0f} ms | {share:.1%} | {t['check_by_hash']:.2f} s |"
        )
    section = "\n".join(lines) + "\n"
    write_section(section)
    print(section)


if __name__ == "__main__":
    main()
