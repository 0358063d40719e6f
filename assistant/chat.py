"""The chat interface every front (CLI, TUI, bench, binary) talks to.

``ChatEngine.stream(messages, options)`` yields ``Chunk``s: pieces of text as they are generated, then
a final chunk carrying ``Stats``. Implementations: ``assistant.engine.LlamaEngine`` (llama.cpp) and, for UI
tests only, scripted fakes. Nothing here imports llama_cpp or textual.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["system", "user", "assistant"]


@dataclass
class Message:
    role: Role
    content: str


class ChatOptions(BaseModel):
    """Per-chat sampling settings. Unknown keys are an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(default=0.7, ge=0.0, le=5.0)
    top_p: float = Field(default=0.95, gt=0.0, le=1.0)
    max_tokens: int = Field(default=512, ge=1)
    seed: int | None = None


@dataclass
class Stats:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft_ms: float = 0.0
    tokens_per_second: float = 0.0
    total_ms: float = 0.0
    cached_tokens: int = 0  # prompt tokens reused from the KV cache
    dropped_messages: int = 0  # oldest turns dropped to fit the context
    finish_reason: Literal["stop", "length", "cancelled"] = "stop"
    completion_mode: bool = False  # the model has no chat template: plain text completion
    drafted_tokens: int = 0  # speculative decoding: tokens guessed ahead and checked in batches
    accepted_tokens: int = 0  # ... and those the model agreed with (each one a decode step saved)
    plain_tokens_per_second: float = 0.0  # with speculation: the speed of this reply's one-token steps

    @property
    def speed_up(self) -> float | None:
        """Speculation's gain on this reply: its speed over that of its own plain steps (None: no figure)."""
        if not self.drafted_tokens or not self.plain_tokens_per_second:
            return None
        return self.tokens_per_second / self.plain_tokens_per_second


@dataclass
class Chunk:
    """A streamed piece of reply text; the last chunk has ``stats`` set (and may have empty text)."""

    text: str = ""
    stats: Stats | None = None
    notice: str | None = None  # e.g. "history trimmed: 4 oldest messages dropped", "completion mode"
    prompt_tokens: int | None = None  # sent once, before the reply: the tokens its prompt takes (a context meter)


@dataclass
class CancelToken:
    """Set from any thread (Esc, Ctrl+C) to stop generation after the current token."""

    _event: threading.Event = field(default_factory=threading.Event)

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


class ChatEngine(Protocol):
    """What a chat needs from a model. An engine whose calls must all come from one thread (llama.cpp)
    may also offer ``on_engine_thread(fn)``, which runs ``fn`` there and returns its result; ``Turn.run``
    uses it to keep a whole reply on that thread."""

    model_id: str

    @property
    def context_size(self) -> int: ...

    def stream(
        self, messages: list[Message], options: ChatOptions, cancel: CancelToken | None = None
    ) -> Iterator[Chunk]: ...

    def count_tokens(self, messages: list[Message]) -> int: ...

    def close(self) -> None: ...
