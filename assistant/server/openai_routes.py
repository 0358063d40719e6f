"""OpenAI's API: ``/v1/models``, ``/v1/chat/completions``, ``/v1/completions``, ``/v1/embeddings``.

Shapes follow OpenAI's reference, so the official ``openai`` package (and what is built on it) works unchanged.
Sampling defaults that a request leaves out come from config.toml's [chat] section, as for ``assistant chat``.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request

from .errors import APIError
from .generation import Job, json_grammar
from .reply import Reply, Server, options
from .schemas import ChatCompletionRequest, CompletionRequest, EmbeddingRequest, ResponseFormat

router = APIRouter(prefix="/v1")


def _usage(reply: Reply) -> dict[str, Any]:
    u = reply.usage
    return {
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cached_tokens},
    }


def _sse(data: dict[str, Any] | str) -> str:
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n"


@router.get("/models")
async def list_models(request: Request) -> dict[str, Any]:
    items = Server.of(request).pool.installed()
    return {"object": "list", "data": [_model_card(m.id) for m in items]}


@router.get("/models/{model_id:path}")
async def get_model(request: Request, model_id: str) -> dict[str, Any]:
    item = Server.of(request).pool.resolve(model_id, kind=_kind_of(request, model_id))
    return _model_card(item.id)


def _kind_of(request: Request, model_id: str) -> str:
    ids = {m.id: m.kind for m in Server.of(request).pool.installed()}
    return ids.get(model_id, "llm")


def _model_card(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": 0, "owned_by": "assistant"}


def grammar_for(fmt: ResponseFormat | None) -> Any:
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return json_grammar(None)
    if fmt.json_schema is None or not fmt.json_schema.schema_:
        raise APIError(400, "response_format json_schema needs a json_schema.schema", param="response_format")
    return json_grammar(fmt.json_schema.schema_)


@router.post("/chat/completions")
async def chat_completions(request: Request, body: ChatCompletionRequest) -> Any:
    if not body.messages:
        raise APIError(400, "messages must not be empty", param="messages", code="empty_messages")
    settings = Server.of(request).settings
    opts = options(
        settings,
        temperature=body.temperature,
        top_p=body.top_p,
        seed=body.seed,
        max_tokens=body.max_completion_tokens or body.max_tokens,
    )
    job = Job(
        opts,
        messages=[m.to_message() for m in body.messages],
        stops=body.stops(),
        grammar=grammar_for(body.response_format),
    )
    reply = await Reply.open(request, body.model, job)
    rid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    if body.stream:
        usage = body.stream_options is not None and body.stream_options.include_usage
        return reply.response(_chat_stream(reply, rid, usage), "text/event-stream")
    text = await reply.collect()
    return {
        "id": rid,
        "object": "chat.completion",
        "created": reply.created,
        "model": reply.model_id,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": reply.usage.finish_reason,
            }
        ],
        "usage": _usage(reply),
    }


async def _chat_stream(reply: Reply, rid: str, include_usage: bool) -> AsyncIterator[str]:
    head = {"id": rid, "object": "chat.completion.chunk", "created": reply.created, "model": reply.model_id}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        return _sse({**head, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]})

    yield chunk({"role": "assistant", "content": ""})
    try:
        async for text in reply.pieces():
            yield chunk({"content": text})
    except APIError as exc:  # after the first piece, a failure can only be reported inside the stream
        yield _sse(exc.body())
        return
    yield chunk({}, reply.usage.finish_reason)
    if include_usage:
        yield _sse({**head, "choices": [], "usage": _usage(reply)})
    yield _sse("[DONE]")


@router.post("/completions")
async def completions(request: Request, body: CompletionRequest) -> Any:
    settings = Server.of(request).settings
    opts = options(settings, temperature=body.temperature, top_p=body.top_p, seed=body.seed, max_tokens=body.max_tokens)
    reply = await Reply.open(request, body.model, Job(opts, prompt=body.prompt, stops=body.stops()))
    rid = f"cmpl-{uuid.uuid4().hex[:24]}"
    head = {"id": rid, "object": "text_completion", "created": reply.created, "model": reply.model_id}
    if body.stream:
        return reply.response(_completion_stream(reply, head, body), "text/event-stream")
    text = await reply.collect()
    choice = {
        "text": (body.prompt if body.echo else "") + text,
        "index": 0,
        "logprobs": None,
        "finish_reason": reply.usage.finish_reason,
    }
    return {**head, "choices": [choice], "usage": _usage(reply)}


async def _completion_stream(reply: Reply, head: dict[str, Any], body: CompletionRequest) -> AsyncIterator[str]:
    def chunk(text: str, finish: str | None = None) -> str:
        return _sse({**head, "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish}]})

    if body.echo:
        yield chunk(body.prompt)
    try:
        async for text in reply.pieces():
            yield chunk(text)
    except APIError as exc:
        yield _sse(exc.body())
        return
    yield chunk("", reply.usage.finish_reason)
    if body.stream_options is not None and body.stream_options.include_usage:
        yield _sse({**head, "choices": [], "usage": _usage(reply)})
    yield _sse("[DONE]")


@router.post("/embeddings")
async def embeddings(request: Request, body: EmbeddingRequest) -> Any:
    texts = [body.input] if isinstance(body.input, str) else body.input
    if not texts or not all(t.strip() for t in texts):
        raise APIError(400, "input must be a non-empty string or a list of non-empty strings", param="input")
    request.state.model = body.model
    vectors, tokens = await Server.of(request).pool.embed(body.model, texts)
    request.state.tokens_in, request.state.tokens_out = tokens, 0
    data = [
        {"object": "embedding", "index": i, "embedding": _encode(v, body.encoding_format)}
        for i, v in enumerate(vectors)
    ]
    model_id = Server.of(request).pool.resolve(body.model).id
    body_out = {
        "object": "list",
        "data": data,
        "model": model_id,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return body_out


def _encode(vector: list[float], fmt: str) -> list[float] | str:
    if fmt == "float":
        return vector
    import numpy as np

    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
