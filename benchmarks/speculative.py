"""Speculative decoding (prompt lookup) against plain decoding, on grounded and open-ended prompts.

One process, one loaded model, the same threads; ``runtime.speculative`` is switched between runs of the
same prompt, greedy (temperature 0), ``--tokens`` tokens at most. Per prompt two pairs, plain then lookup
and lookup then plain (A B B A); the prompt's ratio is the mean of the pairs' lookup / plain generation
tok/s (prompt processing excluded, as ``Stats.tokens_per_second``). Reported per prompt set: the median
ratio over prompts, whether the replies are identical, the acceptance rate (accepted / drafted) and the
mean accepted length per draft, per task type; with ``--drafts 4,10`` for each longest draft.

Prompts: ``assistant/bench/grounded.py``, 30 grounded in their input (code edits, rewrites,
extraction to JSON, summaries with quotes, reformatted lists, continued tables) and 30 open-ended.
Targets (issue 15): grounded >= 1.5 x plain, open-ended >= 0.97 x plain, identical replies.

    python benchmarks/speculative.py [--model ID ...] [--tokens 128] [--drafts 10] [--threads N] [--only grounded]
        [--llama-lookup ~/.cache/assistant-bench/llama-cpp-python-0.3.36/build/bin/llama-lookup]

With ``--llama-lookup`` (built by ``llama_bench_compare.build_tool(cache, "llama-lookup")``) each grounded
prompt is also run through llama.cpp's own prompt-lookup example, same GGUF, rendered prompt, threads and
longest draft, greedy; the summary's ``median_vs_llama_lookup`` is our lookup tok/s over its.

Writes benchmarks/results/speculative.json.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import print_table, write_json

from assistant.bench.grounded import grounded, open_ended

GROUNDED_TARGET, OPEN_TARGET = 1.5, 0.97


def measure(engine: Any, kind: str, prompt: str, tokens: int, max_draft: int) -> dict[str, Any]:
    from assistant.bench import spec

    engine.max_draft = max_draft
    m = spec.paired(engine, prompt, tokens)
    a1, b1, b2, a2 = m["runs"]
    return {
        "type": kind,
        "max_draft": max_draft,
        "plain_tok_s": round(m["plain_tok_s"], 1),
        "lookup_tok_s": round(m["lookup_tok_s"], 1),
        "ratio": round(m["ratio"], 3),
        "tokens": a1["tokens"],
        "identical": a1["text"] == b1["text"] == b2["text"] == a2["text"],
        "drafted": m["drafted"],
        "accepted": m["accepted"],
        "prompt": prompt[:60],
        "plain_text": a1["text"],
        "lookup_text": b1["text"],
    }


LOOKUP_LINE = re.compile(r"decoded\s+(\d+) tokens in\s+([0-9.]+) seconds")


def llama_lookup(binary: Path, engine: Any, prompt: str, tokens: int, max_draft: int, threads: int) -> dict[str, Any]:
    """llama.cpp's own ``llama-lookup`` on the same GGUF, prompt (our chat template's rendering of it, special
    tokens as text), greedy, the same longest draft and threads: its generation tok/s and acceptance."""
    from assistant.chat import ChatOptions, Message

    planned = engine.plan([Message("user", prompt)], ChatOptions(temperature=0, max_tokens=tokens)).tokens
    if planned and planned[0] == engine._bos:
        planned = planned[1:]  # llama-lookup adds the BOS itself
    text = engine.on_engine_thread(lambda: engine.llama.detokenize(planned, special=True)).decode("utf-8", "replace")
    run = subprocess.run(
        [str(binary), "-m", str(engine.path), "-p", text, "-n", str(tokens), "-t", str(threads), "-c", "2048",
         "--temp", "0", "--spec-draft-n-max", str(max_draft)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    log = run.stdout + run.stderr
    found = LOOKUP_LINE.search(log)
    if run.returncode != 0 or not found:
        raise SystemExit(f"llama-lookup failed (rc {run.returncode}): {log[-400:]}")
    drafted = re.search(r"n_drafted\s+=\s+(\d+)", log)
    accepted = re.search(r"n_accept\s+=\s+(\d+)", log)
    return {
        "tok_s": int(found.group(1)) / float(found.group(2)),
        "drafted": int(drafted.group(1)) if drafted else 0,
        "accepted": int(accepted.group(1)) if accepted else 0,
    }


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    drafted = sum(r["drafted"] for r in rows)
    accepted = sum(r["accepted"] for r in rows)
    theirs = [r["lookup_tok_s"] / r["llama_lookup_tok_s"] for r in rows if r.get("llama_lookup_tok_s")]
    return {
        "prompts": len(rows),
        "median_ratio": round(statistics.median(r["ratio"] for r in rows), 3),
        "median_vs_llama_lookup": round(statistics.median(theirs), 3) if theirs else None,
        "min_ratio": round(min(r["ratio"] for r in rows), 3),
        "identical": sum(r["identical"] for r in rows),
        "acceptance": round(accepted / drafted, 3) if drafted else None,
        "drafted": drafted,
        "accepted": accepted,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", help="installed model id (repeat; default: the chat model)")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--drafts", default="10", help="longest drafts to try, comma-separated")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--ctx", type=int, default=2048)
    parser.add_argument("--only", choices=["grounded", "open"], help="one prompt set")
    parser.add_argument(
        "--llama-lookup", type=Path, help="llama.cpp's llama-lookup binary: also time it on the grounded prompts"
    )
    args = parser.parse_args()

    from assistant import config
    from assistant.engine import load_engine

    settings = config.load()
    sets = {"grounded": grounded(), "open": open_ended()}
    if args.only:
        sets = {args.only: sets[args.only]}
    results: dict[str, Any] = {}
    threads = args.threads or settings.threads()
    for model_id in args.model or [settings.models.chat]:
        engine = load_engine(model_id, settings, n_ctx=args.ctx, n_threads=threads)
        per_model: dict[str, Any] = {"completion_mode": engine.completion_mode}
        try:
            for max_draft in [int(k) for k in args.drafts.split(",")]:
                for name, prompts in sets.items():
                    rows = []
                    for kind, prompt in prompts:
                        row = measure(engine, kind, prompt, args.tokens, max_draft)
                        if args.llama_lookup and name == "grounded":
                            theirs = llama_lookup(args.llama_lookup, engine, prompt, args.tokens, max_draft, threads)
                            row["llama_lookup_tok_s"] = round(theirs["tok_s"], 1)
                            row["llama_lookup_acceptance"] = (
                                round(theirs["accepted"] / theirs["drafted"], 3) if theirs["drafted"] else None
                            )
                        rows.append(row)
                        print(f"{model_id} k={max_draft} {name}: {row['ratio']:.2f}x {row['type']}", flush=True)
                    by_type = {
                        kind: summarise([r for r in rows if r["type"] == kind])
                        for kind in dict.fromkeys(r["type"] for r in rows)
                    }
                    summary = summarise(rows)
                    target = GROUNDED_TARGET if name == "grounded" else OPEN_TARGET
                    summary["target"], summary["pass"] = target, summary["median_ratio"] >= target
                    per_model[f"{name}_k{max_draft}"] = {"summary": summary, "by_type": by_type, "rows": rows}
                    print_table(
                        [{"type": k, **v} for k, v in by_type.items()],
                        ["type", "prompts", "median_ratio", "min_ratio", "identical", "acceptance"],
                    )
                    print(f"{model_id} {name} k={max_draft}: {summary}", flush=True)
        finally:
            engine.close()
        results[model_id] = per_model
    print(f"wrote {write_json('speculative', results, args)}")


if __name__ == "__main__":
    main()
