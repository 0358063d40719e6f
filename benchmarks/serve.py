"""Serving overhead: is one reply streamed through ``assistant serve`` as fast as the engine in-process?

One GGUF, two processes: ``assistant serve`` as a user starts it (its own process, default slots, the same
threads and context), and here the in-process engine and the client, which streams ``/v1/chat/completions``
over loopback with one kept-alive httpx client (no client set-up inside the clock; a server in a thread of
this process would share its GIL with the client's parsing). Paired rounds, A B then B A (HTTP and in-process
alternate which goes first), the same greedy request each time:

* tg tok/s = tokens after the first (the reply's usage / stats: one chunk of text can carry several tokens)
  / time from the first to the last streamed text (prompt excluded);
  the verdict is the median over pairs of HTTP / in-process. Target: >= 0.95.
* added time to first token = the median over pairs of HTTP TTFT - in-process TTFT (the prompt is cached
  after the first round, so this is the request's own overhead). Target: <= 10 ms.

    python benchmarks/serve.py [--model ID] [--threads N] [--tokens 128] [--repeats 3]

Writes benchmarks/results/serve.json (``BENCH_RESULTS=DIR`` writes elsewhere).
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import PROMPT, REPO, SYSTEM, chat_model, chat_parser, print_table, register, write_json

RATIO_TARGET = 0.95
TTFT_TARGET_MS = 10.0
HTTP, INPROC = "HTTP (assistant serve)", "in-process LlamaEngine"


def _speed(stamps: list[float], started: float, tokens: int) -> dict[str, float]:
    """tok/s after the first token (``tokens`` generated in all: the server's usage, the engine's stats, as a
    chunk of text can carry several tokens), and the time to it; a stream of one chunk has no speed."""
    rate = (tokens - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 and stamps[-1] > stamps[0] else 0.0
    return {"tok_s": rate, "ttft_ms": (stamps[0] - started) * 1000 if stamps else 0.0, "tokens": tokens}


def run_http(http: Any, url: str, model: str, tokens: int) -> dict[str, float]:
    """One streamed reply over ``http`` (a kept-alive ``httpx.Client``: no client set-up inside the clock)."""
    body = chat_body(model, tokens, include_usage=True)
    stamps: list[float] = []
    generated = 0
    started = time.perf_counter()
    with http.stream("POST", url + "/v1/chat/completions", json=body) as response:
        for line in response.iter_lines():
            if line.startswith("data: {"):
                doc = json.loads(line[6:])
                choices = doc.get("choices") or [{}]
                if choices[0].get("delta", {}).get("content"):
                    stamps.append(time.perf_counter())
                if doc.get("usage"):
                    generated = int(doc["usage"]["completion_tokens"])
    return _speed(stamps, started, generated)


def run_engine(engine: Any, tokens: int) -> dict[str, float]:
    from assistant.chat import ChatOptions, Message

    messages = [Message("system", SYSTEM), Message("user", PROMPT)]
    options = ChatOptions(temperature=0, max_tokens=tokens)
    stamps: list[float] = []
    generated = 0
    started = time.perf_counter()
    for chunk in engine.stream(messages, options):
        if chunk.text:
            stamps.append(time.perf_counter())
        if chunk.stats is not None:
            generated = chunk.stats.completion_tokens
    return _speed(stamps, started, generated)


def start_server(item: Any, threads: int, ctx: int, port: int, parallel: int | None = None) -> subprocess.Popen[bytes]:
    """``assistant serve`` as a process of its own, as a user runs it (and as llama-server runs in
    serve_batch.py): the benchmark's clients parse their streams in this process, and a server in a thread here
    would share its GIL with them. A throwaway home with ``item`` registered in place and the benchmark's
    threads and context in its config.toml; ``parallel`` None is ``assistant serve``'s default."""

    home = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    register(item.path, item.id, home)
    (home / "config").mkdir(exist_ok=True)
    (home / "config" / "config.toml").write_text(f"[runtime]\nthreads = {threads}\ncontext_size = {ctx}\n")
    command = [sys.executable, "-m", "assistant", "serve", "--port", str(port)]
    command += ["--parallel", str(parallel)] if parallel else []
    log = (home / "serve.log").open("wb")
    process = subprocess.Popen(
        command, env={**os.environ, "ASSISTANT_HOME": str(home)}, stdout=log, stderr=subprocess.STDOUT, cwd=REPO
    )
    return wait_healthy(process, port, f"assistant serve (see {home / 'serve.log'})")


def wait_healthy(process: subprocess.Popen[bytes], port: int, name: str) -> subprocess.Popen[bytes]:
    """``process`` once its ``/health`` answers 200 (ours and llama-server both have one)."""
    import httpx

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{name} exited with {process.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise SystemExit(f"{name} did not start")


def chat_body(model: str, tokens: int, *, include_usage: bool = False) -> dict[str, Any]:
    """The benchmark's greedy streamed chat request."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPT}],
        "max_tokens": tokens,
        "temperature": 0,
        "stream": True,
    }
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    return body


def stop_server(process: subprocess.Popen[bytes]) -> None:
    """Ctrl+C, as a user stops it."""
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def main() -> None:
    parser = chat_parser(__doc__, ctx=2048)
    parser.add_argument("--port", type=int, default=18435)
    args = parser.parse_args()
    _settings, threads, item = chat_model(args)
    if item is None:
        raise SystemExit("--gguf is not supported here: the server serves installed models (use --model)")
    import httpx

    from assistant.engine import LlamaEngine

    engine = LlamaEngine(item, n_ctx=args.ctx, n_threads=threads, model_id=item.id)
    server = start_server(item, threads, args.ctx, args.port)  # as a user starts it: the default slots
    url = f"http://127.0.0.1:{args.port}"
    http = httpx.Client(timeout=600)
    try:
        run_http(http, url, item.id, 4)  # warm-up: loads the server's copy of the model, opens the connection
        run_engine(engine, 4)
        pairs = []
        for i in range(args.repeats):
            order = [
                (HTTP, lambda: run_http(http, url, item.id, args.tokens)),
                (INPROC, lambda: run_engine(engine, args.tokens)),
            ]
            if i % 2:
                order.reverse()
            pairs.append({name: fn() for name, fn in order})
    finally:
        http.close()
        stop_server(server)
        engine.close()
    ratios = [p[HTTP]["tok_s"] / p[INPROC]["tok_s"] for p in pairs if p[INPROC]["tok_s"]]
    added = [p[HTTP]["ttft_ms"] - p[INPROC]["ttft_ms"] for p in pairs]
    rows = [{"pair": i + 1, "path": name, **p[name]} for i, p in enumerate(pairs) for name in (HTTP, INPROC)]
    print_table(rows, ["pair", "path", "tok_s", "ttft_ms", "tokens"])
    ratio = statistics.median(ratios) if ratios else None
    added_ms = statistics.median(added)
    summary = {
        "tg_ratio_median": ratio,
        "tg_ratio_target": RATIO_TARGET,
        "added_ttft_ms_median": added_ms,
        "added_ttft_target_ms": TTFT_TARGET_MS,
        "pass": ratio is not None and ratio >= RATIO_TARGET and added_ms <= TTFT_TARGET_MS,
    }
    print(json.dumps(summary, indent=2))
    path = write_json("serve", {"model": item.id, "threads": threads, "rows": rows, "summary": summary}, args)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
