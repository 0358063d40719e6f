"""The models a running server holds: chat engines, embedding instances and the transcriber, loaded on demand.

A request names a model by catalog id or by the aliases ``models use`` knows (a family alone picks its
installed variant). The first request for it loads it (in a helper thread; llama.cpp's own load still runs on
the llama thread); later ones reuse it. At most ``max_loaded`` chat models stay loaded: loading another
unloads the least recently used idle one. A model idle past its ``keep_alive`` (default 5 minutes, as Ollama)
is unloaded by ``reap``. ``--models`` limits which ids may be served at all. With ``parallel`` above one, a
chat model gets a ``batch.Batcher`` with as many slots as memory holds (up to ``parallel``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import AssistantError, one_line
from .errors import APIError, from_domain, not_found_model

if TYPE_CHECKING:
    from ..config import Settings
    from ..engine import LlamaEngine
    from ..speech import Transcriber
    from ..store import Installed
    from .batch import Batcher

log = logging.getLogger("assistant.serve")

DEFAULT_KEEP_ALIVE_S = 300.0
# An embedding request is a few short texts: a small context keeps the second instance's KV cache tiny.
EMBED_CTX = 2048
MAX_NAMES = 64  # names ``ModelPool.resolve`` remembers (a client sending many spellings only costs lookups)


@dataclass
class Loaded:
    """A loaded chat model and what /api/ps reports about it."""

    installed: Installed
    engine: LlamaEngine
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    keep_alive_s: float = DEFAULT_KEEP_ALIVE_S
    last_used: float = field(default_factory=time.time)
    busy: int = 0  # requests holding it (waiting or generating): never unloaded under them
    batcher: Batcher | None = None  # None: one request at a time, through ``lock``

    def close(self) -> None:
        """Free it (from a helper thread): the batch context first, as it lives on the engine's weights."""
        if self.batcher is not None:
            self.batcher.close()
        self.engine.close()

    @property
    def expires_at(self) -> float:
        return self.last_used + self.keep_alive_s

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.installed.id,
            "size_bytes": self.installed.size_bytes,
            "memory_bytes": self.engine.estimate.total,
            "context": self.engine.context_size,
            "parallel": self.batcher.n_slots if self.batcher is not None else 1,
            "idle_s": 0.0 if self.busy else max(0.0, time.time() - self.last_used),
            "expires_at": self.expires_at,
        }


def keep_alive_seconds(value: float | str | None) -> float:
    """Ollama's ``keep_alive``: seconds as a number, or a duration such as "5m", "1h", "30s"; negative = forever."""
    if value is None or value == "":
        return DEFAULT_KEEP_ALIVE_S
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
        text = value.strip().lower()
        unit = next((u for u in ("ms", "s", "m", "h") if text.endswith(u)), "")
        try:
            seconds = float(text[: len(text) - len(unit)] if unit else text) * units.get(unit, 1.0)
        except ValueError:
            raise APIError(400, f"keep_alive: not a duration: {value!r}", param="keep_alive") from None
    return float("inf") if seconds < 0 else seconds


class ModelPool:
    """See the module docstring. Its methods run on the event loop; the loads run in helper threads."""

    def __init__(
        self, settings: Settings, allowed: list[str] | None = None, *, max_loaded: int = 2, parallel: int = 1
    ) -> None:
        self.settings = settings
        self.allowed = allowed
        self.max_loaded = max(1, max_loaded)
        self.parallel = max(1, parallel)
        self.chat: dict[str, Loaded] = {}
        self._embedders: dict[str, Any] = {}
        self._transcriber: Transcriber | None = None
        self._transcriber_lock = threading.Lock()
        self._loading = asyncio.Lock()
        self._names: dict[str, Installed] = {}  # the names requests used for models now loaded (``resolve``)

    # -- which models ------------------------------------------------------------------------------
    def installed(self, kind: str | None = None) -> list[Installed]:
        """Installed models this server may serve (``--models`` filters)."""
        from ..store import Store

        store = Store()
        try:
            items = [m for m in store.list(kind) if m.present]
        finally:
            store.conn.close()
        return [m for m in items if self.allowed is None or m.id in self.allowed]

    def resolve(self, model: str, kind: str = "llm") -> Installed:
        """The installed model a request names, or a 404 that says how to install it.

        A name already resolved to a model that is loaded now skips the model store: opening it and checking the
        file costs the event loop about 2 ms a request, which every running stream waits out. Other names (and
        every name once its model is unloaded) are looked up again."""
        item = self._names.get(model)
        if item is None or item.id not in self.chat:
            item = self._lookup(model)
            if len(self._names) >= MAX_NAMES:
                self._names.clear()
            self._names[model] = item
        if self.allowed is not None and item.id not in self.allowed:
            raise not_found_model(model, f"model '{item.id}' is not served here (see --models)")
        if item.kind != kind:
            what = "a chat model" if kind == "llm" else "a speech model"
            raise APIError(400, f"model '{item.id}' is a {item.kind} model, not {what}", param="model")
        return item

    @staticmethod
    def _lookup(model: str) -> Installed:
        from ..store import Store

        store = Store()
        try:
            return store.require(model)
        except AssistantError as exc:
            raise not_found_model(model, one_line(exc)) from None
        finally:
            store.conn.close()

    # -- chat engines ------------------------------------------------------------------------------
    async def engine(self, model: str, keep_alive: float | str | None = None) -> Loaded:
        """The loaded model (loading it if needed), marked busy: the caller must call ``release``."""
        item = self.resolve(model)
        async with self._loading:
            loaded = self.chat.get(item.id)
            if loaded is None:
                self._make_room()
                engine, batcher = await asyncio.to_thread(self._load, item)
                loaded = self.chat[item.id] = Loaded(item, engine, batcher=batcher)
            loaded.busy += 1
            loaded.keep_alive_s = keep_alive_seconds(keep_alive)
            loaded.last_used = time.time()
            return loaded

    def release(self, loaded: Loaded) -> None:
        loaded.busy -= 1
        loaded.last_used = time.time()
        if loaded.keep_alive_s == 0:
            self.reap()

    def _load(self, item: Installed) -> tuple[LlamaEngine, Batcher | None]:
        engine = self._load_engine(item)
        return engine, self._batcher(engine)

    def _batcher(self, engine: LlamaEngine) -> Batcher | None:
        """A batch context with the slots memory holds; none (one request at a time) if that is one, or if
        llama.cpp cannot make one (then the model still serves, as with ``--parallel 1``)."""
        from .batch import Batcher, fitting_slots

        slots = fitting_slots(engine, self.parallel) if self.parallel > 1 else 1
        if slots < 2:
            return None
        try:
            return Batcher(engine, slots)
        except (ValueError, RuntimeError) as exc:
            log.warning("%s: no batching (%s); serving one request at a time", engine.model_id, one_line(exc))
            return None

    def _load_engine(self, item: Installed) -> LlamaEngine:
        from ..engine import LlamaEngine

        runtime = self.settings.runtime
        try:
            return LlamaEngine(
                item,
                n_ctx=runtime.context_size,
                n_threads=self.settings.threads(),
                n_batch=runtime.batch_size,
                model_id=item.id,
                speculative=runtime.speculative,  # prompt lookup; a draft model is for the CLI and TUI only
            )
        except AssistantError as exc:
            raise from_domain(exc, item.id) from None

    def _make_room(self) -> None:
        while len(self.chat) >= self.max_loaded:
            idle = [m for m in self.chat.values() if not m.busy]
            if not idle:
                raise APIError(
                    503,
                    f"{len(self.chat)} models are loaded and all are busy; try again shortly",
                    type="server_error",
                    code="model_busy",
                    headers={"Retry-After": "5"},
                )
            self._unload(min(idle, key=lambda m: m.last_used))

    def _unload(self, loaded: Loaded) -> None:
        """Forget it now (on the event loop, so no request picks it up again); free it in a helper thread, as
        llama.cpp's free takes a moment and the event loop must not wait on the llama thread."""
        self.chat.pop(loaded.installed.id, None)
        asyncio.get_running_loop().run_in_executor(None, loaded.close)

    def reap(self, now: float | None = None) -> list[str]:
        """Unload idle models past their keep_alive; returns their ids. Runs on the event loop."""
        now = time.time() if now is None else now
        gone = [m for m in self.chat.values() if not m.busy and now >= m.expires_at]
        for loaded in gone:
            self._unload(loaded)
        return [m.installed.id for m in gone]

    # -- embeddings --------------------------------------------------------------------------------
    async def embed(self, model: str, texts: list[str]) -> tuple[list[list[float]], int]:
        """Unit-length embeddings of ``texts`` (mean-pooled), and the tokens they took."""
        item = self.resolve(model)
        async with self._loading:
            llm = self._embedders.get(item.id)
            if llm is None:
                llm = self._embedders[item.id] = await asyncio.to_thread(self._load_embedder, item)
        from ..llama import llama_thread

        return await asyncio.to_thread(llama_thread.call, _embed, llm, texts)

    def _load_embedder(self, item: Installed) -> Any:
        """A second ``Llama`` over the same file in embedding mode (a chat context cannot also pool)."""
        import llama_cpp

        from ..engine import check_fit
        from ..gguf import read
        from ..llama import llama_thread

        check_fit(read(item.path), EMBED_CTX, EMBED_CTX, item.id)
        return llama_thread.call(
            llama_cpp.Llama,
            str(item.path),
            embedding=True,
            n_ctx=EMBED_CTX,
            n_batch=EMBED_CTX,
            n_ubatch=EMBED_CTX,
            n_threads=self.settings.threads(),
            pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
            verbose=False,
        )

    # -- speech --------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def transcribing(self, model: str | None) -> Iterator[Transcriber]:
        """The Whisper model, held for one transcription (it is not safe from two threads at once); loaded with
        ``assistant transcribe``'s loader and options, one model at a time. Call from a helper thread."""
        from ..speech import Transcriber

        wanted = self.resolve(model or self.settings.models.speech, "whisper").id
        with self._transcriber_lock:
            if self._transcriber is None or self._transcriber.model_id != wanted:
                if self._transcriber is not None:
                    self._transcriber.close()
                    self._transcriber = None
                self._transcriber = Transcriber.from_settings(wanted, self.settings)
            yield self._transcriber

    def close(self) -> None:
        """Free everything (from a helper thread, at shutdown, once no request is left)."""
        loaded, self.chat = list(self.chat.values()), {}
        for item in loaded:
            item.close()
        from ..llama import llama_thread

        for llm in self._embedders.values():
            with contextlib.suppress(Exception):
                llama_thread.call(llm.close)
        self._embedders.clear()
        if self._transcriber is not None:
            self._transcriber.close()
            self._transcriber = None


def _embed(llm: Any, texts: list[str]) -> tuple[list[list[float]], int]:
    """On the llama thread: embed each text, normalized to unit length (OpenAI's embeddings are)."""
    import numpy as np

    n_ctx = llm.n_ctx()
    counts = [len(llm.tokenize(t.encode("utf-8"), add_bos=True, special=False)) for t in texts]
    if max(counts, default=0) > n_ctx:
        raise APIError(400, f"an input is {max(counts)} tokens, at most {n_ctx} can be embedded", param="input")
    vectors = []
    for text in texts:
        vector = np.asarray(llm.embed(text), dtype=np.float32)
        norm = float(np.linalg.norm(vector))
        vectors.append((vector / norm if norm else vector).tolist())
    return vectors, sum(counts)
