"""The README's benchmark figures are the results files' (benchmarks/readme_figures.py writes them)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import readme_figures

RESULTS = REPO / "benchmarks" / "results" / "quant_ladder.json"


def test_the_readme_per_example_matches_the_results_file() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "readme_figures.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_check_fails_when_a_figure_changes() -> None:
    """The control: one measured figure different in the results -> a different README block."""
    results = json.loads(RESULTS.read_text(encoding="utf-8"))
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert readme_figures.render(readme, results) == readme
    changed = copy.deepcopy(results)
    row = next(r for r in changed["ladders"]["smollm2"]["run"]["results"] if r["id"].endswith(":q2_k"))
    row["tg_tps"] += 1.0
    assert readme_figures.render(readme, changed) != readme


def test_every_figure_of_the_example_is_in_the_results_file() -> None:
    """The example's table cites the reference and q2_k rows as stored, to the digits shown."""
    results = json.loads(RESULTS.read_text(encoding="utf-8"))
    block = readme_figures.per_example(results)
    rows = {r["id"].split(":", 1)[1]: r for r in results["ladders"]["smollm2"]["run"]["results"]}
    ref = next(r for r in rows.values() if r["is_reference"])
    for row in (ref, rows["q2_k"]):
        for text in (f"{row['tg_tps']:.2f}", f"{row['ttft_ms']:.2f}", f"{row['peak_rss_mb']:.1f}", f"{row['per']:.3f}"):
            assert text in block, (text, block)
    assert Path(RESULTS).name in block
