"""A reply to one API request: its slot, its model, its stream, and the bookkeeping both APIs share.

``Reply.open`` takes a slot and the model and waits for the first piece of text before the route answers, so a
failure that comes before any text (unknown model, a prompt over the context, a bad grammar) is still an
ordinary error response with its status, not a broken stream. After that the text streams; whoever stops
iterating (the route at the end, Starlette when the client disconnects) frees the slot and the model.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import StreamingResponse

from ..chat import ChatOptions, Message, Stats
from . import generation
from .generation import Job, Usage
from .guards import Slots
from .pool import Loaded, ModelPool
from .saving import Saver

if TYPE_CHECKING:
    from ..config import Settings


@dataclass
class Server:
    """What every route reaches through ``request.app.state.server``."""

    pool: ModelPool
    slots: Slots
    settings: Settings
    counters: dict[str, int]  # "generated": text pieces streamed so far (all requests; a piece is one or more
    # tokens, see generation.Handoff): a test watches it stop growing
    jobs: set[Job] = field(default_factory=set)  # replies in progress, cancelled together on Ctrl+C
    saver: Saver | None = None  # --save: finished replies go to the chat history
    timeout_s: float | None = None  # --timeout: a reply generating longer is cut there (finish_reason "length")

    def cancel_all(self) -> None:
        """Stop every running reply after its current token; each stream then ends properly (a final chunk and
        [DONE]), so a client never sees a reply cut mid-message. Safe from a signal handler."""
        for job in list(self.jobs):
            job.cancel.cancel()

    @staticmethod
    def of(request: Request) -> Server:
        server: Server = request.app.state.server
        return server


def options(settings: Settings, **given: Any) -> ChatOptions:
    """Sampling options: what the request gives, else config.toml's [chat] defaults (as ``assistant chat``)."""
    chat = settings.chat
    defaults = {"temperature": chat.temperature, "top_p": chat.top_p, "max_tokens": chat.max_tokens, "seed": chat.seed}
    return ChatOptions.model_validate({k: v if given.get(k) is None else given[k] for k, v in defaults.items()})


class Reply:
    """See the module docstring. ``text`` and ``usage`` are complete once the iteration is over."""

    def __init__(self, request: Request, loaded: Loaded, job: Job, items: AsyncIterator[str | Usage]) -> None:
        self.request = request
        self.loaded = loaded
        self.job = job
        self.items = items
        self.model_id = loaded.installed.id
        self.created = int(time.time())
        self.usage = Usage()
        self.parts: list[str] = []
        self.first: str | Usage | None = None
        self.completed = False  # the reply reached its end (not cut by a disconnect or Ctrl+C)
        self.timed_out = False
        self._timer: asyncio.TimerHandle | None = None
        self._released = False

    @classmethod
    async def open(cls, request: Request, model: str, job: Job, keep_alive: float | str | None = None) -> Reply:
        server = Server.of(request)
        request.state.model = model
        await server.slots.acquire()
        try:
            loaded = await server.pool.engine(model, keep_alive)
        except BaseException:
            server.slots.release()
            raise
        request.state.model = loaded.installed.id
        server.jobs.add(job)
        if loaded.batcher is not None:  # decodes alongside the model's other requests
            items = loaded.batcher.stream(job)
        else:  # one at a time, in arrival order (the model's lock)
            items = generation.stream(loaded.engine, loaded.lock, job)
        reply = cls(request, loaded, job, items)
        try:
            reply.first = await anext(items)
        except BaseException:
            await reply._release()
            raise
        if server.timeout_s is not None:  # from the first piece: the prompt is bounded by the context already
            reply._timer = asyncio.get_running_loop().call_later(server.timeout_s, reply._time_out)
        return reply

    def _time_out(self) -> None:
        """--timeout: stop after the current token; the reply so far is the answer, cut as by max_tokens."""
        self.timed_out = True
        self.job.cancel.cancel()

    async def _release(self) -> None:
        if self._released:
            return
        self._released = True
        if self._timer is not None:
            self._timer.cancel()
        with contextlib.suppress(BaseException):
            await self.items.aclose()  # type: ignore[attr-defined]
        server = Server.of(self.request)
        server.jobs.discard(self.job)
        server.slots.release()
        server.pool.release(self.loaded)
        state = self.request.state
        state.tokens_in, state.tokens_out = self.usage.prompt_tokens, self.usage.completion_tokens
        if server.saver is not None and (
            self.parts or self.completed
        ):  # a request refused before any text is not a chat
            await self._save(server.saver)

    async def _save(self, saver: Saver) -> None:
        """``--save``: the request's messages and this reply, as a chat (see ``server.saving``)."""
        job = self.job
        messages = job.messages if job.messages is not None else [Message("user", job.prompt or "")]
        usage = self.usage
        stats = Stats(
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            finish_reason="length" if usage.finish_reason == "length" else "stop" if self.completed else "cancelled",
        )
        text = "".join(self.parts)
        await asyncio.to_thread(saver.save, self.model_id, messages, text, stats, partial=not self.completed)

    def response(self, body: AsyncIterator[str], media_type: str) -> StreamingResponse:
        """A streaming response over ``body`` (which iterates ``pieces``) that frees the slot and the model even if
        the client leaves before the stream starts (then ``body`` never runs, and neither would its cleanup)."""
        return StreamingResponse(body, media_type=media_type, background=BackgroundTask(self._release))

    async def pieces(self) -> AsyncIterator[str]:
        """The reply's text as it comes; frees the slot and the model when done or abandoned."""
        counters = Server.of(self.request).counters
        try:
            item = self.first
            while True:
                if isinstance(item, Usage):
                    self.usage = item
                    if self.timed_out:
                        item.finish_reason = "length"
                    self.completed = self.timed_out or not self.job.cancel.cancelled
                    return
                if item:
                    self.parts.append(item)
                    counters["generated"] = counters.get("generated", 0) + 1
                    yield item
                item = await anext(self.items)
        finally:
            await self._release()

    async def collect(self) -> str:
        """The whole reply (non-streaming routes); stops generating if the client disconnects meanwhile."""
        watcher = asyncio.ensure_future(_watch_disconnect(self.request, self.job))
        try:
            async for _ in self.pieces():
                pass
        finally:
            watcher.cancel()
        return "".join(self.parts)


async def _watch_disconnect(request: Request, job: Job) -> None:
    """Cancel ``job`` when the client goes away (the body is read already, so the next message is the end)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            job.cancel.cancel()
            return
