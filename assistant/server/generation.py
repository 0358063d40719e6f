"""One request's reply, generated on the llama thread and streamed back to the event loop.

A plain chat goes through ``LlamaEngine.stream`` (its sampler, KV-cache reuse and never-empty reply, at the same
speed as the CLI). A reply that must follow a grammar (``response_format``, Ollama's ``format``) or a raw prompt
(``/v1/completions``, ``/api/generate`` with ``raw``) goes through llama-cpp-python's ``create_completion`` on the
same ``Llama``, which samples under a GBNF grammar; both keep the ``Llama``'s token bookkeeping, so the next
request still reuses the shared prefix. Either way the whole reply runs inside ``engine.on_engine_thread``: the
one llama thread, never uvicorn's. Stop strings are cut here, from the text, so both paths handle them alike.

The API does not trim history the way a chat does: a conversation over the context is the client's error (400),
as OpenAI answers, instead of a reply to a silently shortened conversation.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from ..chat import CancelToken, ChatOptions, Message
from ..engine import LlamaEngine
from ..errors import AssistantError
from .errors import APIError, from_domain

# The same cut-offs LlamaEngine samples with (llama-cpp-python's defaults), so both paths draw alike.
TOP_K = 40
MIN_P = 0.05


@dataclass(eq=False)
class Job:
    """What to generate: ``messages`` through the chat template, or ``prompt`` as raw text."""

    options: ChatOptions
    messages: list[Message] | None = None
    prompt: str | None = None
    stops: list[str] = field(default_factory=list)
    grammar: Any = None  # a llama_cpp.LlamaGrammar
    cancel: CancelToken = field(default_factory=CancelToken)


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"
    cached_tokens: int = 0  # prompt tokens whose KV cache an earlier request left (OpenAI's prompt_tokens_details)


def json_grammar(schema: dict[str, Any] | None) -> Any:
    """A grammar for any JSON object (``schema`` None) or for ``schema``; a schema llama.cpp's converter cannot
    handle is the client's error (400), named as such."""
    from llama_cpp import LlamaGrammar
    from llama_cpp.llama_grammar import JSON_GBNF

    if schema is None:
        return LlamaGrammar.from_string(JSON_GBNF, verbose=False)
    try:
        return LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
    except (AssertionError, AttributeError, KeyError, TypeError, ValueError, RecursionError) as exc:
        detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise APIError(400, f"invalid JSON schema: {detail}", param="response_format", code="invalid_schema") from None


class StopCutter:
    """Cuts streamed text at the first stop string, holding back a tail that may be one's beginning."""

    def __init__(self, stops: list[str]) -> None:
        self.stops = stops
        self.pending = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        if not self.stops:
            return text
        self.pending += text
        cut = min((i for i in (self.pending.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            ready, self.pending, self.stopped = self.pending[:cut], "", True
            return ready
        hold = max((k for s in self.stops for k in range(len(s) - 1, 0, -1) if self.pending.endswith(s[:k])), default=0)
        ready = self.pending[: len(self.pending) - hold]
        self.pending = self.pending[len(ready) :]
        return ready

    def flush(self) -> str:
        rest, self.pending = self.pending, ""
        return rest


def prompt_tokens(engine: LlamaEngine, job: Job) -> list[int]:
    """The prompt's tokens, or a 400 if it (plus one reply token) does not fit the context untrimmed, or if
    there is none to sample from. On the llama thread (it tokenizes); ``batch`` calls it before a request joins."""
    try:
        return _check_fits(engine, job)
    except AssistantError as exc:
        raise from_domain(exc, engine.model_id) from None


def _check_fits(engine: LlamaEngine, job: Job) -> list[int]:
    assert job.messages is not None or job.prompt is not None
    if job.messages is not None:
        plan = engine.plan(job.messages, job.options, job.cancel)
        if plan.dropped:
            raise APIError(
                400,
                f"the messages need more than {engine.context_size} tokens of context with {job.options.max_tokens}"
                " reserved for the reply: send fewer or shorter messages, or a smaller max_tokens",
                param="messages",
                code="context_length_exceeded",
            )
        tokens = plan.tokens
    else:
        tokens = engine.llama.tokenize((job.prompt or "").encode("utf-8"), add_bos=True, special=False)
    if not tokens:  # a model without a BOS token and an empty prompt: nothing to draw the first token from
        raise APIError(400, "the prompt is empty", param="messages" if job.messages is not None else "prompt")
    if len(tokens) >= engine.context_size:
        raise APIError(
            400,
            f"the prompt is {len(tokens)} tokens, the context holds {engine.context_size}",
            param="messages" if job.messages is not None else "prompt",
            code="context_length_exceeded",
        )
    return tokens


def _run_engine(engine: LlamaEngine, job: Job, emit: Callable[[str], None], usage: Usage) -> None:
    cutter = StopCutter(job.stops)
    assert job.messages is not None
    for chunk in engine.stream(job.messages, job.options, job.cancel):
        if chunk.text:
            text = cutter.feed(chunk.text)
            if text:
                emit(text)
            if cutter.stopped:
                job.cancel.cancel()  # the engine stops after this token; the reply is what came before the stop
        if chunk.stats is not None:
            usage.prompt_tokens = chunk.stats.prompt_tokens
            usage.completion_tokens = chunk.stats.completion_tokens
            usage.cached_tokens = chunk.stats.cached_tokens
            usage.finish_reason = "length" if chunk.stats.finish_reason == "length" else "stop"
    if not cutter.stopped and (rest := cutter.flush()):
        emit(rest)


def _run_raw(engine: LlamaEngine, job: Job, tokens: list[int], emit: Callable[[str], None], usage: Usage) -> None:
    llm = engine.llama
    opts = job.options
    max_new = max(1, min(opts.max_tokens, engine.context_size - len(tokens)))
    usage.prompt_tokens = len(tokens)
    cutter = StopCutter(job.stops)
    stream = llm.create_completion(
        tokens,
        max_tokens=max_new,
        temperature=opts.temperature,
        top_p=opts.top_p,
        top_k=TOP_K,
        min_p=MIN_P,
        seed=opts.seed,
        grammar=job.grammar,
        stream=True,
    )
    finish = None
    try:
        for part in stream:
            choice = part["choices"][0]
            if choice["text"]:  # one chunk per token (a character split over tokens arrives whole, once)
                usage.completion_tokens += 1
            text = cutter.feed(choice["text"])
            if text:
                emit(text)
            finish = choice["finish_reason"] or finish
            if cutter.stopped or job.cancel.cancelled:
                break
    finally:
        stream.close()
    if not cutter.stopped and (rest := cutter.flush()):
        emit(rest)
    usage.finish_reason = "length" if finish == "length" and not cutter.stopped else "stop"


def _generate(engine: LlamaEngine, job: Job, emit: Callable[[str], None]) -> Usage:
    """The whole reply, on the llama thread (called through ``engine.on_engine_thread``)."""
    usage = Usage()
    if job.cancel.cancelled:  # the client left while this request waited for the model
        return usage
    try:
        tokens = _check_fits(engine, job)
        if job.grammar is None and job.messages is not None:
            _run_engine(engine, job, emit, usage)
        else:
            _run_raw(engine, job, tokens, emit, usage)
    except AssistantError as exc:
        raise from_domain(exc, engine.model_id) from None
    except RuntimeError as exc:  # llama_decode failures (out of memory, a full KV cache)
        raise APIError(500, f"{engine.model_id}: llama.cpp failed: {exc}", type="server_error") from None
    return usage


DONE = object()  # the end of a reply, after its Usage (or its exception)


class Handoff:
    """A reply's pieces from the llama thread to the request's coroutine, waking the event loop once per
    batch rather than once per token: ``put`` wakes it only when the coroutine is waiting, and ``pieces``
    takes everything that arrived meanwhile, the text joined into one piece. On two cores the event loop and
    the model share the CPU, and a wake-up per token (a pipe write, a loop turn, a chunk to write) is time the
    next token does not get."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._items: list[Any] = []
        self._lock = threading.Lock()
        self._event = asyncio.Event()
        self._waiting = False

    def put(self, item: Any) -> None:
        """Any thread. Raises RuntimeError when the event loop is gone."""
        with self._lock:
            self._items.append(item)
            wake, self._waiting = self._waiting, False
        if wake:
            self._loop.call_soon_threadsafe(self._event.set)

    async def pieces(self) -> AsyncIterator[str | Usage]:
        """The text (consecutive pieces joined) and the ``Usage``, until ``DONE``; a put exception is raised."""
        while True:
            with self._lock:
                items, self._items = self._items, []
                if not items:
                    self._waiting = True
                    self._event.clear()
            if not items:
                await self._event.wait()
                continue
            text: list[str] = []
            for item in items:
                if isinstance(item, str):
                    text.append(item)
                    continue
                if text:
                    yield "".join(text)
                    text = []
                if item is DONE:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
            if text:
                yield "".join(text)


async def stream(engine: LlamaEngine, lock: asyncio.Lock, job: Job) -> AsyncIterator[str | Usage]:
    """Yield the reply's text pieces, then its ``Usage``.

    ``lock`` (one per model) is held until the llama thread has really finished, not merely until this
    generator stops: a client that disconnects cancels ``job`` and the next request waits for the current
    token, never for a reply nobody reads. The work runs in a helper thread that waits on the llama thread, so
    the event loop keeps serving other requests meanwhile."""
    loop = asyncio.get_running_loop()
    handoff = Handoff(loop)

    def work() -> None:
        try:
            result: Any = engine.on_engine_thread(lambda: _generate(engine, job, handoff.put))
        except BaseException as exc:
            result = exc
        handoff.put(result)
        handoff.put(DONE)

    await lock.acquire()
    try:
        future = loop.run_in_executor(None, work)
    except BaseException:
        lock.release()
        raise
    future.add_done_callback(lambda _: lock.release())
    try:
        async for item in handoff.pieces():
            yield item
    finally:
        job.cancel.cancel()  # no-op once finished; stops generation for a client that went away
        with contextlib.suppress(BaseException):
            future.cancel()  # only takes effect if the thread never started
