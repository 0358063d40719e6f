"""Chat overhead: is our engine as fast as raw llama-cpp-python, and does a long chat stay responsive?

One process, one GGUF, one loaded ``Llama`` (so the comparison is only about the code around llama.cpp):

* tg tok/s: the same prompt, greedy, ``--tokens`` tokens, streamed by two raw llama-cpp-python baselines --
  (1) ``Llama.create_completion(stream=True)``, the documented streaming API, and (2) ``Llama.generate``,
  the fastest idiomatic loop (token ids out, one ``detokenize`` per token, no completion bookkeeping) --
  and by ours: (3) ``LlamaEngine.stream``, (4) ``ChatSession.send`` (engine + progressive SQLite saves).
  Speed = tokens received after the first / time from the first to the last streamed token, so prompt
  processing is excluded; each path counts the tokens it actually got. ``--repeats`` rounds; the order of
  the four paths rotates every round (round 1: 1 2 3 4, round 2: 2 3 4 1, ...), so no path always runs
  first or right after another. Verdicts come from the measured speeds only: for each of ours and each
  baseline, the median over rounds of ours / baseline in the same round. Target: engine and session
  >= 0.97 x each raw baseline.
* TTFT at turn 1 (a fresh chat) vs turn 10 (about 1.5k tokens of history, turn 9 just answered): with
  KV-cache reuse turn 10 only evaluates its new tokens. Target: turn 10 <= 1.5 x turn 1. Turn 10 with the
  cache cleared is shown for contrast.
* ``assistant --help`` wall time in a fresh interpreter, median of 5. Target < 0.15 s.

    python benchmarks/chat_speed.py [--model ID | --gguf PATH] [--threads N] [--tokens 128] [--repeats 3]

Writes benchmarks/results/chat_speed.json.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import PROMPT, REPO, SYSTEM, chat_model, chat_parser, print_table, write_json

RAW_CC = "raw create_completion"
RAW_GEN = "raw Llama.generate"
ENGINE = "LlamaEngine"
SESSION = "ChatSession"
RATIO_TARGET = 0.97

# Filler for the long-chat test: each pre-written turn is roughly 160 tokens with SmolLM2's tokenizer.
FILLER_USER = "Tell me more about rivers, their sources, how they shape valleys, and why some of them flood."
FILLER_REPLY = (
    "Rivers begin at springs, lakes or melting glaciers high in the hills. Water gathers into streams, "
    "streams join into rivers, and over thousands of years the moving water and the stones it carries cut "
    "valleys into the rock. Fast young rivers carve steep V-shaped valleys; older, slower rivers wind "
    "across wide flat plains and leave rich soil behind when they spill over their banks. Floods happen "
    "when more water arrives than the channel can carry: heavy rain, melting snow, or a storm over a "
    "small steep catchment can all do it. People build levees, dams and reservoirs to hold the water back."
)


def opts(**values: Any) -> Any:
    """ChatOptions from keywords (validated: unknown keys fail)."""
    from assistant.chat import ChatOptions

    return ChatOptions.model_validate(values)


def timed_stream(pieces: Any) -> tuple[float, float, int]:
    """Run an iterator of text pieces -> (first non-empty piece, last one, how many there were)."""
    first = last = 0.0
    count = 0
    for text in pieces:
        if text:
            last = time.perf_counter()
            first = first or last
            count += 1
    return first, last, count


def raw_pieces(llm: Any, prompt: str, n: int) -> Any:
    for chunk in llm.create_completion(prompt, max_tokens=n, temperature=0.0, stream=True):
        yield chunk["choices"][0]["text"]


def generate_pieces(llm: Any, tokens: list[int], n: int) -> Any:
    """``Llama.generate``, greedy: one token id per step, its text by ``detokenize`` (a piece per token)."""
    eos = llm.token_eos()
    for i, token in enumerate(llm.generate(tokens, temp=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0)):
        if token == eos or i >= n:
            break
        yield llm.detokenize([token]).decode("utf-8", "replace") or "\ufffd"  # count a partial character too


def engine_pieces(engine: Any, messages: list[Any], options: Any, out: dict[str, Any]) -> Any:
    for chunk in engine.stream(messages, options):
        if chunk.stats:
            out["stats"] = chunk.stats
        yield chunk.text


def session_pieces(session: Any, chat_id: int, text: str, out: dict[str, Any]) -> Any:
    turn = session.send(chat_id, text)
    for chunk in turn:
        if chunk.stats:
            out["stats"] = chunk.stats
        yield chunk.text


def help_time(runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "assistant", "--help"], cwd=REPO, capture_output=True, check=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    args = chat_parser(__doc__, ctx=4096).parse_args()

    from assistant.chat import Message
    from assistant.engine import LlamaEngine

    settings, threads, item = chat_model(args)
    source: Any = item or args.gguf
    model_id = item.id if item else args.gguf.stem
    engine = LlamaEngine(source, n_ctx=args.ctx, n_threads=threads, model_id=model_id)
    if engine.completion_mode:
        sys.exit(f"{model_id} has no chat template; benchmark a chat model")
    llm = engine.llama  # the same Llama for the raw baselines: only the code around it differs
    from assistant.llama import llama_thread

    # The session writes to a throwaway database, never the user's.
    home = tempfile.mkdtemp(prefix="chat-speed-")
    os.environ["ASSISTANT_HOME"] = home
    from assistant.history import History
    from assistant.session import ChatSession

    session = ChatSession(History(), lambda _id: engine, settings=settings)
    greedy = opts(temperature=0.0, max_tokens=args.tokens)
    messages = [Message("system", SYSTEM), Message("user", PROMPT)]
    prompt_text = engine.render(messages)

    prompt_tokens = llm.tokenize(prompt_text.encode("utf-8"), add_bos=True, special=True)

    def run_create_completion() -> tuple[float, float, int]:
        # on the engine's llama thread, like every llama.cpp call (one OpenMP team; see llama.LlamaThread)
        return timed_stream(llama_thread.iterate(lambda: raw_pieces(llm, prompt_text, args.tokens)))

    def run_generate() -> tuple[float, float, int]:
        return timed_stream(llama_thread.iterate(lambda: generate_pieces(llm, prompt_tokens, args.tokens)))

    def run_engine() -> tuple[float, float, int]:
        out: dict[str, Any] = {}
        first, last, _ = timed_stream(engine_pieces(engine, messages, greedy, out))
        return first, last, out["stats"].completion_tokens  # a piece may hold several tokens (whitespace)

    def run_session() -> tuple[float, float, int]:
        chat = session.new_chat(model_id=model_id, system_prompt=SYSTEM, options=greedy)
        out: dict[str, Any] = {}
        first, last, _ = timed_stream(session_pieces(session, chat.id, PROMPT, out))
        return first, last, out["stats"].completion_tokens

    paths = {
        RAW_CC: run_create_completion,
        RAW_GEN: run_generate,
        ENGINE: run_engine,
        SESSION: run_session,
    }
    names = list(paths)
    speeds: dict[str, list[float]] = {name: [] for name in names}
    counts: dict[str, list[int]] = {name: [] for name in names}
    orders: list[list[str]] = []
    for name in names:  # warm-up, not counted: pages the weights in, fills the allocators
        paths[name]()
    for round_ in range(args.repeats):
        order = names[round_ % len(names) :] + names[: round_ % len(names)]
        orders.append(order)
        for name in order:
            first, last, n = paths[name]()
            counts[name].append(n)
            speeds[name].append((n - 1) / (last - first))
    short = {k: v for k, v in counts.items() if any(c != args.tokens for c in v)}
    if short:
        print(f"warning: a run stopped before {args.tokens} tokens ({short}); speeds are per token received")

    def paired(ours: str, base: str) -> float:
        return statistics.median(o / b for o, b in zip(speeds[ours], speeds[base], strict=True))

    rows: list[dict[str, Any]] = [
        {
            "path": name,
            "tg_tok_s_median": statistics.median(speeds[name]),
            "tg_tok_s_min": min(speeds[name]),
            "tg_tok_s_max": max(speeds[name]),
            "vs_create_completion": paired(name, RAW_CC),
            "vs_generate": paired(name, RAW_GEN),
        }
        for name in names
    ]
    print(f"\n{model_id}, {threads} threads, {args.tokens} tokens, {args.repeats} rounds (order rotated)\n")
    print_table(
        rows, ["path", "tg_tok_s_median", "tg_tok_s_min", "tg_tok_s_max", "vs_create_completion", "vs_generate"]
    )

    # -- TTFT: turn 1 vs turn 10 ------------------------------------------------------------------
    short = opts(temperature=0.0, max_tokens=16)
    llama_thread.call(llm.reset)  # turn 1 of a fresh chat: nothing cached
    chat = session.new_chat(model_id=model_id, system_prompt=SYSTEM, options=short)
    out: dict[str, Any] = {}
    list(session_pieces(session, chat.id, "Hello! What can you help me with?", out))
    stats1 = out["stats"]
    ttft1 = stats1.ttft_ms

    long_chat = session.new_chat(model_id=model_id, system_prompt=SYSTEM, options=short)
    for _ in range(8):
        session.history.add_message(long_chat.id, "user", FILLER_USER)
        session.history.add_message(long_chat.id, "assistant", FILLER_REPLY)
    out = {}
    list(session_pieces(session, long_chat.id, "Which river is the longest?", out))  # turn 9 fills the cache
    out = {}
    list(session_pieces(session, long_chat.id, "Hello! What can you help me with?", out))  # turn 10
    stats10 = out["stats"]
    llama_thread.call(llm.reset)
    session.history.delete_message(session.history.messages(long_chat.id)[-1].id)  # ask turn 10 again, cold
    session.history.delete_message(session.history.messages(long_chat.id)[-1].id)
    out = {}
    list(session_pieces(session, long_chat.id, "Hello! What can you help me with?", out))
    cold10 = out["stats"]
    ttft_rows = [
        {"turn": "1 (fresh chat)", "prompt_tokens": stats1.prompt_tokens, "cached": 0, "ttft_ms": ttft1},
        {
            "turn": "10 (KV reuse)",
            "prompt_tokens": stats10.prompt_tokens,
            "cached": stats10.cached_tokens,
            "ttft_ms": stats10.ttft_ms,
        },
        {
            "turn": "10 (cache cleared)",
            "prompt_tokens": cold10.prompt_tokens,
            "cached": cold10.cached_tokens,
            "ttft_ms": cold10.ttft_ms,
        },
    ]
    print()
    print_table(ttft_rows, ["turn", "prompt_tokens", "cached", "ttft_ms"])

    help_s = help_time()
    print(f"\nassistant --help: {help_s * 1000:.0f} ms (median of 5)")

    ttft_ratio = stats10.ttft_ms / ttft1
    verdicts = {
        f"{ours}/{base}>={RATIO_TARGET}": paired(ours, base) >= RATIO_TARGET
        for ours in (ENGINE, SESSION)
        for base in (RAW_CC, RAW_GEN)
    }
    verdicts |= {
        "ttft_turn10<=1.5x_turn1": ttft_ratio <= 1.5,
        "help<0.15s": help_s < 0.15,
    }
    print("\n" + "  ".join(f"{k}: {'ok' if v else 'MISSED'}" for k, v in verdicts.items()))
    path = write_json(
        "chat_speed",
        {
            "model": model_id,
            "threads": threads,
            "tokens": args.tokens,
            "repeats": args.repeats,
            "method": "rounds with the path order rotated; ratio = median over rounds of ours / baseline",
            "throughput": rows,
            "runs_tok_s": speeds,
            "runs_tokens": counts,
            "orders": orders,
            "ttft": ttft_rows,
            "ttft_ratio_turn10_vs_turn1": ttft_ratio,
            "help_seconds": help_s,
            "targets": verdicts,
        },
        args,
    )
    print(f"wrote {path}")
    session.history.close()
    engine.close()


if __name__ == "__main__":
    main()
