"""Streaming a reply without slowing the model that writes it: batched updates, paced by their cost.

Each ``ReplyStreamed`` costs the UI thread a Markdown append, a layout and a paint (5-10 ms with Textual,
more as a reply grows). When the model's threads take every core, that CPU comes straight out of
generation: on a 2-core laptop each 1 % of a core the UI uses costs about 1-2 % of tok/s. So the pace
adapts: ``StreamPacer`` measures the UI thread's CPU per update and spaces the next one so updates use at
most ``STREAM_CPU_SHARE_BUSY`` of a core (``STREAM_CPU_SHARE_SPARE`` when a core is left over for the UI),
never more often than ``STREAM_INTERVAL_MIN`` (10 a second reads as smooth) nor rarer than ``_MAX``.
``ReplyPump`` batches the engine's chunks to that pace; ``QuietStreaming`` and ``GcFreeze`` keep the
interpreter's own pauses (GIL hand-offs, garbage collections) out of the stream.
"""

from __future__ import annotations

import gc
import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .messages import ReplyStreamed

if TYPE_CHECKING:
    from textual.message import Message
    from textual.worker import Worker

    from ..chat import CancelToken, Chunk, Stats
    from ..tts import Speaker

STREAM_INTERVAL_MIN = 0.1
STREAM_INTERVAL_MAX = 0.5
STREAM_CPU_SHARE_BUSY = 0.02
STREAM_CPU_SHARE_SPARE = 0.25
# While a reply streams, the generation thread re-takes the GIL after every llama.cpp call; with
# CPython's default 5 ms switch interval a busy UI thread can hold it that long each time. 1 ms bounds it.
GIL_SWITCH_INTERVAL = 0.001


def stream_cpu_share(model_threads: int) -> float:
    """The share of a core streaming repaints may use: small when the model's threads take every core."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return STREAM_CPU_SHARE_BUSY if model_threads >= cores else STREAM_CPU_SHARE_SPARE


class StreamPacer:
    """The interval between streamed updates, from what the last one cost the UI thread.

    ``interval`` is read by the reply's thread (``ReplyPump``) and set on the UI thread (``pace``)."""

    def __init__(self) -> None:
        self.interval = STREAM_INTERVAL_MIN
        self.share = STREAM_CPU_SHARE_BUSY  # set from the thread count once the settings are read
        self._cpu: float | None = None

    def restart(self) -> None:
        """A new reply: the pace carries over from the last one, but its first update goes at once."""
        self._cpu = None

    def pace(self) -> None:
        """Space the next update by what the UI thread spent since the last one (see the module doc)."""
        cpu = time.thread_time()  # this thread's CPU: the last update's append, layout and paint, and the rest
        if self._cpu is not None:
            wanted = (cpu - self._cpu) / self.share
            self.interval = min(STREAM_INTERVAL_MAX, max(STREAM_INTERVAL_MIN, wanted))
        self._cpu = cpu


class ReplyPump:
    """Takes a reply's chunks on the engine's thread (``Backend.reply``) and posts them as ``ReplyStreamed``
    batches, at most every ``pacer.interval`` seconds. Never blocks: the model is waiting on it."""

    def __init__(
        self,
        post: Callable[[Message], object],
        pacer: StreamPacer,
        worker: Worker[Any],
        cancel: CancelToken,
        speaker: Speaker | None,
    ) -> None:
        self.post = post
        self.pacer = pacer
        self.worker = worker
        self.cancel = cancel
        self.speaker = speaker
        self.parts: list[str] = []
        self.stats: Stats | None = None
        self._buffer: list[str] = []
        self._notices: list[str] = []
        self._tokens = 0
        self._prompt_tokens: int | None = None
        self._first = self._last_post = 0.0

    def __call__(self, chunk: Chunk) -> None:
        if self.worker.is_cancelled:
            self.cancel.cancel()  # keep going: the session finishes and stores the partial reply
        if chunk.notice:
            self._notices.append(chunk.notice)
        if chunk.prompt_tokens is not None:
            self._prompt_tokens = chunk.prompt_tokens
        if chunk.text:
            now = time.perf_counter()
            if not self._tokens:
                self._first, self._last_post = now, now - STREAM_INTERVAL_MAX  # the first text goes at once
            self._tokens += 1
            self._buffer.append(chunk.text)
            self.parts.append(chunk.text)
            if self.speaker is not None:
                self.speaker.feed(chunk.text)
            if now - self._last_post >= self.pacer.interval:
                self.flush(now)
        if chunk.stats is not None:
            self.stats = chunk.stats

    def flush(self, now: float | None = None) -> None:
        """Post what has not been posted yet."""
        if self._buffer or self._notices:
            now = time.perf_counter() if now is None else now
            elapsed = now - self._first if self._tokens else 0.0
            self.post(ReplyStreamed("".join(self._buffer), self._notices, self._tokens, elapsed, self._prompt_tokens))
            self._buffer, self._notices, self._last_post = [], [], now


class QuietStreaming:
    """What a streaming reply asks of the interpreter, undone when it ends: a short GIL switch interval
    (see GIL_SWITCH_INTERVAL) and no garbage collection. A full collection of a Textual app takes 40-70 ms:
    a stall of the keys and of generation. None runs while a reply streams (the little cyclic garbage
    waits); one may run after."""

    def __init__(self) -> None:
        self.active = False
        self._switch_interval = sys.getswitchinterval()
        self._gc_was_enabled = True

    def start(self) -> None:
        if self.active:
            return
        self.active = True
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(self._switch_interval, GIL_SWITCH_INTERVAL))
        self._gc_was_enabled = gc.isenabled()
        gc.disable()

    def stop(self) -> None:
        if not self.active:
            return
        self.active = False
        sys.setswitchinterval(self._switch_interval)
        if self._gc_was_enabled:
            gc.enable()


class GcFreeze:
    """Everything loaded by the time the first model is ready lives as long as the app: kept out of every
    later collection, which makes each one several times shorter. No collection first: it would stall the
    screen as long as the ones this shortens; the little startup garbage is simply frozen too."""

    def __init__(self) -> None:
        self.frozen = False

    def freeze(self) -> None:
        if not self.frozen:
            self.frozen = True
            gc.freeze()

    def unfreeze(self) -> None:
        """The process may go on (tests, embedding): its objects are collectable again."""
        if self.frozen:
            self.frozen = False
            gc.unfreeze()
