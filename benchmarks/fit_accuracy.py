"""How close is the memory-fit estimate to reality?

For each GGUF: the estimate (assistant.fit) at a context size, against the RSS measured in a fresh process
(1) right after loading and (2) after the context has been filled with a long prompt, when the KV cache and
compute buffers are resident. The estimate is meant as a ceiling close to (2).

    python benchmarks/fit_accuracy.py [--ctx 2048] [GGUF ...]   (default: the installed starter LLMs)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, write_json

MiB = 1024 * 1024

CHILD = r"""
import json, sys, psutil
from llama_cpp import Llama
path, n_ctx, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
proc = psutil.Process()
base = proc.memory_info().rss
llm = Llama(path, n_ctx=n_ctx, n_threads=threads, verbose=False)
loaded = proc.memory_info().rss
text = "The quick brown fox jumps over the lazy dog. " * 4000
tokens = llm.tokenize(text.encode())[: n_ctx - 8]
llm.eval(tokens)
filled = proc.memory_info().rss
print(json.dumps({"base": base, "loaded": loaded, "filled": filled, "tokens": len(tokens)}))
"""


def measure(path: Path, n_ctx: int, threads: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), str(n_ctx), str(threads)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    from assistant import config, fit, gguf
    from assistant.store import Store

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", type=Path)
    parser.add_argument("--ctx", type=int, default=2048)
    args = parser.parse_args()
    paths = args.models or [i.path for i in Store().list("llm")]
    if not paths:
        sys.exit("no models: pass GGUF paths or install some ('assistant models pull --starter')")
    threads = config.load().threads()
    rows = []
    for path in paths:
        info = gguf.read(path)
        estimate = fit.estimate_llm(info, args.ctx)
        rss = measure(path, args.ctx, threads)
        rows.append(
            {
                "model": Path(path).name,
                "ctx": args.ctx,
                "estimate_mib": estimate.total / MiB,
                "rss_loaded_mib": rss["loaded"] / MiB,
                "rss_filled_mib": rss["filled"] / MiB,
                "error_vs_loaded_pct": 100 * (estimate.total - rss["loaded"]) / rss["loaded"],
                "error_vs_filled_pct": 100 * (estimate.total - rss["filled"]) / rss["filled"],
                "parts_mib": {k: v / MiB for k, v in estimate.to_json().items() if k not in ("context",)},
            }
        )
    print_table(
        rows,
        [
            "model",
            "ctx",
            "estimate_mib",
            "rss_loaded_mib",
            "rss_filled_mib",
            "error_vs_loaded_pct",
            "error_vs_filled_pct",
        ],
    )
    print("results:", write_json("fit_accuracy", {"threads": threads, "rows": rows}, args))


if __name__ == "__main__":
    main()
