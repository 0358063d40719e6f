"""The server's app factory: routes, guards, error handlers, and the models' lifetime.

``create_app(ServerConfig(...))`` gives a FastAPI app; ``assistant serve`` runs it under uvicorn. The lifespan
owns the model pool (unloaded on shutdown, after running replies are cancelled by uvicorn closing their
streams), a reaper that unloads models idle past their keep_alive, and the state file ``assistant ps`` reads
to find a running server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ..errors import AssistantError, one_line
from . import audio_routes, ollama_routes, openai_routes
from .batch import auto_parallel
from .errors import APIError, from_domain
from .guards import Guard, Slots
from .pool import ModelPool
from .reply import Server
from .saving import Saver

if TYPE_CHECKING:
    from ..config import Settings

# 25 MiB: OpenAI's own limit for an audio upload, and far more than any chat request needs.
MAX_BODY = 25 * 1024 * 1024
REAP_EVERY_S = 5.0


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 11435
    api_key: str | None = None
    models: list[str] | None = None  # ids that may be served (None: every installed model)
    parallel: int | None = None  # requests a model serves at once (None: ``batch.auto_parallel``)
    queue: int = 8
    max_body: int = MAX_BODY
    max_loaded: int = 2
    settings: Settings | None = None  # None: config.toml's (a benchmark passes its own threads and context)
    timeout_s: float | None = 600.0  # --timeout: the longest a reply may generate (None: no limit)
    save: bool = False  # --save: API conversations are stored in the chat history
    cors: tuple[str, ...] = ()  # browser origins allowed to call the API (none: CORS off, as by default)


def state_file() -> Path:
    """Where a running server says where it listens (``assistant ps`` reads it)."""
    from .. import paths

    return paths.data_dir() / "server.json"


def create_app(config: ServerConfig) -> Any:
    """The ASGI app: FastAPI wrapped in ``Guard`` (API key, body limit, access log), and with ``--cors`` in
    Starlette's CORS middleware outside that: a browser's preflight (an OPTIONS request that never carries the
    key) is answered for the named origins only, and every real request still passes the key check."""
    from .. import config as settings_module

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings = config.settings or settings_module.load()
        parallel = config.parallel or auto_parallel()
        pool = ModelPool(settings, config.models, max_loaded=config.max_loaded, parallel=parallel)
        saver = Saver() if config.save else None
        app.state.server = Server(
            pool, Slots(parallel, config.queue), settings, {}, saver=saver, timeout_s=config.timeout_s
        )
        reaper = asyncio.create_task(_reap(pool))
        _write_state(config)
        try:
            yield
        finally:
            reaper.cancel()
            _remove_state()
            await asyncio.to_thread(pool.close)
            if saver is not None:
                saver.close()

    app = FastAPI(title="assistant", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(openai_routes.router)
    app.include_router(audio_routes.router)
    app.include_router(ollama_routes.router)
    app.add_api_route("/", _root, methods=["GET", "HEAD"])
    app.add_api_route("/health", _health, methods=["GET"])
    _install_handlers(app)
    guarded = Guard(app, api_key=config.api_key, max_body=config.max_body)
    if not config.cors:
        return guarded
    from starlette.middleware.cors import CORSMiddleware

    return CORSMiddleware(
        guarded,
        allow_origins=list(config.cors),
        allow_methods=["GET", "POST", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type"],
        max_age=600,
    )


# Seconds uvicorn waits for open responses on Ctrl+C; running replies were told to stop first, so this is only
# for a stream whose client has stopped reading.
GRACEFUL_S = 2


def run(config: ServerConfig) -> bool:
    """Serve until Ctrl+C (or SIGTERM); returns whether the server ever listened. On the signal, every running
    reply is cancelled at once (it ends after its current token, its stream closed properly), then uvicorn
    finishes the open responses and the lifespan unloads the models."""
    import uvicorn

    app = create_app(config)

    class _Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            server = getattr(app.app.state, "server", None)
            if server is not None:
                server.cancel_all()
            super().handle_exit(sig, frame)

    server = _Server(
        uvicorn.Config(
            app,
            host=config.host,
            port=config.port,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=GRACEFUL_S,
            server_header=False,
        )
    )
    try:
        server.run()
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl+C it handled; for a server it is the normal way out
        pass
    return bool(server.started)


async def _root() -> Any:
    from fastapi.responses import PlainTextResponse

    return PlainTextResponse("assistant is running")  # Ollama's reply here; clients probe it


async def _health(request: Request) -> dict[str, Any]:
    server = Server.of(request)
    return {
        "status": "ok",
        "loaded": list(server.pool.chat),
        "in_flight": server.slots.held,
        "generated": server.counters.get("generated", 0),
        "batch": _batch_health(server),
    }


def _batch_health(server: Server) -> dict[str, int]:
    """What the loaded models' batchers are doing: slots, sequences decoding now, the most one step has
    carried, tokens drawn so far (the tests watch these, never the clock)."""
    batchers = [m.batcher for m in server.pool.chat.values() if m.batcher is not None]
    return {
        "slots": sum(b.n_slots for b in batchers),
        "active": sum(b.active for b in batchers),
        "peak": max((b.peak for b in batchers), default=0),
        "generated": sum(b.generated for b in batchers),
        "joined": sum(b.joined for b in batchers),
        "drafted": sum(b.drafted for b in batchers),
        "accepted": sum(b.accepted for b in batchers),
    }


async def _reap(pool: ModelPool) -> None:
    while True:
        await asyncio.sleep(REAP_EVERY_S)
        pool.reap()


def _write_state(config: ServerConfig) -> None:
    from .. import paths

    host = f"[{config.host}]" if ":" in config.host else config.host
    doc = {"url": f"http://{host}:{config.port}", "pid": os.getpid(), "started": time.time()}
    with contextlib.suppress(AssistantError, OSError):
        paths.ensure(state_file().parent)
        paths.write_text_atomic(state_file(), json.dumps(doc))


def _remove_state() -> None:
    with contextlib.suppress(OSError):
        path = state_file()
        if json.loads(path.read_text(encoding="utf-8")).get("pid") == os.getpid():
            path.unlink()


def _error(request: Request, error: APIError) -> JSONResponse:
    # Ollama's clients read {"error": "message"}; everything else gets OpenAI's object.
    body: dict[str, Any] = {"error": error.message} if request.url.path.startswith("/api/") else error.body()
    return JSONResponse(body, status_code=error.status, headers=error.headers)


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    first = exc.errors()[0] if exc.errors() else {}
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    if first.get("type") == "json_invalid":
        return f"the body is not valid JSON: {first.get('ctx', {}).get('error', 'parse error')}", None
    param = ".".join(loc) or None
    msg = str(first.get("msg", "invalid request")).removeprefix("Value error, ")
    return (f"{param}: {msg}" if param else msg), param


def _install_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def api_error(request: Request, exc: APIError) -> JSONResponse:
        return _error(request, exc)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = _validation_message(exc)
        return _error(request, APIError(400, message, param=param))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        kind = "not_found" if exc.status_code == 404 else None
        return _error(request, APIError(exc.status_code, str(exc.detail), code=kind, headers=dict(exc.headers or {})))

    @app.exception_handler(AssistantError)
    async def domain(request: Request, exc: AssistantError) -> JSONResponse:
        return _error(request, from_domain(exc))

    @app.exception_handler(Exception)
    async def crash(request: Request, exc: Exception) -> JSONResponse:
        import logging

        logging.getLogger("assistant.serve").exception("unhandled error on %s", request.url.path)
        return _error(request, APIError(500, one_line(exc, typed=True), type="server_error"))
