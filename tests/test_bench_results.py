"""bench/RESULTS.md: each benchmark replaces its own section and keeps the others."""

from bench.results import write_section


def test_a_section_is_replaced_and_the_others_kept(tmp_path):
    path = tmp_path / "RESULTS.md"
    write_section("## Archive\n\nold archive\n\n### Against the targets\n\n- x\n", path)
    write_section("## API\n\napi figures\n", path)
    write_section("## Archive\n\nnew archive\n", path)
    text = path.read_text()
    assert text.startswith("# Benchmark results\n")
    assert "new archive" in text and "old archive" not in text and "### Against" not in text
    assert "api figures" in text and text.count("## Archive") == 1


def test_the_api_section_holds_each_list_to_five_times_the_trivial_route(tmp_path):
    from argparse import Namespace
    from datetime import UTC, datetime

    from bench.api import write_results

    def timing(p99: float) -> dict:
        return {"p50": p99 / 2, "p99": p99, "rps": 100.0, "errors": 0, "p99s": [p99, p99 + 1]}

    results = [
        ("trivial Flask route (ceiling)", "/ping", None, timing(3.0)),
        ("archived list, 8-day range", "/api/scraper/jobs/archived", "list", timing(15.0)),
        ("archived list, 100 k deep by cursor", "/api/scraper/jobs/archived", "list", timing(15.3)),
        ("one run", "/api/scraper/jobs/x", "active", timing(11.0)),
    ]
    args = Namespace(runs=1_000_000, seconds=10, connections=8, rounds=3)
    started = datetime(2026, 12, 5, 5, 30, tzinfo=UTC)
    path = tmp_path / "RESULTS.md"
    write_results(args, started, 57.6, results, {"archived list": "Index Only Scan"}, path)
    rows = {line.split(" | ")[0].lstrip("| "): line for line in path.read_text().splitlines() if line.startswith("| ")}
    assert "| 5.0 |" in rows["archived list, 8-day range"] and rows["archived list, 8-day range"].endswith(
        "| ≤ 5× | yes | 15.0 / 16.0 |"
    )
    assert (
        "| 5.1 |" in rows["archived list, 100 k deep by cursor"]
        and "| ≤ 5× | NO |" in rows["archived list, 100 k deep by cursor"]
    )
    assert "| ≤ 10 ms | NO |" in rows["one run"]
    text = path.read_text()
    assert "Date: 2026-12-05 05:30 UTC" in text and "python -m bench.api --runs 1000000 --seconds 10" in text
    assert "Machine: " in text and "Index Only Scan" in text and "loaded with COPY in 58 s" in text
