"""The bench's speculative column (``assistant bench --speculative``): what prompt-lookup decoding gains on
this variant, on prompts grounded in their input (``grounded.py``).

Run in a child process of its own after the speed rounds, through the chat engine itself (what ``chat
--speculative lookup`` does): each prompt greedy, ``MAX_TOKENS`` at most, plain then lookup then lookup then
plain (A B B A), its ratio the mean of the two pairs' generation tok/s. The row gets ``spec_ratio`` (mean over
prompts) with its 95 % interval over prompts, the two speeds (``spec_tps`` with lookup, ``spec_plain_tps``
without) and ``spec_acceptance`` (draft tokens accepted / drafted).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

from . import grounded, stats

MAX_TOKENS = 64
PROMPTS, QUICK_PROMPTS = 12, 4  # spread over the task types (every 30 / n-th of the 30)
KEYS = ("spec_ratio", "spec_ratio_lo", "spec_ratio_hi", "spec_tps", "spec_plain_tps", "spec_acceptance")


def prompts(quick: bool) -> list[tuple[str, str]]:
    every = grounded.grounded()
    n = QUICK_PROMPTS if quick else PROMPTS
    return [every[i * len(every) // n] for i in range(n)]


def reply(engine: Any, prompt: str, mode: str, max_tokens: int) -> dict[str, Any]:
    """One greedy reply to ``prompt`` with ``runtime.speculative`` = ``mode``: its text and figures."""
    from ..chat import CancelToken, ChatOptions, Message

    engine.speculative = mode
    parts: list[str] = []
    last = None
    options = ChatOptions(temperature=0, max_tokens=max_tokens)
    for chunk in engine.stream([Message("user", prompt)], options, CancelToken()):
        parts.append(chunk.text)
        last = chunk.stats or last
    assert last is not None
    return {
        "text": "".join(parts),
        "tokens": last.completion_tokens,
        "tok_s": last.tokens_per_second,
        "drafted": last.drafted_tokens,
        "accepted": last.accepted_tokens,
    }


def paired(engine: Any, prompt: str, max_tokens: int) -> dict[str, Any]:
    """Plain, lookup, lookup, plain (A B B A) on one prompt: the mean of the two pairs' tok/s ratios, both
    speeds, the draft tokens and those taken, and the four replies (``runs``)."""
    runs = [reply(engine, prompt, mode, max_tokens) for mode in ("off", "lookup", "lookup", "off")]
    a1, b1, b2, a2 = runs
    return {
        "ratio": statistics.mean([b1["tok_s"] / a1["tok_s"], b2["tok_s"] / a2["tok_s"]]),
        "plain_tok_s": statistics.mean([a1["tok_s"], a2["tok_s"]]),
        "lookup_tok_s": statistics.mean([b1["tok_s"], b2["tok_s"]]),
        "drafted": b1["drafted"] + b2["drafted"],
        "accepted": b1["accepted"] + b2["accepted"],
        "runs": runs,
    }


def measure(
    path: str, *, ctx: int, threads: int, batch: int, quick: bool, step: Callable[[str], None]
) -> dict[str, Any]:
    from ..engine import LlamaEngine

    engine = LlamaEngine(path, n_ctx=min(ctx, 2048), n_threads=threads, n_batch=batch)
    pairs: list[dict[str, Any]] = []
    try:
        for _kind, prompt in prompts(quick):
            pairs.append(paired(engine, prompt, MAX_TOKENS))
            step("speculative")
    finally:
        engine.close()
    mean, _sd, lo, hi = stats.mean_interval([p["ratio"] for p in pairs])
    drafted, accepted = sum(p["drafted"] for p in pairs), sum(p["accepted"] for p in pairs)
    return {
        "spec_ratio": round(mean, 3),
        "spec_ratio_lo": round(lo, 3),
        "spec_ratio_hi": round(hi, 3),
        "spec_tps": round(statistics.mean(p["lookup_tok_s"] for p in pairs), 2),
        "spec_plain_tps": round(statistics.mean(p["plain_tok_s"] for p in pairs), 2),
        "spec_acceptance": round(accepted / drafted, 3) if drafted else None,
    }
