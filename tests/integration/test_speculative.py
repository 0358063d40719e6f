"""Speculative decoding (prompt lookup) on the real SmolLM2: it drafts, it reports, and at temperature 0 a
reply differs from plain decoding's only where the model is at a near-tie.

Why not "identical": llama.cpp computes a batch with other kernels than a single token, and the logits move
a little (``speculative.EXACT_MARGIN``); KV entries written by a batch carry that into later steps. Where the
top two tokens are nearly tied, either is what plain decoding with another batch size would have picked.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from assistant.chat import CancelToken, ChatOptions, Message
from assistant.engine import LlamaEngine

from conftest import run_cli

SMOLLM = "smollm2-135m-instruct:q4_1"
CODE = """def total(items):
    result = 0
    for item in items:
        if item.price > 0:
            result = result + item.price * item.quantity
    return result"""
PROMPTS = [
    f"Rename the function total to order_total and show the whole code:\n\n{CODE}",
    "Rewrite this in the past tense: The train to Berlin leaves at half past six from platform four.",
    "Extract name, age and city as JSON: Name: Anna Schmidt. Age: 34. City: Hamburg.",
    "Repeat this list and add two more items:\n- apples\n- bread\n- milk\n- eggs",
    "Tell me a short story about a robot who learns to paint.",
    "Why is the sky blue?",
]
NEAR_TIE = 1.5  # logits between the two picks at the first difference (measured: 0.003 to 0.05)


@pytest.fixture(scope="module")
def smollm(starter_files: dict[str, Path]) -> Any:
    loaded = LlamaEngine(starter_files[SMOLLM], n_ctx=2048, n_threads=2, model_id=SMOLLM)
    yield loaded
    loaded.close()


def _reply(engine: LlamaEngine, prompt: str, mode: str) -> tuple[list[int], Any]:
    """The reply's token ids (recorded as the engine turns them into text) and its stats."""
    tokens: list[int] = []
    piece = LlamaEngine.piece

    def recording(token: int) -> bytes:
        tokens.append(token)
        return piece(engine, token)

    engine.speculative = mode
    engine.on_engine_thread(engine._llm.reset)  # no KV reuse from the last reply: the same numerics each time
    engine.piece = recording  # type: ignore[method-assign]
    try:
        chunks = list(
            engine.stream([Message("user", prompt)], ChatOptions(temperature=0, max_tokens=96), CancelToken())
        )
    finally:
        del engine.piece
    return tokens, chunks[-1].stats


def _plain_margin(engine: LlamaEngine, prompt: str, reply: list[int], at: int, other: int) -> float:
    """How much plain decoding prefers ``reply[at]`` over ``other`` there (it evaluates as ``stream`` does)."""
    import llama_cpp

    llm = engine._llm
    tokens = engine.plan([Message("user", prompt)], ChatOptions(temperature=0)).tokens

    def margin() -> float:  # on the llama thread, as every llama.cpp call
        llm.reset()
        engine._evaluate(tokens, CancelToken())
        for token in reply[:at]:
            llm.eval((token,))
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1), shape=(llm.n_vocab(),))
        return float(logits[reply[at]] - logits[other])

    return engine.on_engine_thread(margin)


@pytest.mark.slow
def test_a_speculative_reply_differs_from_plain_only_at_a_near_tie(smollm: LlamaEngine) -> None:
    accepted = identical = 0
    for prompt in PROMPTS:
        plain, _ = _reply(smollm, prompt, "off")
        drafted, stats = _reply(smollm, prompt, "lookup")
        assert stats.accepted_tokens <= stats.drafted_tokens
        accepted += stats.accepted_tokens
        if plain == drafted:
            identical += 1
            continue
        at = next((i for i, (a, b) in enumerate(zip(plain, drafted, strict=False)) if a != b), None)
        assert at is not None, "one reply is the other cut short"
        margin = _plain_margin(smollm, prompt, plain, at, drafted[at])
        assert abs(margin) < NEAR_TIE, (prompt, at, margin)  # (plain's own pick, give or take float noise)
    assert accepted > 0  # the grounded prompts were drafted for, and drafts were taken
    assert identical >= 1


@pytest.mark.slow
def test_chat_reports_drafted_and_accepted_tokens(installed_models: dict[str, object]) -> None:
    args = ["chat", "-p", PROMPTS[0], "--temperature", "0", "--max-tokens", "64", "--json"]
    on = json.loads(run_cli(*args, "--speculative", "lookup").stdout)
    off = json.loads(run_cli(*args, "--speculative", "off").stdout)
    assert on["drafted_tokens"] > 0 and 0 < on["accepted_tokens"] <= on["drafted_tokens"]
    assert off["drafted_tokens"] == off["accepted_tokens"] == 0
