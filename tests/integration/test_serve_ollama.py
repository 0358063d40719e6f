"""``assistant serve`` through the official ``ollama`` package, unchanged: chat, generate, list, show, ps, embed."""

from __future__ import annotations

import json

import ollama
import pytest

from helpers.serve import API_KEY, SMOL, Served, serve_home, server  # noqa: F401  (fixtures)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(server: Served) -> ollama.Client:  # noqa: F811
    return ollama.Client(host=server.url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=600)


OPTIONS = {"temperature": 0, "num_predict": 8}


def test_chat_non_stream_and_stream_agree(client: ollama.Client) -> None:
    messages = [{"role": "user", "content": "Name a fruit."}]
    whole = client.chat(model=SMOL, messages=messages, options=OPTIONS)
    assert whole.message.role == "assistant" and whole.message.content and whole.done
    assert whole.eval_count and 0 < whole.eval_count <= 8 and whole.prompt_eval_count
    parts = list(client.chat(model=SMOL, messages=messages, options=OPTIONS, stream=True))
    assert "".join(p.message.content or "" for p in parts) == whole.message.content
    assert parts[-1].done and not any(p.done for p in parts[:-1])


def test_generate(client: ollama.Client) -> None:
    reply = client.generate(model=SMOL, prompt="Say hello.", options=OPTIONS)
    assert reply.response and reply.done and reply.done_reason in ("stop", "length")
    raw = client.generate(model=SMOL, prompt="The capital of France is", raw=True, options=OPTIONS)
    assert raw.response


def test_format_json(client: ollama.Client) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    reply = client.chat(
        model=SMOL,
        messages=[{"role": "user", "content": "A city as JSON."}],
        format=schema,
        options={"temperature": 0, "num_predict": 32},
    )
    assert isinstance(json.loads(reply.message.content or "")["city"], str)


def test_list_show_ps(client: ollama.Client) -> None:
    listed = {m.model: m for m in client.list().models}
    details = listed[SMOL].details
    assert details is not None and details.quantization_level == "Q4_1"
    assert (listed[SMOL].size or 0) > 50_000_000
    shown = client.show(SMOL)
    assert shown.details is not None and shown.details.family == "llama"
    client.generate(model=SMOL, prompt="Hi.", options={"num_predict": 1})
    assert SMOL in {m.model for m in client.ps().models}


def test_embed(client: ollama.Client) -> None:
    result = client.embed(model=SMOL, input=["same text", "same text"])
    a, b = result.embeddings
    assert len(a) == 576 and a == pytest.approx(b, abs=1e-6)


def test_unknown_model_is_a_response_error(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as caught:
        client.chat(model="nosuch-model:q4_0", messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == 404 and "assistant models pull" in caught.value.error
