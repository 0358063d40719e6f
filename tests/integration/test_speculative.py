"""Speculative decoding (prompt lookup) on the real SmolLM2: it drafts, it reports, at temperature 0 a
reply is plain decoding's token for token, and at temperature > 0 a verified token is drawn from the
distribution plain sampling draws from.

Identical on these prompts, because the engine runs llama.cpp with flash attention: without it, attention over a
batch used another kernel than a single token's, and at a near-tie a greedy reply could part from plain
decoding's (10 of 30 grounded prompts did). SmolLM2's one weight whose product differs between one row and
several is its Q8_0 output head (``speculative``'s docstring); on the bench's 60 prompts one reply parts there.
"""

from __future__ import annotations

import json
from collections import Counter
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


@pytest.mark.slow
def test_a_greedy_speculative_reply_is_plain_decodings_token_for_token(smollm: LlamaEngine) -> None:
    from assistant.bench.grounded import grounded, open_ended

    prompts = [*PROMPTS, *(p for _, p in grounded()[1::3]), *(p for _, p in open_ended()[::6])]
    accepted = 0
    for prompt in prompts:
        plain, _ = _reply(smollm, prompt, "off")
        drafted, stats = _reply(smollm, prompt, "lookup")
        assert stats.accepted_tokens <= stats.drafted_tokens
        accepted += stats.accepted_tokens
        assert drafted == plain, prompt
    assert len(prompts) >= 20 and accepted > 0  # the grounded prompts were drafted for, and drafts were taken


@pytest.mark.slow
def test_chat_reports_drafted_and_accepted_tokens(installed_models: dict[str, object]) -> None:
    args = ["chat", "-p", PROMPTS[0], "--temperature", "0", "--max-tokens", "64", "--json"]
    on = json.loads(run_cli(*args, "--speculative", "lookup").stdout)
    off = json.loads(run_cli(*args, "--speculative", "off").stdout)
    # how long the drafts are follows this machine's batch costs, timed in the CLI's process under whatever load
    # the machine has, so whether its few drafts are taken is not this test's question (the in-process tests
    # above check what is taken); that they are made and reported is
    assert on["drafted_tokens"] > 0 and 0 <= on["accepted_tokens"] <= on["drafted_tokens"], on
    assert off["drafted_tokens"] == off["accepted_tokens"] == 0


def _chi2_same(a: Counter[int], b: Counter[int]) -> tuple[float, float]:
    """Two-sample chi-square statistic over the tokens both draws saw (rare ones pooled, so every cell expects
    5 or more) and its 0.1 % critical value (Wilson-Hilferty)."""
    total_a, total_b = sum(a.values()), sum(b.values())
    cells, pooled = [], [0, 0]
    for token in set(a) | set(b):
        if a[token] + b[token] >= 20:
            cells.append((a[token], b[token]))
        else:
            pooled[0] += a[token]
            pooled[1] += b[token]
    if sum(pooled) >= 20:
        cells.append((pooled[0], pooled[1]))
    stat = 0.0
    for x, y in cells:
        for seen, total in ((x, total_a), (y, total_b)):
            expected = (x + y) * total / (total_a + total_b)
            stat += (seen - expected) ** 2 / expected
    df = len(cells) - 1
    z = 3.09  # one-sided 0.1 %
    return stat, df * (1 - 2 / (9 * df) + z * (2 / (9 * df)) ** 0.5) ** 3


@pytest.mark.slow
def test_a_sampled_draft_keeps_plain_samplings_distribution(smollm: LlamaEngine) -> None:
    """Speculative sampling (temperature > 0): the token at a verified position, the draft's if the model takes
    it or else one drawn from the rest, has the frequencies of llama.cpp's own sampler over many seeds."""
    from assistant.engine import TOP_K
    from assistant.speculative import Sampling, Speculation

    options = ChatOptions(temperature=1.0, top_p=0.95)
    llm = smollm._llm
    tokens = smollm.plan([Message("user", "Tell me a short story about a robot who learns to paint.")], options).tokens
    draws = 3000

    def sample() -> tuple[Counter[int], Counter[int], int, int]:
        llm.reset()
        smollm._evaluate(tokens, CancelToken())
        plain: Counter[int] = Counter(smollm._sampler(options, seed).sample(llm._ctx, -1) for seed in range(draws))
        proposed = plain.most_common(1)[0][0]  # a draft token the model takes often, but not always
        spec = Speculation(llm, sampling=Sampling(TOP_K, smollm.filters(options), np.random.default_rng(7)))
        llm.n_tokens -= 1  # the prompt's last token again, now with a draft: one batch of two
        llm._ctx.kv_cache_seq_rm(-1, llm.n_tokens, -1)
        first = spec._verify(tokens[-1], [proposed], None)
        assert first[0] in plain
        speculative: Counter[int] = Counter(spec._pick(0, proposed, None) for _ in range(draws))
        return plain, speculative, proposed, len(first)

    plain, speculative, proposed, verified = smollm.on_engine_thread(sample)
    assert verified in (1, 2)
    assert 0.05 < plain[proposed] / draws < 0.95, plain.most_common(5)  # a real test of the rejection branch
    stat, critical = _chi2_same(plain, speculative)
    assert stat < critical, (stat, critical, plain.most_common(8), speculative.most_common(8))


@pytest.mark.slow
def test_a_sampled_reply_drafts_and_a_seed_repeats_it(smollm: LlamaEngine) -> None:
    """Which positions get drafted follows this machine's batch costs (timed once per process), and with them
    which random draws a seed's reply makes; so a few seeds are tried: each repeats its reply, and over them
    drafts are made and some taken (one seed's first draft can miss)."""

    def reply(seed: int) -> tuple[str, Any]:
        smollm.speculative = "lookup"
        smollm.on_engine_thread(smollm._llm.reset)
        options = ChatOptions(temperature=0.7, max_tokens=64, seed=seed)
        chunks = list(smollm.stream([Message("user", PROMPTS[0])], options, CancelToken()))
        return "".join(c.text for c in chunks), chunks[-1].stats

    drafted = accepted = 0
    for seed in (11, 12, 13):
        first, stats = reply(seed)
        again, _ = reply(seed)
        assert first == again, seed
        assert 0 <= stats.accepted_tokens <= stats.drafted_tokens
        drafted, accepted = drafted + stats.drafted_tokens, accepted + stats.accepted_tokens
    assert drafted > 0 and accepted > 0, (drafted, accepted)


@pytest.mark.slow
def test_greedy_draws_what_llamas_greedy_sampler_draws(smollm: LlamaEngine) -> None:
    """``llama.Greedy`` (numpy's argmax over the logits in place) picks llama.cpp's greedy sampler's token at
    every position of a batch: the engine, the server's batch and speculation's checks draw with it."""
    from llama_cpp._internals import LlamaSampler

    from assistant.llama import Greedy

    def picks() -> list[tuple[int, int]]:
        llm = smollm._llm
        tokens = llm.tokenize(" ".join(PROMPTS[1:]).encode())[: llm.n_batch]
        llm.reset()
        llm._ctx.kv_cache_seq_rm(-1, 0, -1)  # (reset keeps the cells; the engine cuts them itself)
        llm._batch.set_batch(batch=tokens, n_past=0, logits_all=True)
        llm._ctx.decode(llm._batch)
        chain = LlamaSampler()
        chain.add_greedy()
        ours = Greedy(llm.n_vocab())
        try:
            return [(ours.sample(llm._ctx, i), int(chain.sample(llm._ctx, i))) for i in range(len(tokens))]
        finally:
            chain.close()
            llm.reset()
            llm._ctx.kv_cache_seq_rm(-1, 0, -1)

    pairs = smollm.on_engine_thread(picks)
    assert [a for a, _ in pairs] == [b for _, b in pairs]
    assert len(pairs) > 50 and len({a for a, _ in pairs}) > 10  # many positions, many different picks
