"""Are our pp512 / tg128 figures llama-bench's? Build llama.cpp's own ``llama-bench`` and compare on one GGUF.

llama-bench is built from the llama.cpp sources vendored in the llama-cpp-python 0.3.36 sdist (the same code
our bindings run), in a cache directory outside the repository (default ~/.cache/assistant-bench; nothing of
llama.cpp is copied into the repo):

    pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36   ->  vendor/llama.cpp
    cmake -DGGML_NATIVE=ON -DLLAMA_CURL=OFF ; cmake --build --target llama-bench -j2

Then both run pp512 and tg128 on the same file with the same threads and repetitions, in alternating rounds
(llama-bench, ours, llama-bench, ours, …); each round's ratio ours / llama-bench is one pair, and the median
of the pairs is reported per test, so a change in machine load hits both sides of a pair alike. Target:
within 5 %.

    python benchmarks/llama_bench_compare.py [GGUF] [--threads N] [--reps 3] [--rounds 2] [--cache DIR]

GGUF defaults to the installed SmolLM2 starter. Writes benchmarks/results/llama_bench_compare.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, write_json

VERSION = "0.3.36"
TARGET = 0.05


def build_tool(cache: Path, target: str) -> Path:
    """llama.cpp's ``target`` (llama-bench, llama-perplexity, llama-server), built once per cache directory
    from the llama-cpp-python sdist's vendored sources (the same code our bindings run)."""
    root = cache / f"llama-cpp-python-{VERSION}"
    binary = root / "build" / "bin" / target
    if binary.is_file():
        return binary
    cache.mkdir(parents=True, exist_ok=True)
    source = root / "src"
    if not (source / "vendor" / "llama.cpp" / "CMakeLists.txt").is_file():
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            print(f"downloading the llama-cpp-python {VERSION} sdist…", file=sys.stderr)
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                 f"llama-cpp-python=={VERSION}", "-d", tmp],
                check=True,
            )  # fmt: skip
            [sdist] = list(Path(tmp).glob("llama_cpp_python-*.tar.gz"))
            with tarfile.open(sdist) as tar:
                tar.extractall(tmp, filter="data")
            [top] = [p for p in Path(tmp).iterdir() if p.is_dir()]
            root.mkdir(parents=True, exist_ok=True)
            os.replace(top, source)
    print(f"building {target} (a few minutes on 2 cores)…", file=sys.stderr)
    build = root / "build"
    if not (build / "CMakeCache.txt").is_file():
        subprocess.run(
            ["cmake", "-S", str(source / "vendor" / "llama.cpp"), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
             "-DGGML_NATIVE=ON", "-DLLAMA_CURL=OFF", "-DLLAMA_BUILD_TESTS=OFF"],
            check=True,
        )  # fmt: skip
    subprocess.run(["cmake", "--build", str(build), "--target", target, "-j2"], check=True)
    if not binary.is_file():
        found = list(build.rglob(target))
        if not found:
            sys.exit(f"the build finished but produced no {target} binary")
        return found[0]
    return binary


def build_llama_bench(cache: Path) -> Path:
    return build_tool(cache, "llama-bench")


def run_llama_bench(binary: Path, model: Path, threads: int, reps: int) -> dict[str, dict[str, Any]]:
    out = subprocess.run(
        [str(binary), "-m", str(model), "-p", "512", "-n", "128", "-t", str(threads), "-r", str(reps), "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    tests = json.loads(out.stdout)
    found: dict[str, dict[str, float]] = {}
    for t in tests:
        name = "pp512" if t["n_prompt"] == 512 and t["n_gen"] == 0 else "tg128" if t["n_gen"] == 128 else None
        if name:
            found[name] = {"tps": float(t["avg_ts"]), "sd": float(t["stddev_ts"])}
    if tests:
        found["_build"] = {"commit": tests[0].get("build_commit"), "flash_attn": tests[0].get("flash_attn")}
    return found


def run_ours(model: Path, threads: int, reps: int) -> dict[str, dict[str, float]]:
    from assistant.bench import llm, worker

    spec = {**llm.Options(reps=reps, threads=threads, ctx=640).to_json(), "path": str(model), "ref_path": None,
            "speed_only": True}  # fmt: skip
    m = worker.run("bench.llm", spec)
    return {"pp512": {"tps": m["pp_tps"], "sd": m["pp_tps_sd"]}, "tg128": {"tps": m["tg_tps"], "sd": m["tg_tps_sd"]}}


def _average(rounds: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for test in ("pp512", "tg128"):
        tps = [r[test]["tps"] for r in rounds]
        sds = [r[test]["sd"] for r in rounds]
        out[test] = {"tps": sum(tps) / len(tps), "sd": max(sds), "rounds": tps}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", nargs="?", type=Path)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--reps", type=int, default=3, help="repetitions per run (llama-bench -r)")
    parser.add_argument("--rounds", type=int, default=4, help="alternating llama-bench / ours rounds (pairs)")
    parser.add_argument("--cache", type=Path, default=Path("~/.cache/assistant-bench").expanduser())
    args = parser.parse_args()

    from assistant import config, gguf
    from assistant.store import Store

    model = args.model or Store().require("smollm2-135m-instruct:q4_1").path
    gguf.read(model)
    threads = args.threads or config.load().threads()
    binary = build_llama_bench(args.cache)
    # Alternate rounds (A B A B) so that a change in machine load hits both sides of a pair alike.
    theirs_all, ours_all = [], []
    for n in range(args.rounds):
        print(f"round {n + 1}/{args.rounds}", file=sys.stderr)
        theirs_all.append(run_llama_bench(binary, model, threads, args.reps))
        ours_all.append(run_ours(model, threads, args.reps))
    theirs, ours = _average(theirs_all), _average(ours_all)
    theirs["_build"] = theirs_all[0].get("_build", {})
    rows: list[dict[str, Any]] = []
    for test in ("pp512", "tg128"):
        pairs = [o[test]["tps"] / t[test]["tps"] for o, t in zip(ours_all, theirs_all, strict=True)]
        ratio = statistics.median(pairs)
        rows.append(
            {
                "test": test,
                "llama_bench_tps": round(theirs[test]["tps"], 2),
                "llama_bench_sd": round(theirs[test]["sd"], 2),
                "ours_tps": round(ours[test]["tps"], 2),
                "ours_sd": round(ours[test]["sd"], 2),
                "ratio": round(ratio, 3),
                "pair_ratios": [round(r, 3) for r in pairs],
                "within_5pct": abs(ratio - 1) <= TARGET,
            }
        )
    print(f"{model.name}, {threads} threads, {args.rounds} rounds of {args.reps} repetitions")
    print_table(rows, list(rows[0]))
    write_json(
        "llama_bench_compare",
        {
            "model": model.name,
            "threads": threads,
            "reps": args.reps,
            "rounds": args.rounds,
            "llama_bench": theirs.get("_build"),
            "rows": rows,
        },
        args,
    )


if __name__ == "__main__":
    main()
