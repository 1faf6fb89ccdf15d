"""API benchmark at 1,000,000 runs in PostgreSQL: p50/p99 and throughput next to a trivial route.

    make bench-api                      # 1,000,000 runs, 8 connections, 15 s per endpoint
    python -m bench.api --runs 200000 --seconds 5
    python -m bench.api --reuse         # keep the runs loaded by the last call (while tuning; their
                                        # dates stay those of that load, so report from a fresh one)

It creates the database ``agar_bench`` (dropped first), migrates it, loads the runs with COPY (a
realistic spread over two years: the last week active, then archived, then trash, most purged),
serves the product with gunicorn (2 workers) and a trivial Flask route the same way, and drives
each endpoint with wrk from another process on loopback. Query plans go into bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import redis

from bench.results import write_section

ROOT = Path(__file__).resolve().parent.parent
ADMIN_URL = os.environ.get("BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
DB_NAME = "agar_bench"
SCRAPERS = [
    f"{site}-{kind}"
    for site in ("books", "quotes", "shop", "news", "jobs")
    for kind in ("list", "detail", "search", "sitemap")
]


# A Redis database of the benchmark's own, emptied at the start: no figures cached from another run.
BENCH_REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")


def db_url() -> str:
    return ADMIN_URL.rsplit("/", 1)[0] + f"/{DB_NAME}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# -- data ------------------------------------------------------------------------------------------


def create_database(work: Path) -> str:
    with psycopg.connect(ADMIN_URL, autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {DB_NAME}")
        connection.execute(f"CREATE DATABASE {DB_NAME}")
    env = {**os.environ, "DATABASE_URL": db_url(), "SCRAPER_DATA_PATH": str(work), "SECRET_KEY": "bench"}
    subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "flask",
            "--app",
            "wsgi",
            "users",
            "create",
            "bench-admin",
            "--admin",
            "--password",
            "bench-password",
        ],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip().splitlines()[-1]


def reuse_database(work: Path, count: int) -> tuple[str, dict[str, list[str]]] | None:
    """The token and samples of the runs a previous call loaded, if it loaded ``count`` of them."""
    try:
        with psycopg.connect(db_url()) as connection:
            if connection.execute("SELECT count(*) FROM jobs").fetchone()[0] != count:
                return None
            samples = {
                tier: [str(row[0]) for row in connection.execute(sql).fetchall()]
                for tier, sql in (
                    ("active", "SELECT id FROM jobs WHERE archived_at IS NULL AND deleted_at IS NULL LIMIT 2000"),
                    ("archived", "SELECT id FROM jobs WHERE archived_at IS NOT NULL AND deleted_at IS NULL LIMIT 2000"),
                )
            }
    except psycopg.OperationalError:
        return None
    env = {**os.environ, "DATABASE_URL": db_url(), "SCRAPER_DATA_PATH": str(work), "SECRET_KEY": "bench"}
    # The schema as the code has it now (a new index is measured), and fresh planner statistics.
    upgrade = [sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"]
    subprocess.run(upgrade, cwd=ROOT, env=env, check=True, capture_output=True)
    with psycopg.connect(db_url(), autocommit=True) as connection:
        connection.execute("ANALYZE")
    out = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "users", "rotate-token", "bench-admin"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip().splitlines()[-1], samples


def load_runs(count: int, seed: int = 11) -> dict[str, list[str]]:
    """COPY ``count`` runs spread over two years; return sample ids per tier."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    owners = [uuid.UUID(int=rng.getrandbits(128)) for _ in range(48)]
    samples: dict[str, list[str]] = {"active": [], "archived": []}
    events = []
    with psycopg.connect(db_url()) as connection:
        admin_id = connection.execute("SELECT id FROM users").fetchone()[0]
        with connection.cursor() as cursor:
            with cursor.copy("COPY users (id, username, password_hash, role, created_at) FROM STDIN") as copy:
                for i, owner in enumerate(owners):
                    copy.write_row((owner, f"member{i:02d}", "!", "member", now))
            columns = (
                "id, name, scraper, status, created_by, created_at, started_at, completed_at, folder_name, "
                "stats, size_bytes, archived_at, archive_path, archive_size_bytes, archive_sha256, compression, "
                "keep_forever, deleted_at, deleted_by, deletion_reason, purged_at"
            )
            with cursor.copy(f"COPY jobs ({columns}) FROM STDIN") as copy:
                for i in range(count):
                    job_id = uuid.UUID(int=rng.getrandbits(128), version=4)
                    created = now - timedelta(seconds=rng.uniform(0, 730 * 86400))
                    completed = created + timedelta(minutes=rng.uniform(1, 90))
                    age = (now - completed).days
                    status = "completed" if rng.random() < 0.9 else rng.choice(["failed", "cancelled"])
                    if completed > now:
                        status, completed = "running", None
                    folder = created.strftime("%Y%m%d_%H%M%S")
                    size = rng.randint(1_000_000, 400_000_000)
                    archived = deleted = purged = key = None
                    archive_size = sha = codec = deleted_by = reason = None
                    if completed is not None and age >= 7:
                        archived = completed + timedelta(days=7, hours=2)
                        archive_size, sha, codec = int(size * 0.57), f"{rng.getrandbits(256):064x}", "gzip"
                        key = f"archive/{folder[:4]}/{folder[4:6]}/{folder}_{job_id}.tar.gz"
                    if completed is not None and age >= 30:
                        deleted, deleted_by, reason = completed + timedelta(days=30, hours=3), "scheduler", "age"
                        key = "trash/" + key.partition("/")[2]  # type: ignore[union-attr]
                    if completed is not None and age >= 37:
                        purged = deleted + timedelta(days=7)  # type: ignore[operator]
                    owner = admin_id if i % 50 == 0 else owners[i % len(owners)]
                    copy.write_row(
                        (
                            job_id,
                            f"{rng.choice(SCRAPERS)} run {i}",
                            rng.choice(SCRAPERS),
                            status,
                            owner,
                            created,
                            created,
                            completed,
                            folder,
                            '{"pages": 120, "items": 2400}',
                            size,
                            archived,
                            key,
                            archive_size,
                            sha,
                            codec,
                            False,
                            deleted,
                            deleted_by,
                            reason,
                            purged,
                        )
                    )
                    tier = "active" if archived is None else "archived" if deleted is None else None
                    if tier and len(samples[tier]) < 2000:
                        samples[tier].append(str(job_id))
                    if archived is not None and (now - archived).days < 60:
                        events.append((job_id, "archive", "scheduler", "succeeded", archived, size, archive_size))
            with cursor.copy(
                "COPY lifecycle_events (job_id, action, actor, outcome, started_at, bytes_before, bytes_after) "
                "FROM STDIN"
            ) as copy:
                for row in events:
                    copy.write_row(row)
        connection.commit()
    # What autovacuum does soon after a bulk load: statistics, and the visibility map that lets
    # counts over a tier's partial index skip the table.
    with psycopg.connect(db_url(), autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE")
    return samples


# -- serving and load --------------------------------------------------------------------------------


def serve(module: str, port: int, env: dict[str, str]) -> subprocess.Popen:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            "2",
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            module,
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{module} did not start on port {port}")


def stop(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=30)


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk(url: str, seconds: int, connections: int, token: str | None = None, script: str | None = None) -> dict:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if token:
        command += ["-H", f"Authorization: Bearer {token}"]
    if script:
        command += ["-s", script]
    output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    latency = {
        m.group(1): float(m.group(2)) * UNITS[m.group(3)]
        for m in re.finditer(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
    }
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {"p50": latency["50"], "p99": latency["99"], "rps": rps, "errors": int(non2xx.group(1)) if non2xx else 0}


def median_window(windows: list[dict]) -> dict:
    """The window with the median p99, keeping every window's p99 for the record."""
    ordered = sorted(windows, key=lambda w: w["p99"])
    return {
        **ordered[len(ordered) // 2],
        "p99s": [w["p99"] for w in windows],
        "errors": sum(w["errors"] for w in windows),
    }


def random_id_script(ids: list[str], directory: Path) -> str:
    path = directory / "one_run.lua"
    path.write_text(
        "ids = {" + ",".join(f'"{i}"' for i in ids) + "}\n"
        "request = function()\n"
        '  return wrk.format("GET", "/api/scraper/jobs/" .. ids[math.random(#ids)])\n'
        "end\n"
    )
    return str(path)


def explain(sql: str) -> str:
    with psycopg.connect(db_url()) as connection:
        rows = connection.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql).fetchall()
    return "\n".join(row[0] for row in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="windows per endpoint; the median is reported")
    parser.add_argument("--reuse", action="store_true", help="keep the runs of the last call if it loaded --runs")
    args = parser.parse_args()
    started = datetime.now(UTC)
    work = Path(tempfile.mkdtemp(prefix="agar-bench-api-"))
    reused = reuse_database(work, args.runs) if args.reuse else None
    load_seconds = None
    if reused is not None:
        print(f"reusing the {args.runs:,} runs of {DB_NAME}", flush=True)
        token, samples = reused
    else:
        print(f"creating {DB_NAME} and loading {args.runs:,} runs …", flush=True)
        token = create_database(work)
        t0 = time.perf_counter()
        samples = load_runs(args.runs)
        load_seconds = time.perf_counter() - t0
    now = datetime.now(UTC)
    window = f"start_date={(now - timedelta(days=20)).date()}&end_date={(now - timedelta(days=14)).date()}"
    endpoints = [
        ("trivial Flask route (ceiling)", "/ping", None),
        ("active list (`GET /jobs`)", "/api/scraper/jobs?limit=50", None),
        ("one run (`GET /jobs/{id}`, random active ids)", None, random_id_script(samples["active"], work)),
        ("archived list, 7-day range", f"/api/scraper/jobs/archived?{window}&limit=50", None),
        ("storage stats", "/api/scraper/storage/stats", None),
    ]
    env = {
        **os.environ,
        "DATABASE_URL": db_url(),
        "SCRAPER_DATA_PATH": str(work),
        "SECRET_KEY": "bench",
        "REDIS_URL": BENCH_REDIS_URL,
    }
    redis.Redis.from_url(BENCH_REDIS_URL).flushdb()
    product_port, trivial_port = free_port(), free_port()
    product, trivial = serve("wsgi:app", product_port, env), serve("bench.trivial_app:app", trivial_port, env)
    windows: dict[str, list[dict]] = {label: [] for label, _path, _script in endpoints}
    try:
        for round_ in range(args.rounds):  # rounds interleave the endpoints: a noisy moment hits them alike
            for label, path, script in endpoints:
                port = trivial_port if path == "/ping" else product_port
                base = f"http://127.0.0.1:{port}"
                if round_ == 0:
                    wrk(base + (path or "/"), 2, args.connections, token, script)  # warm-up
                result = wrk(base + (path or "/"), args.seconds, args.connections, token, script)
                windows[label].append(result)
                print(label, result, flush=True)
        results = [
            (label, path or "/api/scraper/jobs/{random id}", median_window(windows[label]))
            for label, path, _script in endpoints
        ]
    finally:
        stop(product)
        stop(trivial)
    plans = {
        "active list": "SELECT * FROM jobs WHERE archived_at IS NULL AND deleted_at IS NULL "
        "ORDER BY created_at DESC, id DESC LIMIT 50",
        "active count": "SELECT count(*) FROM jobs WHERE archived_at IS NULL AND deleted_at IS NULL",
        "archived list, 7-day range": "SELECT * FROM jobs WHERE archived_at IS NOT NULL AND deleted_at IS NULL AND "
        f"created_at >= '{(now - timedelta(days=20)).date()}' AND created_at < '{(now - timedelta(days=13)).date()}' "
        "ORDER BY created_at DESC, id DESC LIMIT 50",
        "one run": f"SELECT * FROM jobs WHERE id = '{samples['active'][0]}'",
    }
    write_results(args, started, load_seconds, results, {name: explain(sql) for name, sql in plans.items()})


def write_results(args, started, load_seconds, results, plans) -> None:  # type: ignore[no-untyped-def]
    targets = {"active list": 10, "one run": 10, "archived list": 25, "storage stats": 25}
    lines = [
        "## API at scale (`bench/api.py`)",
        "",
        f"- Date: {started:%Y-%m-%d %H:%M} UTC; command: `python -m bench.api --runs {args.runs} --seconds "
        f"{args.seconds} --connections {args.connections} --rounds {args.rounds}`",
        f"- Machine: {platform.node()}, {os.cpu_count()} cores, PostgreSQL on the same machine; gunicorn 2 sync "
        f"workers; wrk 2 threads, {args.connections} connections, {args.rounds} windows of {args.seconds} s per "
        "endpoint (after a 2 s warm-up), the endpoints interleaved; the window with the median p99 is shown, "
        "every window's p99 in the last column; all on loopback (server, database and load share the 2 cores).",
        f"- {args.runs:,} runs loaded with COPY in {load_seconds:.0f} s."
        if load_seconds is not None
        else f"- {args.runs:,} runs, loaded with COPY by an earlier call (`--reuse`).",
        "",
        "| endpoint | p50 ms | p99 ms | requests/s | non-2xx (all windows) | target p99 | met | p99 of each window |",
        "|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for label, _path, r in results:
        target = next((v for k, v in targets.items() if label.startswith(k)), None)
        met = "" if target is None else ("yes" if r["p99"] <= target else "NO")
        lines.append(
            f"| {label} | {r['p50']:.2f} | {r['p99']:.2f} | {r['rps']:.0f} | {r['errors']} | {target or ''} | {met} | "
            + " / ".join(f"{p:.1f}" for p in r["p99s"])
            + " |"
        )
    lines += ["", "### Query plans (EXPLAIN ANALYZE at this size)", ""]
    for name, plan in plans.items():
        lines += [f"**{name}**", "", "```", plan, "```", ""]
    section = "\n".join(lines) + "\n"
    write_section(section)
    print(section)


if __name__ == "__main__":
    main()
