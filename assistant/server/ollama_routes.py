"""Ollama's API, the subset its clients use: ``/api/version``, ``/api/tags``, ``/api/show``, ``/api/ps``,
``/api/chat``, ``/api/generate`` (NDJSON streams, ``options``, ``format``, ``keep_alive``), ``/api/embed``.

Model names are our catalog ids (``smollm2-135m-instruct:q4_1``) or the family alone, which picks the installed
variant, much as Ollama's ``name:tag`` with a default tag. Durations are nanoseconds, as Ollama reports them.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request

from .. import __version__
from ..chat import Message
from .errors import APIError
from .generation import Job, json_grammar
from .reply import Reply, Server, options
from .schemas import OllamaBase, OllamaChatRequest, OllamaEmbedRequest, OllamaGenerateRequest, OllamaModelRequest

router = APIRouter(prefix="/api")


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(min(ts, 253402300799), dt.UTC).isoformat().replace("+00:00", "Z")


@router.get("/version")
async def version() -> dict[str, str]:
    return {"version": __version__}


def _parameter_size(params: Any) -> str:
    """Ollama's way: "135M", "1.7B"."""
    if not isinstance(params, int | float) or params <= 0:
        return ""
    return f"{params / 1e6:.0f}M" if params < 1e9 else f"{params / 1e9:.1f}B"


def _details(info: dict[str, Any], quant: str) -> dict[str, Any]:
    family = str(info.get("architecture") or "")
    return {
        "parent_model": "",
        "format": "gguf",
        "family": family,
        "families": [family] if family else None,
        "parameter_size": _parameter_size(info.get("parameters")),
        "quantization_level": quant.upper(),
    }


@router.get("/tags")
async def tags(request: Request) -> dict[str, Any]:
    models = []
    for m in Server.of(request).pool.installed("llm"):
        modified = _iso(m.path.stat().st_mtime) if m.present else _now()
        models.append(
            {
                "name": m.id,
                "model": m.id,
                "modified_at": modified,
                "size": m.size_bytes,
                "digest": m.sha256 or "",
                "details": _details(m.info, m.quant),
            }
        )
    return {"models": models}


@router.post("/show")
async def show(request: Request, body: OllamaModelRequest) -> dict[str, Any]:
    item = Server.of(request).pool.resolve(body.model)
    info = item.info
    return {
        "modelfile": "",
        "parameters": "",
        "template": "",
        "license": "",
        "details": _details(info, item.quant),
        "model_info": {k: v for k, v in info.items() if isinstance(v, str | int | float | bool)},
        "capabilities": ["completion", "embedding"],
        "modified_at": _iso(item.path.stat().st_mtime),
    }


@router.get("/ps")
async def ps(request: Request) -> dict[str, Any]:
    models = []
    for loaded in Server.of(request).pool.chat.values():
        m = loaded.installed
        models.append(
            {
                "name": m.id,
                "model": m.id,
                "size": loaded.engine.estimate.total,
                "digest": m.sha256 or "",
                "details": _details(m.info, m.quant),
                "expires_at": _iso(loaded.expires_at),
                "size_vram": 0,
                "context_length": loaded.engine.context_size,
                **{"assistant": loaded.to_json()},
            }
        )
    return {"models": models}


def _job(request: Request, body: OllamaBase, messages: list[Message] | None, prompt: str | None) -> Job:
    o = body.options
    n = o.num_predict if o else None
    opts = options(
        Server.of(request).settings,
        temperature=o and o.temperature,
        top_p=o and o.top_p,
        seed=o and o.seed,
        max_tokens=None if n is None or n < 0 else max(1, n),
    )
    if n is not None and n < 0:  # -1 (and -2): as long as the context allows
        opts = opts.model_copy(update={"max_tokens": 1 << 20})
    grammar = None
    if body.format == "json":
        grammar = json_grammar(None)
    elif isinstance(body.format, dict):
        grammar = json_grammar(body.format)
    stops = [s for s in (o.stop or []) if s] if o else []
    return Job(opts, messages=messages, prompt=prompt, stops=stops, grammar=grammar)


@router.post("/chat")
async def chat(request: Request, body: OllamaChatRequest) -> Any:
    if not body.messages:  # Ollama loads the model and answers done: an empty chat is a preload
        Server.of(request).pool.release(await Server.of(request).pool.engine(body.model, body.keep_alive))
        return {
            "model": body.model,
            "created_at": _now(),
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": "load",
        }
    job = _job(request, body, [Message(m.role, m.content) for m in body.messages], None)
    return await _answer(request, body, job, chat=True)


@router.post("/generate")
async def generate(request: Request, body: OllamaGenerateRequest) -> Any:
    if not body.prompt:
        Server.of(request).pool.release(await Server.of(request).pool.engine(body.model, body.keep_alive))
        return {"model": body.model, "created_at": _now(), "response": "", "done": True, "done_reason": "load"}
    if body.raw:
        job = _job(request, body, None, body.prompt)
    else:
        messages = ([Message("system", body.system)] if body.system else []) + [Message("user", body.prompt)]
        job = _job(request, body, messages, None)
    return await _answer(request, body, job, chat=False)


async def _answer(request: Request, body: OllamaBase, job: Job, *, chat: bool) -> Any:
    started = time.perf_counter_ns()
    reply = await Reply.open(request, body.model, job, body.keep_alive)

    def piece(text: str) -> dict[str, Any]:
        content = {"message": {"role": "assistant", "content": text}} if chat else {"response": text}
        return {"model": reply.model_id, "created_at": _now(), **content, "done": False}

    def final(text: str) -> dict[str, Any]:
        u = reply.usage
        elapsed = time.perf_counter_ns() - started
        return {
            **piece(text),
            "done": True,
            "done_reason": u.finish_reason,
            "total_duration": elapsed,
            "load_duration": 0,
            "prompt_eval_count": u.prompt_tokens,
            "prompt_eval_duration": 0,
            "eval_count": u.completion_tokens,
            "eval_duration": elapsed,
        }

    if not body.stream:
        return final(await reply.collect())

    async def lines() -> AsyncIterator[str]:
        try:
            async for text in reply.pieces():
                yield json.dumps(piece(text)) + "\n"
        except APIError as exc:
            yield json.dumps({"error": exc.message}) + "\n"
            return
        yield json.dumps(final("")) + "\n"

    return reply.response(lines(), "application/x-ndjson")


@router.post("/embed")
async def embed(request: Request, body: OllamaEmbedRequest) -> dict[str, Any]:
    texts = [body.input] if isinstance(body.input, str) else body.input
    if not texts or not all(t.strip() for t in texts):
        raise APIError(400, "input must be a non-empty string or a list of non-empty strings", param="input")
    request.state.model = body.model
    started = time.perf_counter_ns()
    pool = Server.of(request).pool
    vectors, tokens = await pool.embed(body.model, texts)
    request.state.tokens_in, request.state.tokens_out = tokens, 0
    return {
        "model": pool.resolve(body.model).id,
        "embeddings": vectors,
        "total_duration": time.perf_counter_ns() - started,
        "prompt_eval_count": tokens,
    }
