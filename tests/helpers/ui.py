"""Test helpers for the TUI: a scripted chat engine (like simonw/llm's MockModel.enqueue) and wait_until.

The scripted engine is for UI tests only; integration tests use the real model through the real engine.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textual.app import App
from textual.pilot import Pilot

from assistant.chat import CancelToken, ChatOptions, Chunk, Message, Stats

FAKE_MODEL = "smollm2-135m-instruct:q4_1"


@dataclass
class Script:
    chunks: list[str]
    notices: list[str] = field(default_factory=list)
    hold_after: int | None = None  # after this many chunks, wait until cancelled (a reply that never ends)
    stats: Stats | None = None


class ScriptedEngine:
    """Replies with what was enqueued, in order. ``hold_after`` simulates a long reply to cancel."""

    def __init__(self, model_id: str = FAKE_MODEL, context_size: int = 2048) -> None:
        self.model_id = model_id
        self._context_size = context_size
        self.scripts: list[Script] = []
        self.seen: list[list[Message]] = []
        self.options_seen: list[ChatOptions] = []
        self.holding = threading.Event()  # set while a held reply waits for cancel
        self.closed = False

    def enqueue(
        self, *chunks: str, notices: list[str] | None = None, hold_after: int | None = None, stats: Stats | None = None
    ) -> None:
        """``stats``: the reply's figures instead of the usual ones (42 tok/s; the tokens sent)."""
        self.scripts.append(Script(list(chunks), notices or [], hold_after, stats))

    @property
    def context_size(self) -> int:
        return self._context_size

    def count_tokens(self, messages: list[Message]) -> int:
        return sum(len(m.content.split()) + 4 for m in messages)

    def stream(
        self, messages: list[Message], options: ChatOptions, cancel: CancelToken | None = None
    ) -> Iterator[Chunk]:
        self.seen.append(list(messages))
        self.options_seen.append(options)
        script = self.scripts.pop(0) if self.scripts else Script(["(no reply scripted)"])
        for notice in script.notices:
            yield Chunk(notice=notice)
        yield Chunk(prompt_tokens=self.count_tokens(messages))  # as LlamaEngine: the prompt's size, before the reply
        sent = 0
        finish = "stop"
        for i, text in enumerate(script.chunks):
            if script.hold_after is not None and i >= script.hold_after:
                self.holding.set()
                while cancel is not None and not cancel.cancelled:
                    cancel._event.wait(0.05)
                finish = "cancelled"
                break
            if cancel is not None and cancel.cancelled:
                finish = "cancelled"
                break
            sent += 1
            yield Chunk(text)
        prompt = self.count_tokens(messages)
        if script.stats is not None:
            yield Chunk(stats=script.stats)
            return
        yield Chunk(
            stats=Stats(
                prompt_tokens=prompt,
                completion_tokens=sent,
                tokens_per_second=42.0,
                finish_reason=finish,  # type: ignore[arg-type]
            )
        )

    def close(self) -> None:
        self.closed = True


async def wait_until(
    pilot: Pilot[Any], predicate: Callable[[], bool], what: str = "condition", timeout: float = 10.0
) -> None:
    """Let the app run until ``predicate()`` holds (checked after each pause), or fail after ``timeout``."""
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.02)


async def open_model_picker(pilot: Pilot[Any], rows: int) -> Any:
    """Ctrl+O, then the model picker's table once it lists ``rows`` installed models."""
    from textual.widgets import DataTable

    app = pilot.app
    await pilot.press("ctrl+o")
    await wait_until(pilot, lambda: bool(app.screen.query("#model-table")), "the model picker")
    table = app.screen.query_one("#model-table", DataTable)
    await wait_until(pilot, lambda: table.row_count == rows, "the installed models listed")
    return table


def first_run_shown(app: App[Any]) -> bool:
    """The first-run screen is laid out (its button has a place on screen, so a click lands on it)."""
    buttons = app.screen.query("FirstRunScreen #pull")
    return bool(buttons) and buttons.first().region.width > 0


def register_fake_model(model_id: str = FAKE_MODEL) -> Path:
    """Put a model row in the store so the app skips the first-run screen (the scripted engine ignores it)."""
    from assistant import paths
    from assistant.store import Installed, Store

    path = paths.ensure(paths.models_dir()) / "fake.gguf"
    path.write_bytes(b"GGUF not really")
    store = Store()
    store.add(Installed(model_id, "llm", path, True, path.stat().st_size, None, "test", installed_at=1.0))
    store.conn.close()
    return path
