"""The terminal app: how soon it paints, and whether streaming through it costs generation speed.

* First paint: wall time from starting ``python -m assistant`` (bare: the TUI) in a 120x40 pseudo-terminal
  until the first frame reaches the terminal (the footer's "New chat" appears in the output). Fresh
  ASSISTANT_HOME with the model registered, so it is the chat screen (the model loads in a worker after the
  paint). Bytecode cached, as on a user's machine (see first_paint). Best and median of ``--paint-runs``.
  Target < 0.3 s.
* tg tok/s through the TUI: the app runs headless with a real ``LlamaEngine``; a message is sent with the
  keyboard and the reply streams through the generation worker, ``ChatSession`` (SQLite saves), the
  ``ReplyStreamed`` messages and ``MarkdownStream`` into the chat view. Speed = tokens after the first / time
  from the first to the last piece the app received. The raw baseline is llama-cpp-python's
  ``create_completion(stream=True)`` on the *same* loaded ``Llama`` (same GGUF, threads, batch), greedy, the
  same prompt. Alternating runs: the best of each, and the median ratio of each TUI run to the raw run
  just before it. The target is on the latter: on a machine whose speed drifts (this one's raw speed
  wandered 145-180 tok/s over an afternoon), one fast raw run decides the best-of ratio alone, while a
  pair's two runs are seconds apart. Target: TUI >= 0.97 x raw.
* The UI thread's CPU time from the first to the last token of the TUI speed runs (a share of one core):
  what streaming takes away from llama.cpp, and a figure that, unlike the timings, hardly changes when the
  machine is busy.
* Event-loop lag while a reply streams: a 10 ms timer's lateness (p50 / p99 / max), in separate runs (the
  probe takes CPU itself, so it does not run during the speed runs). Keys are handled on the next loop
  turn, so this bounds how late a key press is answered. Target: max < 100 ms.

    python benchmarks/tui.py [--model ID | --gguf PATH] [--threads N] [--tokens 128] [--repeats 3]

Writes benchmarks/results/tui.json.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import select
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import PROMPT, REPO, SYSTEM, chat_model, chat_parser, print_table, write_json

FIRST_PAINT = b"New chat"  # a footer label: part of the first frame Textual writes
PAINT_TIMEOUT = 30.0
TICK = 0.01  # the lag probe's timer interval


# -- first paint --------------------------------------------------------------------------------------


def register(model_path: Path, model_id: str, home: Path) -> None:
    """Register ``model_path`` in a throwaway home (in a child, so this process's env stays untouched)."""
    code = (
        "import sys; from pathlib import Path; from assistant import gguf; "
        "from assistant.store import Installed, Store; p = Path(sys.argv[1]); "
        "Store().add(Installed(sys.argv[2], 'llm', p, False, p.stat().st_size, None, 'bench', "
        "info=gguf.read(p).summary()))"
    )
    env = {**os.environ, "ASSISTANT_HOME": str(home)}
    subprocess.run([sys.executable, "-c", code, str(model_path), model_id], env=env, check=True, cwd=REPO)


def first_paint(home: Path, pycache: Path, size: tuple[int, int] = (120, 40)) -> float:
    """Seconds from process start to the first frame on the terminal.

    Python's bytecode cache is on, in ``pycache`` (as for a user: an install compiles it, or the first
    start writes it), even where PYTHONDONTWRITEBYTECODE is set; main() runs once unmeasured to fill it."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))
    env = {**os.environ, "ASSISTANT_HOME": str(home), "TERM": "xterm-256color", "PYTHONPYCACHEPREFIX": str(pycache)}
    for name in ("COLUMNS", "LINES", "PYTHONDONTWRITEBYTECODE"):
        env.pop(name, None)
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "assistant"], stdin=slave, stdout=slave, stderr=slave, env=env, cwd=REPO
    )
    os.close(slave)
    seen = b""
    painted = None
    try:
        while time.perf_counter() - start < PAINT_TIMEOUT:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            seen += data
            if FIRST_PAINT in seen:
                painted = time.perf_counter() - start
                break
        os.write(master, b"\x11")  # ctrl+q
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.terminate()
            proc.wait(timeout=10)
    finally:
        # drain so the child never blocks on a full pty, then close
        try:
            while select.select([master], [], [], 0)[0] and os.read(master, 65536):
                pass
        except OSError:
            pass
        os.close(master)
    if painted is None:
        raise SystemExit(f"no first paint within {PAINT_TIMEOUT}s; output so far: {seen[-400:]!r}")
    return painted


# -- generation through the TUI ----------------------------------------------------------------------


def raw_speed(llm: Any, prompt: str, n: int) -> float:
    first = last = 0.0
    count = 0
    for chunk in llm.create_completion(prompt, max_tokens=n, temperature=0.0, stream=True):
        if chunk["choices"][0]["text"]:
            last = time.perf_counter()
            first = first or last
            count += 1
    return (n - 1) / (last - first)


async def tui_runs(engine: Any, settings: Any, repeats: int, raw: Any) -> dict[str, Any]:
    """Send PROMPT ``repeats`` times through the app; run ``raw()`` between TUI runs (alternating)."""
    from textual.pilot import Pilot

    from assistant.ui.app import AssistantApp
    from assistant.ui.backend import Backend
    from assistant.ui.prompt_bar import PromptBar

    marks: dict[str, float] = {}
    ui_clock = time.pthread_getcpuclockid(threading.get_ident())  # this thread runs the app's event loop

    class TimedBackend(Backend):
        """The app's own backend; only notes when the reply's first and last piece arrive."""

        def reply(self, *args: Any, **kwargs: Any) -> None:
            *rest, on_chunk = args

            def timed(chunk: Any) -> None:
                if chunk.text:
                    marks["last"] = time.perf_counter()
                    marks["ui_last"] = time.clock_gettime(ui_clock)  # the UI thread's CPU time so far
                    if "first" not in marks:
                        marks["first"], marks["ui_first"] = marks["last"], marks["ui_last"]
                if chunk.stats is not None:
                    marks["tokens"] = chunk.stats.completion_tokens
                on_chunk(chunk)

            super().reply(*rest, timed, **kwargs)

    app = AssistantApp(settings=settings, backend=TimedBackend(settings, lambda _id: engine))
    tui: list[float] = []
    raws: list[float] = []
    lags: list[float] = []
    counts: list[int] = []
    ui_cpu: list[float] = []

    async def until(predicate: Any, timeout: float = 600) -> None:
        # asyncio.sleep, not pilot.pause: pause() messages every widget each call, UI work the real app
        # does not do, and it would be charged to the streaming being measured
        deadline = time.perf_counter() + timeout
        while not predicate():
            if time.perf_counter() > deadline:
                raise SystemExit(f"timed out waiting for the app (screen: {app.screen!r})")
            await asyncio.sleep(0.02)

    async def send(pilot: Pilot[Any]) -> None:
        marks.clear()
        await pilot.press("ctrl+n")
        app.query_one(PromptBar).insert(PROMPT)
        await pilot.press("enter")
        await until(lambda: not app.generating and app._reply is None)

    async with app.run_test(size=(120, 40)) as pilot:
        await until(lambda: app.engine is not None)
        raw()  # warm-up, not counted: the first pass pages the mmapped weights in
        for _ in range(repeats):
            raws.append(raw())
            # speed: nothing else running in the app
            await send(pilot)
            n = int(marks["tokens"])
            counts.append(n)
            tui.append((n - 1) / (marks["last"] - marks["first"]))
            ui_cpu.append((marks["ui_last"] - marks["ui_first"]) / (marks["last"] - marks["first"]))
            # responsiveness: the same reply again, with the lag probe (which itself takes some CPU)
            last_tick = [time.perf_counter()]
            run_lags: list[float] = []

            def tick(last_tick: list[float] = last_tick, run_lags: list[float] = run_lags) -> None:
                now = time.perf_counter()
                run_lags.append(max(0.0, now - last_tick[0] - TICK))
                last_tick[0] = now

            timer = app.set_interval(TICK, tick)
            await send(pilot)
            timer.stop()
            lags.extend(run_lags)
        await pilot.press("ctrl+q")
    return {"tui": tui, "raw": raws, "lags": lags, "counts": counts, "ui_cpu": ui_cpu}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def main() -> None:
    parser = chat_parser(__doc__, ctx=2048)
    parser.add_argument("--paint-runs", type=int, default=5)
    args = parser.parse_args()

    from assistant import config
    from assistant.chat import Message
    from assistant.engine import LlamaEngine

    settings, threads, item = chat_model(args)
    if item is None:
        path = args.gguf.resolve()
        model_id = "smollm2-135m-instruct:q4_1" if "smol" in path.name.lower() else "bench-model:gguf"
    else:
        path, model_id = item.path, item.id

    # -- first paint (child processes, each with a fresh home) --
    paints = []
    pycache = Path(tempfile.mkdtemp(prefix="tui-pycache-"))
    for run in range(args.paint_runs + 1):
        home = Path(tempfile.mkdtemp(prefix="tui-paint-"))
        register(path, model_id, home)
        paint = first_paint(home, pycache)
        if run:  # the first run compiles the bytecode cache
            paints.append(paint)

    # -- generation: the app and the raw baseline share one loaded Llama --
    bench_home = Path(tempfile.mkdtemp(prefix="tui-bench-"))
    register(path, model_id, bench_home)  # so the app opens on the chat screen, not the first-run one
    os.environ["ASSISTANT_HOME"] = str(bench_home)
    engine = LlamaEngine(
        path, n_ctx=args.ctx, n_threads=threads, n_batch=settings.runtime.batch_size, model_id=model_id
    )
    if engine.completion_mode:
        sys.exit(f"{model_id} has no chat template; benchmark a chat model")
    llm = engine._llm
    from assistant.engine import llama_thread

    prompt_text = engine.render([Message("system", SYSTEM), Message("user", PROMPT)])
    run_settings = config.Settings.model_validate(
        {
            "chat": {"temperature": 0.0, "max_tokens": args.tokens, "system_prompt": SYSTEM},
            "runtime": {"threads": threads, "context_size": args.ctx},
        }
    )
    # The baseline calls llama.cpp from the engine's llama thread, as the app does: a second calling thread
    # would start a second OpenMP team that slows both (see assistant.engine.LlamaThread).
    result = asyncio.run(
        tui_runs(
            engine,
            run_settings,
            args.repeats,
            lambda: llama_thread.call(raw_speed, llm, prompt_text, args.tokens),
        )
    )
    engine.close()
    if any(c != args.tokens for c in result["counts"]):
        print(f"warning: a TUI run stopped before {args.tokens} tokens ({result['counts']}); speeds are per token")

    raw_best, tui_best = max(result["raw"]), max(result["tui"])
    # each TUI run against the raw run just before it: the machine's speed drifts less within a pair
    paired = statistics.median(t / r for t, r in zip(result["tui"], result["raw"], strict=True))
    lags_ms = [x * 1000 for x in result["lags"]]
    ui_cpu = statistics.median(result["ui_cpu"])
    rows = [
        {"measure": "first paint, best (s)", "value": min(paints), "target": "< 0.3"},
        {"measure": "first paint, median (s)", "value": statistics.median(paints), "target": ""},
        {"measure": "raw llama-cpp-python tg (tok/s)", "value": raw_best, "target": ""},
        {"measure": "TUI streaming tg (tok/s)", "value": tui_best, "target": ""},
        {"measure": "TUI / raw, best of each", "value": tui_best / raw_best, "target": ""},
        {"measure": "TUI / raw, median of run pairs", "value": paired, "target": ">= 0.97"},
        {"measure": "UI thread CPU while streaming (% of a core)", "value": 100 * ui_cpu, "target": ""},
        {"measure": "loop lag p50 while streaming (ms)", "value": percentile(lags_ms, 0.5), "target": ""},
        {"measure": "loop lag p99 while streaming (ms)", "value": percentile(lags_ms, 0.99), "target": ""},
        {"measure": "loop lag max while streaming (ms)", "value": max(lags_ms, default=0.0), "target": "< 100"},
    ]
    print(f"\n{model_id}, {threads} threads, {args.tokens} tokens, best of {args.repeats}\n")
    print_table(rows, ["measure", "value", "target"])
    out = write_json(
        "tui",
        {
            "model": model_id,
            "gguf": str(path),
            "threads": threads,
            "tokens": args.tokens,
            "repeats": args.repeats,
            "first_paint_s": {"runs": paints, "best": min(paints), "median": statistics.median(paints)},
            "tg_tok_s": {
                "raw_runs": result["raw"],
                "tui_runs": result["tui"],
                "raw_best": raw_best,
                "tui_best": tui_best,
                "ratio_best": tui_best / raw_best,
                "ratio_median": statistics.median(result["tui"]) / statistics.median(result["raw"]),
                "ratio_paired_median": paired,
            },
            "ui_thread_cpu_share": {"runs": result["ui_cpu"], "median": ui_cpu},
            "loop_lag_ms": {
                "p50": percentile(lags_ms, 0.5),
                "p99": percentile(lags_ms, 0.99),
                "max": max(lags_ms, default=0.0),
                "samples": len(lags_ms),
            },
            "targets": {"first_paint_s": 0.3, "ratio_paired_median": 0.97, "loop_lag_max_ms": 100},
        },
    )
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
