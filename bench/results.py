"""bench/RESULTS.md holds one section per benchmark; each run replaces its own section only."""

from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
TITLE = "# Benchmark results\n"


def write_section(section: str, path: Path = RESULTS) -> None:
    """Put ``section`` (starting with its ``## `` heading) in place of the section of that heading."""
    heading = section.splitlines()[0]
    existing = path.read_text() if path.exists() else TITLE
    parts = existing.split("\n## ")
    head, sections = parts[0], ["## " + part for part in parts[1:]]
    replaced = [section.rstrip() + "\n" if s.splitlines()[0] == heading else s.rstrip() + "\n" for s in sections]
    if not any(s.splitlines()[0] == heading for s in sections):
        replaced.append(section.rstrip() + "\n")
    path.write_text(head.rstrip() + "\n\n" + "\n".join(replaced))
