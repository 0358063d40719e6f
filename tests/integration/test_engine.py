"""LlamaEngine on the real starter models: replies, cancel, KV reuse, trimming, completion mode, refusals."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import llama_cpp
import pytest

from assistant import fit
from assistant.chat import CancelToken, ChatOptions, Chunk, Message, Stats
from assistant.engine import LlamaEngine, load_engine
from assistant.errors import AssistantError
from assistant.gguf import GGUFError

from conftest import GEMMA, SMOL

SYSTEM = Message("system", "You are a helpful assistant. Answer briefly.")
GREEDY = ChatOptions.model_validate({"temperature": 0, "max_tokens": 24, "seed": 1})


def opts(**values: Any) -> ChatOptions:
    """ChatOptions from keywords (validated: unknown keys fail)."""
    return ChatOptions.model_validate(values)


@pytest.fixture(scope="module")
def smol(starter_files: dict[str, Path]) -> Iterator[LlamaEngine]:
    engine = LlamaEngine(starter_files[SMOL], n_ctx=2048, n_threads=2, model_id=SMOL)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def gemma(starter_files: dict[str, Path]) -> Iterator[LlamaEngine]:
    engine = LlamaEngine(starter_files[GEMMA], n_ctx=1024, n_threads=2, model_id=GEMMA)
    yield engine
    engine.close()


def run(engine: LlamaEngine, messages: list[Message], options: ChatOptions = GREEDY, cancel=None):
    chunks: list[Chunk] = list(engine.stream(messages, options, cancel))
    stats = chunks[-1].stats
    assert isinstance(stats, Stats), "the last chunk carries the stats"
    assert all(c.stats is None for c in chunks[:-1])
    text = "".join(c.text for c in chunks)
    notices = [c.notice for c in chunks if c.notice]
    return text, stats, notices


@pytest.mark.slow
def test_reply_is_streamed_and_repeatable(smol: LlamaEngine) -> None:
    messages = [SYSTEM, Message("user", "What is the capital of France?")]
    chunks = list(smol.stream(messages, GREEDY))
    text_chunks = [c.text for c in chunks if c.text]
    assert len(text_chunks) > 1, "streamed piece by piece"
    text = "".join(text_chunks)
    assert text.strip() and text == text.strip()
    stats = chunks[-1].stats
    assert stats is not None
    assert stats.prompt_tokens > 10 and 0 < stats.completion_tokens <= GREEDY.max_tokens
    assert stats.ttft_ms > 0 and stats.tokens_per_second > 0 and stats.total_ms >= stats.ttft_ms
    assert stats.finish_reason in ("stop", "length") and not stats.completion_mode
    again, _, _ = run(smol, messages)
    assert again == text, "temperature 0 is deterministic"


@pytest.mark.slow
def test_seed_makes_sampling_repeatable(smol: LlamaEngine) -> None:
    messages = [SYSTEM, Message("user", "Write one sentence about cats.")]
    options = opts(temperature=1.0, top_p=0.9, max_tokens=20, seed=1234)
    first, _, _ = run(smol, messages, options)
    second, _, _ = run(smol, messages, options)
    assert first and first == second


@pytest.mark.slow
def test_max_tokens_is_respected(smol: LlamaEngine) -> None:
    options = opts(temperature=0, max_tokens=5)
    _, stats, _ = run(smol, [SYSTEM, Message("user", "Count from one to one hundred in words.")], options)
    assert stats.completion_tokens == 5 and stats.finish_reason == "length"


@pytest.mark.slow
def test_cancel_stops_after_current_token(smol: LlamaEngine) -> None:
    cancel = CancelToken()
    options = opts(temperature=0, max_tokens=200)
    messages = [SYSTEM, Message("user", "Write a long story about a dragon.")]
    received: list[Chunk] = []
    for chunk in smol.stream(messages, options, cancel):
        received.append(chunk)
        if chunk.text and sum(1 for c in received if c.text) == 3:
            cancel.cancel()
    stats = received[-1].stats
    assert stats is not None and stats.finish_reason == "cancelled"
    assert 3 <= stats.completion_tokens <= 6, "stops right after the token in progress"
    assert "".join(c.text for c in received).strip()


@pytest.mark.slow
def test_cancel_before_start_gives_empty_cancelled_reply(smol: LlamaEngine) -> None:
    cancel = CancelToken()
    cancel.cancel()
    text, stats, _ = run(smol, [SYSTEM, Message("user", "Hello")], GREEDY, cancel)
    assert text == "" and stats.finish_reason == "cancelled" and stats.completion_tokens == 0


@pytest.mark.slow
def test_follow_up_only_evaluates_new_tokens(smol: LlamaEngine) -> None:
    """Multi-turn KV reuse: turn 2 evaluates its new tokens, not the history again."""
    first = [SYSTEM, Message("user", "Name a colour.")]
    reply1, stats1, _ = run(smol, first)
    assert reply1
    second = [*first, Message("assistant", reply1), Message("user", "Name another one.")]
    ctx = smol.llama.ctx
    llama_cpp.llama_perf_context_reset(ctx)
    _, stats2, _ = run(smol, second)
    # llama.cpp's own counter of prompt tokens decoded this turn, as an independent witness
    assert llama_cpp.llama_perf_context(ctx).n_p_eval == stats2.prompt_tokens - stats2.cached_tokens
    assert stats2.prompt_tokens == smol.count_tokens(second)
    # everything turn 1 evaluated (its prompt and its reply) is reused...
    assert stats2.cached_tokens >= stats1.prompt_tokens
    # ...so only the tokens after that are evaluated: the reply's end marker and the new user message
    new_tokens = stats2.prompt_tokens - stats1.prompt_tokens - stats1.completion_tokens
    evaluated = stats2.prompt_tokens - stats2.cached_tokens
    assert evaluated <= new_tokens + 2, (evaluated, new_tokens)

    # the same prompt again: everything but the last two tokens comes from the cache (a lone token would be
    # evaluated with another matrix kernel than the prompt was: llama.chunk_length)
    _, stats3, _ = run(smol, second)
    assert stats3.cached_tokens == stats3.prompt_tokens - 2


@pytest.mark.slow
def test_overflow_drops_oldest_turns(starter_files: dict[str, Path]) -> None:
    engine = LlamaEngine(starter_files[SMOL], n_ctx=512, n_threads=2, model_id=SMOL)
    try:
        history: list[Message] = [SYSTEM]
        for i in range(12):
            history.append(Message("user", f"Question {i}: " + "tell me about rivers and mountains " * 4))
            history.append(Message("assistant", f"Answer {i}: " + "rivers flow down from mountains " * 4))
        history.append(Message("user", "Newest question: what is a lake?"))
        options = opts(temperature=0, max_tokens=16)
        assert engine.count_tokens(history) > 512

        plan = engine.plan(history, options)
        assert plan.dropped > 0 and plan.dropped % 2 == 0, "whole turns are dropped"
        assert plan.messages[0] == SYSTEM and plan.messages[-1] == history[-1]
        assert plan.messages[1:] == history[1 + plan.dropped :], "the oldest go first, the rest stay in order"
        assert len(plan.tokens) + options.max_tokens <= 512

        text, stats, notices = run(engine, history, options)
        assert text
        assert stats.dropped_messages == plan.dropped
        assert f"history trimmed: {plan.dropped} oldest messages dropped" in notices

        # the next turn cuts at the same place, so the cache still holds the kept history
        follow = [*history, Message("assistant", text), Message("user", "And a pond?")]
        _, stats2, _ = run(engine, follow, options)
        assert stats2.dropped_messages == stats.dropped_messages
        assert stats2.cached_tokens > stats.prompt_tokens // 2
    finally:
        engine.close()


@pytest.mark.slow
def test_newest_message_too_long_is_an_error(starter_files: dict[str, Path]) -> None:
    engine = LlamaEngine(starter_files[SMOL], n_ctx=256, n_threads=2, model_id=SMOL)
    try:
        huge = Message("user", "word " * 600)
        with pytest.raises(AssistantError, match="too long") as err:
            list(engine.stream([SYSTEM, huge], opts(max_tokens=16)))
        assert err.value.hint and "--ctx" in err.value.hint
    finally:
        engine.close()


@pytest.mark.slow
def test_base_model_runs_in_completion_mode(gemma: LlamaEngine) -> None:
    assert gemma.completion_mode and gemma.chat_template is None
    messages = [SYSTEM, Message("user", "What is the capital of France?")]
    text, stats, notices = run(gemma, messages, opts(temperature=0, max_tokens=24))
    assert notices[0] == f"{GEMMA} has no chat template: completion mode"
    assert text.strip(), "never an empty reply"
    assert "\nUser:" not in text and "\nAssistant:" not in text, "stops at the next speaker"
    assert stats.completion_mode
    prompt = gemma.render(messages)
    assert prompt.startswith(SYSTEM.content) and prompt.endswith("User: What is the capital of France?\nAssistant:")


@pytest.mark.slow
def test_reply_is_never_empty(gemma: LlamaEngine) -> None:
    """Asked to continue a finished answer, a base model's first choice is a newline then "User:", which
    would end the reply before it began; until the reply has text, ends and bare whitespace are banned."""
    messages = [Message("user", "Hi"), Message("assistant", "Hello! How can I help?")]
    text, stats, _ = run(gemma, messages, opts(temperature=0, max_tokens=12))
    assert text.strip() and not text.startswith("User:"), text
    assert stats.completion_tokens > 0


@pytest.mark.slow
def test_chat_template_prompt(smol: LlamaEngine) -> None:
    prompt = smol.render([SYSTEM, Message("user", "Hi")])
    assert prompt == (
        "<|im_start|>system\nYou are a helpful assistant. Answer briefly.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )
    assert smol.context_size == 2048
    assert smol.count_tokens([SYSTEM, Message("user", "Hi")]) < smol.count_tokens(
        [SYSTEM, Message("user", "Hi there, how are you doing today?")]
    )


def test_malformed_gguf_is_refused_before_llama_cpp(starter_files: dict[str, Path], tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    with open(starter_files[SMOL], "rb") as src:
        broken.write_bytes(src.read(4096))  # a header cut short: llama.cpp could crash on it
    with pytest.raises(GGUFError, match="not a valid GGUF"):
        LlamaEngine(broken, n_ctx=512)
    with pytest.raises(AssistantError, match="no such file"):
        LlamaEngine(tmp_path / "missing.gguf", n_ctx=512)


def test_model_that_wont_fit_is_refused(starter_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fit, "available_bytes", lambda: 32 * 1024 * 1024)
    with pytest.raises(AssistantError, match="won't fit") as err:
        LlamaEngine(starter_files[SMOL], n_ctx=4096, model_id=SMOL)
    assert err.value.hint and "--ctx" in err.value.hint


@pytest.mark.slow
def test_load_engine_uses_store_and_config(installed_models: dict[str, object]) -> None:
    engine = load_engine(None, n_ctx=1024)  # default model from the (default) config
    try:
        assert engine.model_id == SMOL and engine.context_size == 1024
        assert not engine.completion_mode
    finally:
        engine.close()
    with pytest.raises(AssistantError, match="not installed"):
        load_engine("qwen2.5-0.5b-instruct:q4_k_m")
    with pytest.raises(AssistantError, match="not a chat model"):
        load_engine("whisper-tiny.en:int8")
