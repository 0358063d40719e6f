"""Continuous batching (``--parallel 4``): several requests decode together in one llama.cpp context, and each
still gets the reply a lone client gets. Real SmolLM2, real ``openai`` client, real HTTP.

Nothing here waits on the clock: the tests read the server's own counters (``/health``: the batch's slots, the
sequences decoding now, the most one step carried, the requests that joined a running batch, the tokens drawn).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from conftest import wait_until
from helpers.serve import SMOL, Served, serve_home, start  # noqa: F401  (fixtures)

pytestmark = pytest.mark.slow

PROMPTS = (
    "Name three colours.",
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "Give me a tip for sleeping well.",
)
STORY = "Tell me a long story about a dragon."


@pytest.fixture(scope="module")
def batched(serve_home: Path) -> Iterator[Served]:  # noqa: F811
    """Four slots and a queue of two, on loopback without a key."""
    served = start(serve_home, "--parallel", "4", "--queue", "2", key=None)
    yield served
    assert served.stop() == 0, served.log.read_text()


@pytest.fixture(scope="module")
def single(serve_home: Path) -> Iterator[Served]:  # noqa: F811
    """One slot: requests take turns on the engine's own context (``LlamaEngine.stream``, as the CLI)."""
    served = start(serve_home, "--parallel", "1", key=None)
    yield served
    assert served.stop() == 0, served.log.read_text()


def _client(served: Served) -> openai.OpenAI:
    return openai.OpenAI(base_url=served.url + "/v1", api_key="unused", max_retries=0, timeout=600)


def _health(served: Served) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(served.get("/health"))
    return doc


def _ask(text: str) -> list[ChatCompletionMessageParam]:
    return [{"role": "user", "content": text}]


def _reply(client: openai.OpenAI, text: str, max_tokens: int = 24, **extra: Any) -> str:
    reply = client.chat.completions.create(
        model=SMOL, messages=_ask(text), max_tokens=max_tokens, temperature=extra.pop("temperature", 0), **extra
    )
    return reply.choices[0].message.content or ""


def _at_once(n: int, work: Any) -> list[Any]:
    """Run ``work(i)`` for i < n in n threads released together (a barrier, not a delay)."""
    barrier = threading.Barrier(n)

    def run(i: int) -> Any:
        barrier.wait()
        return work(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(run, range(n)))


def test_eight_clients_on_four_slots_get_the_lone_replies(batched: Served, single: Served) -> None:
    """8 at once against 4 slots and a queue of 2: each completes or gets 429 with Retry-After, the greedy replies
    are the ones a lone client gets, and the lone replies are the engine's own (the one-at-a-time path)."""
    client = _client(batched)
    alone = {p: _reply(client, p) for p in PROMPTS}
    assert all(alone.values())
    assert alone == {p: _reply(_client(single), p) for p in PROMPTS}

    def ask(i: int) -> str | None:
        try:
            return _reply(client, PROMPTS[i % len(PROMPTS)])
        except openai.RateLimitError as exc:
            assert exc.response.headers["retry-after"] == "1"
            return None

    results = _at_once(8, ask)
    done = {i: r for i, r in enumerate(results) if r is not None}
    assert len(done) >= 6  # 4 slots + 2 queued are always admitted; the rest only get 429 while those run
    assert {i: alone[PROMPTS[i % len(PROMPTS)]] for i in done} == done
    health = _health(batched)
    assert health["batch"]["slots"] == 4 and health["batch"]["peak"] >= 2, health
    assert health["batch"]["active"] == 0 and health["in_flight"] == 0, health


def test_a_request_joins_a_running_reply_and_neither_changes(batched: Served) -> None:
    """A request that arrives while a long reply streams joins it at the next step (it does not wait for it),
    and both replies are the ones each gets alone."""
    client = _client(batched)
    long_alone = client.chat.completions.create(model=SMOL, messages=_ask(STORY), max_tokens=200, temperature=0)
    assert long_alone.choices[0].finish_reason == "length"  # 200 tokens: the join below happens mid-reply
    short_alone = _reply(client, PROMPTS[1])
    joined = _health(batched)["batch"]["joined"]

    stream = client.chat.completions.create(
        model=SMOL, messages=_ask(STORY), max_tokens=200, temperature=0, stream=True
    )
    chunks = iter(stream)
    parts: list[str] = []
    while not parts:
        chunk = next(chunks)
        parts += [c.delta.content for c in chunk.choices if c.delta.content]
    assert _reply(client, PROMPTS[1]) == short_alone
    parts += [c.delta.content or "" for chunk in chunks for c in chunk.choices]
    assert "".join(parts) == long_alone.choices[0].message.content
    assert _health(batched)["batch"]["joined"] > joined


def test_grammar_and_seeded_sampling_are_per_sequence(batched: Served) -> None:
    """A json_schema reply, a seeded temperature-1 reply and a greedy one, decoded together: each is the reply
    it gets alone (a grammar constrains only its own sequence, a seed draws only for its own)."""
    client = _client(batched)
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    person: Any = {"type": "json_schema", "json_schema": {"name": "person", "schema": schema}}
    asks = [
        lambda: _reply(client, "Describe a person as JSON.", 48, response_format=person),
        lambda: _reply(client, "Write a word.", 12, temperature=1.0, seed=7),
        lambda: _reply(client, PROMPTS[2]),
    ]
    alone = [ask() for ask in asks]
    together = _at_once(len(asks), lambda i: asks[i]())
    assert together == alone
    data = json.loads(together[0])
    assert set(data) == {"name", "age"} and isinstance(data["age"], int)


def test_a_clients_next_turn_reuses_its_kv_cache(batched: Served, single: Served) -> None:
    """The second turn of a conversation lands in the slot holding the first (longest shared prefix): its
    prompt up to the first reply is not evaluated again, and the reply is the one a cold engine gives."""
    client = _client(batched)
    first_messages = _ask("My name is Ada. Say hello.")
    first = client.chat.completions.create(model=SMOL, messages=first_messages, max_tokens=16, temperature=0)
    second_messages: list[ChatCompletionMessageParam] = [
        *first_messages,
        {"role": "assistant", "content": first.choices[0].message.content or ""},
        {"role": "user", "content": "What is my name?"},
    ]
    second = client.chat.completions.create(model=SMOL, messages=second_messages, max_tokens=16, temperature=0)
    assert first.usage is not None and second.usage is not None
    details = second.usage.prompt_tokens_details
    assert details is not None and details.cached_tokens is not None
    assert details.cached_tokens >= first.usage.prompt_tokens, (details, first.usage)
    cold = _client(single).chat.completions.create(model=SMOL, messages=second_messages, max_tokens=16, temperature=0)
    assert second.choices[0].message.content == cold.choices[0].message.content


def test_a_client_that_disconnects_frees_its_slot(batched: Served) -> None:
    """Mid-stream the client goes away: its sequence leaves the batch and no more tokens are drawn for it."""
    body = {"model": SMOL, "messages": _ask(STORY), "max_tokens": 900, "temperature": 0, "stream": True}
    before = _health(batched)["batch"]["generated"]
    with httpx.stream("POST", batched.url + "/v1/chat/completions", json=body, timeout=600) as response:
        lines = response.iter_lines()
        while '"content": ""' in (line := next(lines)) or not line.startswith("data: {"):
            pass  # until the reply is streaming
    wait_until(lambda: _health(batched)["batch"]["active"] == 0, 120, "the abandoned sequence to leave the batch")
    wait_until(lambda: _health(batched)["in_flight"] == 0, 120, "the abandoned request to free its slot")
    gone = _health(batched)["batch"]["generated"]
    assert gone - before < 900
    assert _reply(_client(batched), PROMPTS[0], max_tokens=3)
    assert _health(batched)["batch"]["generated"] <= gone + 3  # nothing more came from the abandoned stream


GROUNDED = (
    "Repeat this list exactly:\n- apples\n- bread\n- milk\n- eggs\n- butter",
    "Copy this sentence word for word: The train to Berlin leaves at half past six from platform four.",
    "Rewrite in capitals: the cat sits on the mat while the dog runs in the garden.",
    "Show this code again:\n\ndef add(a, b):\n    return a + b",
)


def test_speculative_sequences_draft_in_the_batch_and_keep_their_replies(
    starter_files: dict[str, Path], tmp_path: Path, single: Served
) -> None:
    """``runtime.speculative = "lookup"``: four greedy sequences at once, each with its prompt-lookup drafts in the
    shared step, get the replies plain decoding gives a lone client (the one-slot server, speculation off)."""
    from helpers.serve import make_home

    home = make_home(tmp_path, starter_files)
    config = home / "config" / "config.toml"
    config.write_text(config.read_text().replace("[runtime]\n", '[runtime]\nspeculative = "lookup"\n'))
    served = start(home, "--parallel", "4", key=None)
    try:
        plain = {p: _reply(_client(single), p, max_tokens=48) for p in GROUNDED}
        replies = _at_once(4, lambda i: _reply(_client(served), GROUNDED[i], max_tokens=48))
        batch = _health(served)["batch"]
    finally:
        assert served.stop() == 0, served.log.read_text()
    assert dict(zip(GROUNDED, replies, strict=True)) == plain
    assert batch["peak"] >= 2 and batch["drafted"] > 0 and 0 < batch["accepted"] <= batch["drafted"], batch
