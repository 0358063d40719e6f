"""What stands between a request and a model: the API key, the body size limit, the request slots, and the
one-line access log. The first three answer with an OpenAI-style error before any route code runs."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .errors import APIError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

access_log = logging.getLogger("assistant.serve.access")


async def send_error(send: Send, error: APIError) -> None:
    body = json.dumps(error.body()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in error.headers.items()]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> bytes | None:
    return next((v for k, v in scope.get("headers", ()) if k == name), None)


class BodyTooLarge(Exception):
    """Raised from ``receive`` when a body without a Content-Length grows past the limit."""


class Guard:
    """ASGI middleware: the API key (every route, constant-time compare), the body limit, the access log."""

    def __init__(self, app: ASGIApp, *, api_key: str | None, max_body: int) -> None:
        self.app = app
        self.key = api_key.encode() if api_key else None
        self.max_body = max_body

    def _authorized(self, scope: Scope) -> bool:
        if self.key is None:
            return True
        given = _header(scope, b"authorization") or b""
        token = given[7:].strip() if given[:7].lower() == b"bearer " else (_header(scope, b"x-api-key") or b"")
        return hmac.compare_digest(token, self.key)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [0]

        async def logged_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self._guarded(scope, receive, logged_send)
        finally:
            self._log(scope, status[0] or 499, (time.perf_counter() - started) * 1000)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._authorized(scope):
            await send_error(
                send,
                APIError(
                    401,
                    "missing or wrong API key",
                    type="invalid_request_error",
                    code="invalid_api_key",
                    headers={"WWW-Authenticate": "Bearer"},
                ),
            )
            return
        length = _header(scope, b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await send_error(send, self._too_large())
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_body:
                raise BodyTooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except BodyTooLarge:
            await send_error(send, self._too_large())

    def _too_large(self) -> APIError:
        return APIError(413, f"request body over {self.max_body // (1024 * 1024)} MiB", code="request_too_large")

    def _log(self, scope: Scope, status: int, ms: float) -> None:
        """METHOD path status model tokens-in/out ms, one line per request (routes fill ``scope["state"]``)."""
        state = scope.get("state") or {}
        model = state.get("model") or "-"
        tokens = f"{state['tokens_in']}/{state['tokens_out']}" if "tokens_in" in state else "-"
        access_log.info("%s %s %d %s %s %.0fms", scope.get("method"), scope.get("path"), status, model, tokens, ms)


class Slots:
    """``--parallel`` requests generate (or wait for their model) at once; ``queue`` more may wait for a slot;
    past that a request gets 429 with Retry-After at once instead of an unbounded wait.

    A model with a ``batch.Batcher`` decodes up to ``parallel`` admitted requests together; one served with a
    single slot lets them take turns in arrival order (the model's lock). Either way a client that disconnects
    gives its slot back as soon as its current token is done."""

    def __init__(self, parallel: int, queue: int) -> None:
        self.parallel = max(1, parallel)
        self.capacity = self.parallel + max(0, queue)
        self._sem = asyncio.Semaphore(self.parallel)
        self.held = 0  # admitted: generating or waiting for a slot

    async def acquire(self) -> None:
        if self.held >= self.capacity:
            raise APIError(
                429,
                f"server busy: {self.held} requests in progress or queued; retry shortly",
                type="rate_limit_error",
                code="server_busy",
                headers={"Retry-After": "1"},
            )
        self.held += 1
        try:
            await self._sem.acquire()
        except BaseException:
            self.held -= 1
            raise

    def release(self) -> None:
        self.held -= 1
        self._sem.release()
