"""benchmarks/run_all.sh regenerates every published results file (issue 11: every figure reproduces)."""

from __future__ import annotations

import re

from conftest import REPO

BENCHMARKS = REPO / "benchmarks"


def test_every_results_file_has_its_script_in_run_all() -> None:
    script = (BENCHMARKS / "run_all.sh").read_text(encoding="utf-8")
    run = set(re.findall(r"run benchmarks/(\w+)\.py", script))
    # a script's --quick run writes NAME_quick.json (quant_ladder): it never replaces the full results
    written = {p.stem.removesuffix("_quick") for p in (BENCHMARKS / "results").glob("*.json")}
    assert written, "no results files"
    assert written <= run, f"results no line of run_all.sh regenerates: {sorted(written - run)}"
    assert all((BENCHMARKS / f"{name}.py").is_file() for name in run)
