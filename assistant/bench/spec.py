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


def measure(
    path: str, *, ctx: int, threads: int, batch: int, quick: bool, step: Callable[[str], None]
) -> dict[str, Any]:
    from ..chat import CancelToken, ChatOptions, Message
    from ..engine import LlamaEngine

    engine = LlamaEngine(path, n_ctx=min(ctx, 2048), n_threads=threads, n_batch=batch)
    options = ChatOptions(temperature=0, max_tokens=MAX_TOKENS)

    def speed(prompt: str, mode: str) -> tuple[float, int, int]:
        engine.speculative = mode
        last = None
        for chunk in engine.stream([Message("user", prompt)], options, CancelToken()):
            last = chunk.stats or last
        assert last is not None
        return last.tokens_per_second, last.drafted_tokens, last.accepted_tokens

    ratios: list[float] = []
    plain: list[float] = []
    looked_up: list[float] = []
    drafted = accepted = 0
    try:
        for _kind, prompt in prompts(quick):
            a1, b1, b2, a2 = (speed(prompt, mode) for mode in ("off", "lookup", "lookup", "off"))
            ratios.append(statistics.mean([b1[0] / a1[0], b2[0] / a2[0]]))
            plain += [a1[0], a2[0]]
            looked_up += [b1[0], b2[0]]
            drafted += b1[1] + b2[1]
            accepted += b1[2] + b2[2]
            step("speculative")
    finally:
        engine.close()
    mean, _sd, lo, hi = stats.mean_interval(ratios)
    return {
        "spec_ratio": round(mean, 3),
        "spec_ratio_lo": round(lo, 3),
        "spec_ratio_hi": round(hi, 3),
        "spec_tps": round(statistics.mean(looked_up), 2),
        "spec_plain_tps": round(statistics.mean(plain), 2),
        "spec_acceptance": round(accepted / drafted, 3) if drafted else None,
    }
