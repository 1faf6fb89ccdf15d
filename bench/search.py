"""The Runs page's search at 1,000,000 runs: its matches counted in every tier and its first page,
with the archived and deleted tiers' trigram indexes (migration 0011) and without them.

Run ``python -m bench.api`` once first (it creates and loads the ``agar_bench`` database; ``--seconds
1 --rounds 1`` is enough), then ``python -m bench.search``. It builds the page's queries with the
app's own code (``queries.runs_in_tier`` as an admin sees them, ``capped_count`` for the tabs, the
first 50 newest), times each search ROUNDS times and reports the median; "without" drops the 0011
indexes inside a transaction that is rolled back, so the database is left as it was. The result
replaces its section of bench/RESULTS.md.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from datetime import UTC, datetime

from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import Session

from app.lifecycle.access import SYSTEM
from app.lifecycle.queries import TIERS, newest_runs_page, runs_in_tier
from app.models import COUNT_CAP, Job, capped_count
from bench.api import DB_NAME, RARE_TEXT, db_url
from bench.results import write_section

ROUNDS = 5
INDEXES_0011 = [
    f"ix_jobs_{tier}_{column}_trgm"
    for tier in ("archived", "deleted")
    for column in ("name", "scraper", "folder_name", "id")
]


def page_of_search(session: Session, text_: str) -> tuple[dict[str, int], int]:
    """What the Runs page asks for a search: the capped count of each tier, then the first 50 of one."""
    counted = {tier: capped_count(session, runs_in_tier(SYSTEM, tier, text=text_)) for tier in TIERS}
    counts = {tier: count for tier, (count, _more) in counted.items()}
    tier = next((name for name, count in counts.items() if count), "active")
    few = not counted[tier][1]
    rows = session.scalars(newest_runs_page(runs_in_tier(SYSTEM, tier, text=text_), 50, 0, few=few)).all()
    return counts, len(rows)


def timed(session: Session, text_: str) -> tuple[float, dict[str, int]]:
    times, counts = [], {}
    for _ in range(ROUNDS):
        start = time.perf_counter()
        counts, _rows = page_of_search(session, text_)
        times.append(time.perf_counter() - start)
    return statistics.median(times), counts


def main() -> None:
    engine = create_engine(db_url().replace("postgresql://", "postgresql+psycopg://"))
    with Session(engine) as session:
        total = session.scalar(select(Job.id).limit(1))
        if total is None:
            raise SystemExit(f"{DB_NAME} is empty: run `python -m bench.api` first")
        archived = session.execute(
            select(Job.id, Job.folder_name).where(TIERS["archived"]()).order_by(Job.created_at).offset(300_000).limit(1)
        ).one()
        runs = session.scalar(text("SELECT count(*) FROM jobs"))
        searches = [
            (f"text a handful match (`{RARE_TEXT}`)", RARE_TEXT),
            ("text a third match (`books`)", "books"),
            ("an archived run's whole id, pasted", str(archived.id)),
            ("its folder as a shell shows it, pasted", f"/srv/jobs/{archived.folder_name}_{archived.id}/"),
            ("the start of its id (8 characters)", str(archived.id)[:8]),
            ("a piece of its id across a dash, typed without it (12)", archived.id.hex[4:16]),
            ("a middle piece of its id without dashes (20)", archived.id.hex[10:30]),
            ("its folder and id start as the lists show them", f"{archived.folder_name}_{str(archived.id)[:8]}"),
            ("text nothing matches", "no such text anywhere"),
        ]
        rows = []
        for label, query in searches:
            with_indexes, counts = timed(session, query)
            session.rollback()
            for name in INDEXES_0011:
                session.execute(text(f"DROP INDEX IF EXISTS {name}"))
            without, _ = timed(session, query)
            session.rollback()  # the indexes are back
            rows.append((label, counts, with_indexes, without))
            print(
                f"{label}: {with_indexes * 1000:.1f} ms with 0011, {without * 1000:.1f} ms without; {counts}",
                flush=True,
            )
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "## Search in every tier at 1 M runs (`bench/search.py`, issue 13)",
        "",
        f"`python -m bench.search` on {platform.node()} ({os.cpu_count()} cores), {now}; PostgreSQL, "
        f"{runs:,} runs in `{DB_NAME}` (as `bench/api.py` loads them). One search as the Runs page does it: "
        f"the capped count ({COUNT_CAP:,}) of each of the three tiers, then the first 50 of the first tier with "
        f"matches, as an admin; median of {ROUNDS}. *Without 0011*: the archived and deleted tiers' "
        "trigram indexes dropped in a rolled-back transaction (the active tier keeps 0006's).",
        "",
        "| search | matches (active / archived / deleted) | with 0011 | without 0011 | ratio |",
        "|---|---|---:|---:|---:|",
    ]
    for label, counts, with_indexes, without in rows:
        shown = " / ".join(f"{counts[tier]:,}" for tier in TIERS)
        lines.append(
            f"| {label} | {shown} | {with_indexes * 1000:.1f} ms | {without * 1000:.1f} ms | "
            f"{without / with_indexes:.1f}× |"
        )
    write_section("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
