"""The README's benchmark figures, written from benchmarks/results (never typed by hand).

The PER worked example (between ``<!-- per-example -->`` and ``<!-- /per-example -->`` in README.md) is
rendered from ``results/quant_ladder.json``: the SmolLM2 ladder's reference row and its q2_k rung, the
ratios and PER score as the run stored them, and the run's settings and commit. ``run_all.sh`` calls this
after the benchmarks; ``--check`` (and tests/unit/test_readme_figures.py) fails when the README and the results
file disagree.

    python benchmarks/readme_figures.py [--check]
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, RESULTS

README = REPO / "README.md"
BEGIN, END = "<!-- per-example -->", "<!-- /per-example -->"
LADDER = "smollm2"
CANDIDATE = "q2_k"
WIDTH = 110  # the README's line width


def _short(model_id: str) -> str:
    return model_id.split(":", 1)[-1]


def per_example(results: dict[str, Any]) -> str:
    """The worked example's Markdown, from a quant_ladder.json payload."""
    ladder = results["ladders"][LADDER]
    run = ladder["run"]
    rows = run["results"]
    ref = next(r for r in rows if r["is_reference"])
    cand = next(r for r in rows if _short(r["id"]) == CANDIDATE)
    opts = run["options"]
    axes = cand["per_axes"]
    commit = (results.get("git_commit") or "unknown")[:10]
    reps = f"{opts['reps']} repetition" + ("s" if opts["reps"] != 1 else "")
    quick = ", --quick quality window" if opts.get("quick") else ""
    header = (
        f"Worked example, from `benchmarks/results/quant_ladder.json` (the {LADDER} ladder, requantized from "
        f"{ladder['source']}; {opts['threads']} threads, ctx {opts['ctx']}, {reps}{quick}; commit {commit}; "
        f"reference {_short(ref['id'])}):"
    )
    lines = [
        *textwrap.wrap(header, WIDTH),
        "",
        "| variant | accuracy | tg128 tok/s | peak RSS | TTFT | PPL ratio | KLD |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row, label in ((ref, f"{_short(ref['id'])} (ref)"), (cand, _short(cand["id"]))):
        lines.append(
            f"| {label} | {row['accuracy']:.4f} | {row['tg_tps']:.2f} | {row['peak_rss_mb']:.1f} MiB | "
            f"{row['ttft_ms']:.2f} ms | {row['ppl_ratio']:.3f} | {row['kld']:.3f} |"
        )
    c = _short(cand["id"])
    lines += [
        "",
        f"    PER({c}) = ({cand['accuracy']:.4f}/{ref['accuracy']:.4f} × {cand['tg_tps']:.2f}/{ref['tg_tps']:.2f}"
        f" × {ref['peak_rss_mb']:.1f}/{cand['peak_rss_mb']:.1f} × {ref['ttft_ms']:.2f}/{cand['ttft_ms']:.2f})^¼",
        f"    {' ' * (len(c) + 6)}= ({axes['accuracy']:.4f} × {axes['throughput']:.4f} × {axes['memory']:.4f}"
        f" × {axes['latency']:.4f})^¼ = {cand['per']:.3f}",
        "",
    ]
    means = {"throughput": cand["tg_tps"] / ref["tg_tps"], "latency": ref["ttft_ms"] / cand["ttft_ms"]}
    if any(abs(axes[name] - value) >= 0.00005 for name, value in means.items()):
        paired = (
            "The speed ratios are paired: the geometric mean over the rounds of each timing against the reference's "
            "timings beside it, so load that changed during the run cancels; the ratios of the means would give "
            + " and ".join(f"{name} {value:.4f}" for name, value in means.items())
        )
        lines += [*textwrap.wrap(paired + ".", WIDTH), ""]
    better = [name for name in ("accuracy", "throughput", "memory", "latency") if axes[name] > 1]
    worse = [name for name in ("accuracy", "throughput", "memory", "latency") if axes[name] < 1]
    trade = f"{c} gains on {', '.join(better) or 'no axis'} and loses on {', '.join(worse) or 'no axis'}"
    changed = round(100 * (1 - cand["top1_agreement"]))
    lines += textwrap.wrap(
        f"{trade}; read PER next to the perplexity ratio and KL divergence: it changes the model's most likely "
        f"next token {changed} % of the time.",
        WIDTH,
    )
    return "\n".join(lines)


def render(readme: str, results: dict[str, Any]) -> str:
    head, sep, rest = readme.partition(BEGIN)
    _, sep2, tail = rest.partition(END)
    if not sep or not sep2:
        raise SystemExit(f"README.md has no {BEGIN} ... {END} block")
    return f"{head}{BEGIN}\n{per_example(results)}\n{END}{tail}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md differs from the results")
    args = parser.parse_args()
    results = json.loads((RESULTS / "quant_ladder.json").read_text(encoding="utf-8"))
    readme = README.read_text(encoding="utf-8")
    wanted = render(readme, results)
    if args.check:
        if wanted != readme:
            diff = difflib.unified_diff(
                readme.splitlines(), wanted.splitlines(), "README.md", "from results", lineterm=""
            )
            print("\n".join(diff))
            sys.exit("error: README.md's figures differ from benchmarks/results; run benchmarks/readme_figures.py")
        return
    if wanted != readme:
        README.write_text(wanted, encoding="utf-8")
        print(f"updated {README}")


if __name__ == "__main__":
    main()
