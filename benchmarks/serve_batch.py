"""Continuous batching: aggregate generated tok/s and time to first token at 1, 2, 4 and 8 concurrent streams.

``assistant serve`` runs as its own process (as llama-server does, so neither shares a GIL with the clients)
with ``--parallel`` slots (4 by default), and N client threads, released together, each stream one greedy
``/v1/chat/completions`` reply of ``--tokens`` tokens over loopback. Per concurrency and round:

* aggregate tok/s = completion tokens of all N replies / wall time from the release to the last stream's end;
* time to first token of each stream (p50 and p99 over all rounds' streams);
* each server process's peak RSS at the end (``VmHWM``: with 4 slots, every slot's KV cache in use).

With ``--llama-server PATH`` (llama.cpp's own server, built from the llama-cpp-python sdist's sources, see
``llama_bench_compare.build_llama_bench``) the same requests go to it too, same GGUF, threads and
``--parallel``, with a context of ``--ctx`` per slot (``-c ctx × parallel``, as llama-server splits it), and
rounds are paired: each round times both servers back to back (A B, then B A in the next round), and
ours / llama-server is the median over rounds of that round's ratio, so a change in machine load between
rounds hits both sides of a pair alike; with it, the 95 % interval of that median from the rounds' order
statistics (``stats.median_interval``: 7 rounds give their range, 11 the 2nd to 10th, 15 the 4th to 12th) and
a verdict per concurrency: ahead or behind only when the whole interval is. Before the timed rounds of each
concurrency, one untimed round per server (a batch shape's first step allocates its compute graph; neither
server is timed on that).

    python benchmarks/serve_batch.py [--model ID] [--threads N] [--tokens 128] [--repeats 3] [--parallel 4]
        [--streams 1,2,4,8] [--llama-server PATH]

Writes benchmarks/results/serve_batch.json (``BENCH_RESULTS=DIR`` writes elsewhere).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import chat_model, chat_parser, print_table, write_json
from serve import chat_body, start_server, stop_server, wait_healthy

from assistant.bench.stats import median_interval

OURS, THEIRS = "assistant serve", "llama-server"


def one_stream(url: str, model: str, tokens: int, release: threading.Barrier) -> dict[str, float]:
    """One greedy streamed reply; the time to its first text, its end, and its completion tokens."""
    import httpx

    body = chat_body(model, tokens, include_usage=True)
    first = 0.0
    usage = 0
    with httpx.Client(timeout=600) as http:
        release.wait()
        started = time.perf_counter()
        with http.stream("POST", url + "/v1/chat/completions", json=body) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if not line.startswith("data: {"):
                    continue
                doc = json.loads(line[6:])
                if doc.get("usage"):
                    usage = int(doc["usage"]["completion_tokens"])
                choices = doc.get("choices") or [{}]
                if not first and choices[0].get("delta", {}).get("content"):
                    first = time.perf_counter()
    return {"started": started, "ttft_ms": (first - started) * 1000 if first else 0.0, "end": time.perf_counter(),
            "tokens": usage}  # fmt: skip


def round_of(url: str, model: str, tokens: int, streams: int) -> dict[str, Any]:
    release = threading.Barrier(streams)
    results: list[dict[str, float]] = [{} for _ in range(streams)]

    def run(i: int) -> None:
        results[i] = one_stream(url, model, tokens, release)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(streams)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = max(r["end"] for r in results) - min(r["started"] for r in results)
    total = sum(int(r["tokens"]) for r in results)
    return {"tok_s": total / wall if wall > 0 else 0.0, "tokens": total, "ttfts": [r["ttft_ms"] for r in results]}


def start_llama_server(binary: Path, gguf: Path, threads: int, ctx: int, parallel: int, port: int) -> Any:
    process = subprocess.Popen(
        [str(binary), "-m", str(gguf), "-t", str(threads), "-tb", str(threads), "-c", str(ctx * parallel),
         "--parallel", str(parallel), "--port", str(port), "--host", "127.0.0.1", "--no-webui"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return wait_healthy(process, port, "llama-server")


def peak_rss_bytes(pid: int) -> int:
    """A server process's peak resident memory so far (Linux ``VmHWM``): every slot's KV cache in use."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def _summary(name: str, streams: int, rounds: list[dict[str, Any]]) -> dict[str, Any]:
    ttfts = [t for r in rounds for t in r["ttfts"]]
    return {
        "server": name,
        "streams": streams,
        "tok_s": statistics.median(r["tok_s"] for r in rounds),
        "ttft_p50_ms": _percentile(ttfts, 0.5),
        "ttft_p99_ms": _percentile(ttfts, 0.99),
        "tokens": statistics.median(r["tokens"] for r in rounds),
    }


def paired_ratios(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> list[float]:
    """Each round's ours / theirs aggregate tok/s (the two were timed back to back in that round)."""
    return [a["tok_s"] / b["tok_s"] for a, b in zip(ours, theirs, strict=True) if b["tok_s"] > 0]


def paired_differences(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> list[float]:
    """Each round's difference of median time to first token, ours - theirs (ms)."""
    return [statistics.median(a["ttfts"]) - statistics.median(b["ttfts"]) for a, b in zip(ours, theirs, strict=True)]


def _verdict(lo: float, hi: float) -> str:
    """Ours against llama-server from the 95 % interval of the paired ratio's median."""
    return "ahead" if lo > 1 else "behind" if hi < 1 else "level within the noise"


def main() -> None:
    parser = chat_parser(__doc__, ctx=2048)
    parser.add_argument("--port", type=int, default=18436)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--streams", default="1,2,4,8")
    parser.add_argument("--llama-server", type=Path, help="llama.cpp's llama-server binary, to compare with")
    args = parser.parse_args()
    _settings, threads, item = chat_model(args)
    if item is None:
        raise SystemExit("--gguf is not supported here: the server serves installed models (use --model)")
    levels = [int(n) for n in args.streams.split(",")]

    servers = {OURS: f"http://127.0.0.1:{args.port}"}
    server = start_server(item, threads, args.ctx, args.port, parallel=args.parallel)
    theirs = None
    if args.llama_server:
        theirs = start_llama_server(args.llama_server, item.path, threads, args.ctx, args.parallel, args.port + 1)
        servers[THEIRS] = f"http://127.0.0.1:{args.port + 1}"
    rounds: dict[tuple[str, int], list[dict[str, Any]]] = {}
    try:
        for url in servers.values():
            round_of(url, item.id, 4, 1)  # warm-up: loads our model, fills the page cache
        for streams in levels:
            for url in servers.values():
                round_of(url, item.id, 8, streams)  # untimed: this batch shape's first steps
            for i in range(args.repeats):
                order = list(servers.items())
                if i % 2:
                    order.reverse()
                for name, url in order:
                    rounds.setdefault((name, streams), []).append(round_of(url, item.id, args.tokens, streams))
        peak_rss = peak_rss_bytes(server.pid)
        peak_rss_theirs = peak_rss_bytes(theirs.pid) if theirs is not None else None
    finally:
        stop_server(server)
        if theirs is not None:
            theirs.terminate()
            theirs.wait(timeout=30)
    rows = [_summary(name, streams, rs) for (name, streams), rs in rounds.items()]
    print_table(rows, ["server", "streams", "tok_s", "ttft_p50_ms", "ttft_p99_ms", "tokens"])
    ours = {r["streams"]: r["tok_s"] for r in rows if r["server"] == OURS}
    summary: dict[str, Any] = {
        "parallel": args.parallel,
        "peak_rss_bytes": peak_rss,
        "peak_rss_bytes_llama_server": peak_rss_theirs,
        "scaling_vs_one_stream": {n: ours[n] / ours[levels[0]] for n in levels if ours.get(levels[0])},
    }
    if args.llama_server:
        pairs = {n: paired_ratios(rounds[(OURS, n)], rounds[(THEIRS, n)]) for n in levels}
        summary["ours_over_llama_server"] = {n: statistics.median(p) for n, p in pairs.items() if p}
        summary["ours_over_llama_server_ci95"] = {n: median_interval(p) for n, p in pairs.items() if p}
        summary["ours_over_llama_server_verdict"] = {
            n: _verdict(*lohi) for n, lohi in summary["ours_over_llama_server_ci95"].items()
        }
        summary["ours_over_llama_server_pairs"] = pairs
        summary["ttft_p50_ms_ours_minus_llama_server"] = {
            n: statistics.median(paired_differences(rounds[(OURS, n)], rounds[(THEIRS, n)])) for n in levels
        }
    print(json.dumps(summary, indent=2))
    data = {"model": item.id, "threads": threads, "rows": rows, "summary": summary}
    print(f"wrote {write_json('serve_batch', data, args)}")


if __name__ == "__main__":
    main()
