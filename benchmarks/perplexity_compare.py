"""Are our KLD and perplexity ratio llama.cpp's? Compare with ``llama-perplexity --kl-divergence``.

llama-perplexity is built like llama-bench (``llama_bench_compare.build_tool``: the llama-cpp-python sdist's
vendored llama.cpp, in a cache directory outside the repository). Both sides get the same two GGUFs (a
reference and a candidate of one family), the same text (the bench's built-in evaluation text, or
``--text``) and the same context (the bench's 512-token windows):

    llama-perplexity -m REF  -f TEXT -c 512 --kl-divergence-base BASE      (the reference's logits)
    llama-perplexity -m CAND -f TEXT -c 512 --kl-divergence-base BASE --kl-divergence

and ours is the bench's own quality pass (``assistant.bench.measure``), in this process. Reported per
candidate: mean KLD, 99th percentile, top-1 agreement and the perplexity ratio from both, the ratio ours /
theirs (target: within 5 %), and whether llama-perplexity's figure ± its error lies inside our 95 % interval.

    python benchmarks/perplexity_compare.py --reference ID_OR_GGUF CANDIDATE... [--threads N] [--text F]

Writes benchmarks/results/perplexity_compare.json.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, write_json
from llama_bench_compare import build_tool

TARGET = 0.05
_PM = r"([-+0-9.eE]+)\s*±\s*([-+0-9.eE]+)"
PATTERNS = {  # llama-perplexity's summary lines (tools/perplexity/perplexity.cpp, kl_divergence)
    "ppl_ratio": rf"Mean PPL\(Q\)/PPL\(base\)\s*:\s*{_PM}",
    "ln_ppl_ratio": rf"Mean ln\(PPL\(Q\)/PPL\(base\)\)\s*:\s*{_PM}",
    "kld": rf"Mean\s+KLD:\s*{_PM}",
    "top1_agreement": rf"Same top p:\s*{_PM}\s*%",
}
P99 = r"99\.0%\s+KLD:\s*([-+0-9.eE]+)"


def _path(value: str) -> Path:
    path = Path(value)
    if path.is_file():
        return path
    from assistant.store import Store

    return Store().require(value).path


def theirs(binary: Path, ref: Path, cand: Path, text: Path, ctx: int, threads: int, work: Path) -> dict[str, Any]:
    base = work / f"{ref.stem}.kld"
    common = ["-f", str(text), "-c", str(ctx), "-b", str(ctx), "-t", str(threads), "--kl-divergence-base", str(base)]
    if not base.is_file():
        subprocess.run([str(binary), "-m", str(ref), *common], check=True, capture_output=True, text=True)
    out = subprocess.run(
        [str(binary), "-m", str(cand), *common, "--kl-divergence"], check=True, capture_output=True, text=True
    )
    log = out.stdout + out.stderr
    found: dict[str, Any] = {}
    for key, pattern in PATTERNS.items():
        m = re.search(pattern, log)
        if m is None:
            sys.exit(f"llama-perplexity printed no {key} line; its output ends:\n{log[-2000:]}")
        value, err = float(m[1]), float(m[2])
        if key == "top1_agreement":
            value, err = value / 100, err / 100
        found[key], found[f"{key}_pm"] = value, err
    p99 = re.search(P99, log)
    found["kld_p99"] = float(p99[1]) if p99 else None
    chunks = re.search(r"calculating perplexity over (\d+) chunks", log)
    found["chunks"] = int(chunks[1]) if chunks else None
    return found


def ours(ref: Path, cand: Path, text: str, threads: int) -> dict[str, Any]:
    from assistant.bench import llm, measure
    from assistant.bench.llama_model import LlamaModel
    from assistant.llama import log_to

    log_to(lambda level, text: None)  # llama.cpp's load log, as the bench's child process drops it
    opts = llm.Options(threads=threads)
    a = LlamaModel(str(cand), n_ctx=opts.chunk + 8, n_batch=llm.EVAL_BATCH, threads=threads)
    b = LlamaModel(str(ref), n_ctx=opts.chunk + 8, n_batch=llm.EVAL_BATCH, threads=threads)
    try:
        return measure.quality_against(a, b, text, opts, lambda stage: None)
    finally:
        a.close()
        b.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("candidates", nargs="+", help="installed model ids or GGUF paths")
    parser.add_argument("--reference", required=True, help="installed model id or GGUF path")
    parser.add_argument("--text", type=Path, help="evaluation text (default: the bench's built-in one)")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--cache", type=Path, default=Path("~/.cache/assistant-bench").expanduser())
    args = parser.parse_args()

    from assistant import config
    from assistant.bench import llm
    from assistant.bench import tasks as bench_tasks

    threads = args.threads or config.load().threads()
    ctx = llm.QUALITY_CHUNK
    binary = build_tool(args.cache, "llama-perplexity")
    ref = _path(args.reference)
    text = bench_tasks.eval_text(str(args.text) if args.text else None)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        text_file = work / "eval.txt"
        text_file.write_text(text, encoding="utf-8")
        for name in args.candidates:
            cand = _path(name)
            t0 = time.perf_counter()
            t = theirs(binary, ref, cand, text_file, ctx, threads, work)
            t_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            o = ours(ref, cand, text, threads)
            o_s = time.perf_counter() - t0
            row: dict[str, Any] = {"candidate": cand.name}
            for key in ("kld", "ppl_ratio", "top1_agreement"):
                row[f"{key}_theirs"] = round(t[key], 5)
                row[f"{key}_theirs_pm"] = round(t[f"{key}_pm"], 5)
                row[f"{key}_ours"] = round(o[key], 5)
                row[f"{key}_ours_lo"], row[f"{key}_ours_hi"] = round(o[f"{key}_lo"], 5), round(o[f"{key}_hi"], 5)
                row[f"{key}_ratio"] = round(o[key] / t[key], 4)
                row[f"{key}_within_5pct"] = abs(o[key] / t[key] - 1) <= TARGET
                row[f"{key}_theirs_pm_inside_ours"] = (
                    o[f"{key}_lo"] <= t[key] - t[f"{key}_pm"] and t[key] + t[f"{key}_pm"] <= o[f"{key}_hi"]
                )
            row["kld_p99_theirs"], row["kld_p99_ours"] = t["kld_p99"], round(o["kld_p99"], 5)
            row["tokens_ours"], row["chunks_theirs"] = o["eval_tokens"], t["chunks"]
            row["seconds_theirs"], row["seconds_ours"] = round(t_s, 1), round(o_s, 1)
            rows.append(row)
            print(f"{cand.name}: done", file=sys.stderr, flush=True)
    short = ["candidate"] + [
        f"{k}_{s}" for k in ("kld", "ppl_ratio", "top1_agreement") for s in ("theirs", "ours", "ratio")
    ]
    print(f"reference {ref.name}, context {ctx}, {threads} threads")
    print_table(rows, short)
    write_json("perplexity_compare", {"reference": ref.name, "ctx": ctx, "threads": threads, "rows": rows}, args)


if __name__ == "__main__":
    main()
