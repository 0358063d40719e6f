"""Serving overhead: is one reply streamed through ``assistant serve`` as fast as the engine in-process?

One process, one GGUF: the server runs here under uvicorn in a background thread (its own engine, on the same
llama thread as the in-process engine, so both use the same OpenMP team and the same threads), and the client
streams ``/v1/chat/completions`` over loopback with httpx. Paired rounds, A B then B A (HTTP and in-process
alternate which goes first), the same greedy request each time:

* tg tok/s = tokens after the first / time from the first to the last streamed token (prompt excluded);
  the verdict is the median over pairs of HTTP / in-process. Target: >= 0.95.
* added time to first token = the median over pairs of HTTP TTFT - in-process TTFT (the prompt is cached
  after the first round, so this is the request's own overhead). Target: <= 10 ms.

    python benchmarks/serve.py [--model ID] [--threads N] [--tokens 128] [--repeats 3]

Writes benchmarks/results/serve.json (``BENCH_RESULTS=DIR`` writes elsewhere).
"""

from __future__ import annotations

import json
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import PROMPT, SYSTEM, chat_model, chat_parser, print_table, write_json

RATIO_TARGET = 0.95
TTFT_TARGET_MS = 10.0
HTTP, INPROC = "HTTP (assistant serve)", "in-process LlamaEngine"


def _speed(stamps: list[float], started: float) -> dict[str, float]:
    """tok/s after the first token, and the time to it; a stream of one token has no speed."""
    rate = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 and stamps[-1] > stamps[0] else 0.0
    return {"tok_s": rate, "ttft_ms": (stamps[0] - started) * 1000 if stamps else 0.0, "tokens": len(stamps)}


def run_http(url: str, model: str, tokens: int) -> dict[str, float]:
    import httpx

    body = {
        "model": model,
        "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPT}],
        "max_tokens": tokens,
        "temperature": 0,
        "stream": True,
    }
    stamps: list[float] = []
    started = time.perf_counter()
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=600) as response:
        for line in response.iter_lines():
            if line.startswith("data: {"):
                choices = json.loads(line[6:]).get("choices") or [{}]
                if choices[0].get("delta", {}).get("content"):
                    stamps.append(time.perf_counter())
    return _speed(stamps, started)


def run_engine(engine: Any, tokens: int) -> dict[str, float]:
    from assistant.chat import ChatOptions, Message

    messages = [Message("system", SYSTEM), Message("user", PROMPT)]
    options = ChatOptions(temperature=0, max_tokens=tokens)
    stamps: list[float] = []
    started = time.perf_counter()
    for chunk in engine.stream(messages, options):
        if chunk.text:
            stamps.append(time.perf_counter())
    return _speed(stamps, started)


def start_server(settings: Any, port: int, parallel: int | None = None) -> tuple[Any, threading.Thread]:
    """The server in a background thread (``parallel`` None: ``assistant serve``'s default)."""
    import uvicorn

    from assistant.server.app import ServerConfig, create_app

    app = create_app(ServerConfig(port=port, settings=settings, parallel=parallel))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise SystemExit("the server did not start")
        time.sleep(0.05)
    return server, thread


def main() -> None:
    parser = chat_parser(__doc__, ctx=2048)
    parser.add_argument("--port", type=int, default=18435)
    args = parser.parse_args()
    settings, threads, item = chat_model(args)
    if item is None:
        raise SystemExit("--gguf is not supported here: the server serves installed models (use --model)")
    runtime = settings.runtime.model_copy(update={"threads": threads, "context_size": args.ctx})
    settings = settings.model_copy(update={"runtime": runtime})

    from assistant.engine import LlamaEngine

    engine = LlamaEngine(item, n_ctx=args.ctx, n_threads=threads, model_id=item.id)
    server, thread = start_server(settings, args.port)
    url = f"http://127.0.0.1:{args.port}"
    try:
        run_http(url, item.id, 4)  # warm-up: loads the server's copy of the model
        run_engine(engine, 4)
        pairs = []
        for i in range(args.repeats):
            order = [
                (HTTP, lambda: run_http(url, item.id, args.tokens)),
                (INPROC, lambda: run_engine(engine, args.tokens)),
            ]
            if i % 2:
                order.reverse()
            pairs.append({name: fn() for name, fn in order})
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        engine.close()
    ratios = [p[HTTP]["tok_s"] / p[INPROC]["tok_s"] for p in pairs if p[INPROC]["tok_s"]]
    added = [p[HTTP]["ttft_ms"] - p[INPROC]["ttft_ms"] for p in pairs]
    rows = [{"pair": i + 1, "path": name, **p[name]} for i, p in enumerate(pairs) for name in (HTTP, INPROC)]
    print_table(rows, ["pair", "path", "tok_s", "ttft_ms", "tokens"])
    summary = {
        "tg_ratio_median": statistics.median(ratios) if ratios else None,
        "tg_ratio_target": RATIO_TARGET,
        "added_ttft_ms_median": statistics.median(added),
        "added_ttft_target_ms": TTFT_TARGET_MS,
    }
    summary["pass"] = (
        bool(ratios)
        and summary["tg_ratio_median"] >= RATIO_TARGET
        and (summary["added_ttft_ms_median"] <= TTFT_TARGET_MS)
    )
    print(json.dumps(summary, indent=2))
    path = write_json("serve", {"model": item.id, "threads": threads, "rows": rows, "summary": summary}, args)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
