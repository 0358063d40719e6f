"""``assistant serve`` through the official ``openai`` package: real model, real server, real HTTP.

The server is shared by the session (``helpers.serve.server``); replies are a few tokens at temperature 0.
"""

from __future__ import annotations

import base64
import json
import math
import struct
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from helpers.serve import API_KEY, SMOL, WHISPER, Served, serve_home, server  # noqa: F401  (fixtures)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(server: Served) -> openai.OpenAI:  # noqa: F811
    return openai.OpenAI(base_url=server.url + "/v1", api_key=API_KEY, max_retries=0, timeout=600)


def _ask(text: str) -> list[ChatCompletionMessageParam]:
    return [{"role": "user", "content": text}]


def test_models_list(client: openai.OpenAI) -> None:
    ids = {m.id for m in client.models.list()}
    assert {SMOL, WHISPER} <= ids


def test_chat_non_stream_and_stream_agree(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(model=SMOL, messages=_ask("Name a colour."), max_tokens=8, temperature=0)
    text = whole.choices[0].message.content
    assert text and whole.choices[0].finish_reason in ("stop", "length")
    assert whole.model == SMOL and whole.usage is not None
    assert whole.usage.prompt_tokens > 0 and 0 < whole.usage.completion_tokens <= 8
    assert whole.usage.total_tokens == whole.usage.prompt_tokens + whole.usage.completion_tokens

    chunks = list(
        client.chat.completions.create(
            model=SMOL,
            messages=_ask("Name a colour."),
            max_tokens=8,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == text  # greedy: the same tokens either way
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [whole.choices[0].finish_reason]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_an_alias_names_the_installed_variant(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="smollm2-135m-instruct", messages=_ask("Hi."), max_tokens=2)
    assert reply.model == SMOL


def test_seed_makes_sampling_reproducible(client: openai.OpenAI) -> None:
    def sample(seed: int) -> str | None:
        r = client.chat.completions.create(
            model=SMOL, messages=_ask("Write a word."), max_tokens=6, temperature=1.0, seed=seed
        )
        return r.choices[0].message.content

    assert sample(7) == sample(7)


def test_max_completion_tokens_and_stop(client: openai.OpenAI) -> None:
    """The stop string is taken from the greedy reply itself (which words a model picks differs between CPUs and
    builds): the reply with it is the text before its first occurrence."""
    ask = _ask("Count: 1, 2, 3, 4, 5, 6")
    free = client.chat.completions.create(model=SMOL, messages=ask, max_completion_tokens=24, temperature=0)
    text = free.choices[0].message.content or ""
    assert free.usage is not None and free.usage.completion_tokens <= 24
    words = text.split()
    assert len(words) >= 3, text
    stop = " " + words[2]
    reply = client.chat.completions.create(
        model=SMOL, messages=ask, max_completion_tokens=24, temperature=0, stop=[stop]
    )
    content = reply.choices[0].message.content or ""
    assert content == text[: text.index(stop)] and reply.choices[0].finish_reason == "stop"


SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}
PERSON: Any = {"type": "json_schema", "json_schema": {"name": "person", "schema": SCHEMA}}


def test_json_schema_reply_parses_and_validates(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=SMOL,
        messages=_ask("Describe a person as JSON."),
        max_tokens=48,
        temperature=0,
        response_format=PERSON,
    )
    data = json.loads(reply.choices[0].message.content or "")
    assert set(data) == {"name", "age"} and isinstance(data["name"], str) and isinstance(data["age"], int)


def test_json_object_reply_parses(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=SMOL,
        messages=_ask('Reply with a JSON object like {"ok": true}.'),
        max_tokens=48,
        temperature=0,
        response_format={"type": "json_object"},
    )
    assert reply.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(reply.choices[0].message.content or ""), dict)


def test_completions(client: openai.OpenAI) -> None:
    reply = client.completions.create(model=SMOL, prompt="The capital of France is", max_tokens=4, temperature=0)
    assert reply.choices[0].text and reply.usage is not None and reply.usage.completion_tokens <= 4
    streamed = "".join(
        c.choices[0].text
        for c in client.completions.create(
            model=SMOL, prompt="The capital of France is", max_tokens=4, temperature=0, stream=True
        )
        if c.choices
    )
    assert streamed == reply.choices[0].text


def _cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def test_embeddings(client: openai.OpenAI) -> None:
    texts = ["The cat sat on the mat.", "The cat sat on the mat.", "Quarterly revenue rose by four percent."]
    result = client.embeddings.create(model=SMOL, input=texts)
    vectors = [d.embedding for d in result.data]
    assert [d.index for d in result.data] == [0, 1, 2]
    assert len({len(v) for v in vectors}) == 1 and len(vectors[0]) == 576  # SmolLM2-135M's hidden size
    assert _cosine(vectors[0], vectors[1]) == pytest.approx(1.0, abs=1e-5)
    assert _cosine(vectors[0], vectors[2]) < 0.99
    assert math.sqrt(sum(x * x for x in vectors[0])) == pytest.approx(1.0, abs=1e-4)
    assert result.usage.prompt_tokens > 0

    raw = client.embeddings.with_raw_response.create(model=SMOL, input=texts[0], encoding_format="base64")
    encoded = json.loads(raw.text)["data"][0]["embedding"]
    decoded = struct.unpack(f"<{len(vectors[0])}f", base64.b64decode(encoded))
    assert decoded == pytest.approx(vectors[0], abs=1e-6)


def test_a_wrong_key_is_refused(server: Served) -> None:  # noqa: F811
    for key in ("wrong", ""):
        bad = openai.OpenAI(base_url=server.url + "/v1", api_key=key or "x", max_retries=0)
        with pytest.raises(openai.AuthenticationError) as caught:
            bad.models.list()
        assert caught.value.status_code == 401
        assert caught.value.body["code"] == "invalid_api_key"  # type: ignore[index]
