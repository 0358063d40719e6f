"""What every use of llama.cpp in a process shares: the one thread that calls it, and its one log callback.

The chat engine, the LLM benchmark's child process and the quantizer's child process all go through here,
so llama.cpp is only ever called from one thread per process and its log goes to one place.
"""

from __future__ import annotations

import ctypes
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

LogSink = Callable[[int, str], None]
"""Receives each piece of llama.cpp's log: the ggml level and the text as logged (often without a newline)."""

# ggml's log levels as they reach the callback (llama-cpp-python's own mapping is outdated: see log_to).
_LEVELS = {1: logging.DEBUG, 2: logging.INFO, 3: logging.WARNING, 4: logging.ERROR}


class LlamaThread:
    """The one thread that calls into llama.cpp in this process.

    llama.cpp is built with OpenMP here, and OpenMP keeps a team of worker threads per *calling* thread. When
    a second thread calls in (the TUI loads a model in one worker and replies in another; a benchmark runs
    its baseline on the main thread), two teams spin against each other for the same cores: on 2 cores
    SmolLM2 drops from ~170 to ~106 tok/s. So every llama.cpp call — load, generate, free — runs here, and
    replies reach the caller's thread through a queue (a few microseconds a token).
    """

    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None
        self._ident: int | None = None
        self._guard = threading.Lock()
        self._queued = 0  # submitted, not started yet (see waiting)

    def _pool(self) -> ThreadPoolExecutor:
        with self._guard:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llama")
                self._ident = self._executor.submit(threading.get_ident).result()
            return self._executor

    def on_thread(self) -> bool:
        return self._ident is not None and threading.get_ident() == self._ident

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn`` on the llama thread and return its result (or raise its exception)."""
        if self.on_thread():
            return fn(*args, **kwargs)
        return self._submit(fn, *args, **kwargs).result()

    def waiting(self) -> bool:
        """Is other work queued for the llama thread? A loop that runs there for long (continuous batching)
        checks between its steps and returns, so a model load or an embedding is not held up behind it."""
        return self._queued > 0

    def _submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
        pool = self._pool()
        with self._guard:
            self._queued += 1

        def run() -> T:
            with self._guard:
                self._queued -= 1
            return fn(*args, **kwargs)

        return pool.submit(run)

    def iterate(self, make: Callable[[], Iterator[T]]) -> Iterator[T]:
        """Run the iterator ``make()`` on the llama thread, yielding its items here as they come.

        If the consumer stops early (closes the generator, or an exception such as KeyboardInterrupt
        unwinds it), the producer closes its iterator after the current item, so its cleanup runs."""
        if self.on_thread():
            yield from make()
            return
        items: queue.SimpleQueue[tuple[int, Any]] = queue.SimpleQueue()
        abandoned = threading.Event()

        def produce() -> None:
            source = make()
            try:
                for item in source:
                    items.put((_ITEM, item))
                    if abandoned.is_set():
                        break
            except BaseException as exc:
                items.put((_ERROR, exc))
                return
            finally:
                close = getattr(source, "close", None)
                if close is not None:
                    close()
            items.put((_DONE, None))

        self._submit(produce)
        try:
            while True:
                kind, value = items.get()
                if kind == _ITEM:
                    yield value
                elif kind == _ERROR:
                    raise value
                else:
                    return
        finally:
            abandoned.set()


_ITEM, _ERROR, _DONE = 0, 1, 2
llama_thread = LlamaThread()


def _to_logging(level: int, text: str) -> None:
    """The default sink: the ``assistant.llama_cpp`` logger, one record per piece, at ggml's own level."""
    py_level = _LEVELS.get(level, logging.DEBUG)
    if _logger.isEnabledFor(py_level):
        _logger.log(py_level, text.rstrip())


_logger = logging.getLogger("assistant.llama_cpp")
_logger.addHandler(logging.NullHandler())  # no handler configured must not mean "print to stderr"
_sink: LogSink = _to_logging
_callback: Any = None  # the installed ctypes callback, kept alive for the life of the process


def _leave_stdio_alone(self: Any, disable: bool = True) -> None:
    """Stands in for ``llama_cpp._utils.suppress_stdout_stderr.__init__``: always disabled (see log_to)."""
    self.disable = True


def log_to(sink: LogSink | None = None) -> None:
    """Route llama.cpp's log to ``sink`` (given), or else wherever it already goes (at first: ``logging``).

    Installs the process's one llama.cpp log callback the first time. Without it llama.cpp writes to stderr,
    and llama-cpp-python's own callback maps ggml's log levels with an outdated enum (WARN arrives as
    ERROR), so even with ``verbose=False`` warnings such as "using full-size SWA cache" would land on the
    user's terminal. A child process that parses the log (quantize, the LLM benchmark) passes its own sink.

    With ``verbose=False`` llama-cpp-python also silences stderr its own way while a model loads: it
    ``dup2()``s /dev/null over file descriptors 1 and 2, for the whole process, from the loading thread.
    Whatever another thread writes there meanwhile is lost: the TUI's screen (Textual paints to fd 2), so
    what it painted during a load (a command palette closing, a chat opening) never reached the terminal and
    stayed stale until a full repaint -- a screen that looked frozen (issue 11). With this callback nothing
    of llama.cpp's needs that, so it is switched off here.
    """
    global _sink, _callback
    if sink is not None:
        _sink = sink
    if _callback is not None:
        return
    import llama_cpp
    from llama_cpp import _utils

    _utils.suppress_stdout_stderr.__init__ = _leave_stdio_alone  # type: ignore[method-assign]

    @llama_cpp.llama_log_callback  # type: ignore[untyped-decorator,misc]
    def callback(level: int, text: bytes | None, user_data: ctypes.c_void_p) -> None:
        _sink(level, text.decode("utf-8", "replace") if text else "")

    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
    _callback = callback


class Greedy:
    """Greedy decoding's draw (temperature 0, no grammar, nothing banned): the first highest logit, as
    llama.cpp's greedy sampler picks it, read in place with numpy. llama.cpp's sampler chain copies the whole
    vocabulary into a candidate array first, which for Gemma's 262,144 tokens costs 0.6 ms a draw against
    0.15 ms here; a speculative step draws once per verified position. Same interface as
    ``llama_cpp._internals.LlamaSampler`` where the engine uses it (``sample``, ``accept``, ``close``)."""

    def __init__(self, n_vocab: int) -> None:
        import llama_cpp
        import numpy as np

        self.n_vocab = n_vocab
        self._logits = llama_cpp.llama_get_logits_ith  # looked up once, not at every token
        self._argmax, self._view = np.argmax, np.ctypeslib.as_array

    def sample(self, ctx: Any, idx: int = -1) -> int:
        return int(self._argmax(self._view(self._logits(ctx.ctx, idx), shape=(self.n_vocab,))))

    def accept(self, token: int) -> None:
        """Greedy keeps no state (llama.cpp's greedy sampler's accept does nothing either)."""

    def close(self) -> None:
        pass


def chunk_length(left: int, size: int) -> int:
    """How many of the ``left`` prompt tokens to evaluate in the next batch: at most ``size``, and never so many
    that one token is left for a batch of its own (unless one is all there is). llama.cpp's CPU backend
    multiplies a single row with another kernel than two or more (its sgemm, for Q8_0, Q5_0, Q4_0 and F16
    weights, runs from two rows), so a prompt read in other chunks, or its last token alone when the rest is
    cached, gives slightly different logits, and at a near-tie another greedy reply."""
    take = min(size, left)
    if left - take == 1 and take > 2:
        take -= 1  # leave two for the last batch
    return take
