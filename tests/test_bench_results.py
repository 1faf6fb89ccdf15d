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
