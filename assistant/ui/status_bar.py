"""One line under the chat: model, what it is doing, live tokens per second, context used / total."""

from __future__ import annotations

from typing import Literal

from rich.cells import cell_len
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.widgets import Label

State = Literal["no model", "loading", "ready", "generating", "error"]

STATE_TEXT = {"loading": "loading model…", "generating": "generating…", "error": "load failed"}


class StatusBar(Horizontal):
    model_id: reactive[str | None] = reactive(None)
    state: reactive[State] = reactive("no model")
    tokens_per_second: reactive[float | None] = reactive(None)
    context_used: reactive[int | None] = reactive(None)
    context_total: reactive[int | None] = reactive(None)

    def compose(self) -> ComposeResult:
        yield Label(id="status-model")
        yield Label(id="status-state")
        yield Label(id="status-speed")
        yield Label(id="status-context")

    def on_mount(self) -> None:
        self.watch_model_id()
        self.watch_state()
        self.watch_tokens_per_second()
        self.watch_context_used()

    def _set(self, label_id: str, text: str) -> None:
        """Update one label when its text changes. A text of the same width (the live tok/s, several times
        a second while a reply streams) is only repainted: a layout would cost the model CPU."""
        if not self.is_mounted:
            return
        label = self.query_one(f"#{label_id}", Label)
        old = str(label.content)
        if old != text:
            label.update(text, layout=cell_len(old) != cell_len(text))

    def watch_model_id(self) -> None:
        self._set("status-model", self.model_id or "no model")

    def watch_state(self) -> None:
        self._set("status-state", STATE_TEXT.get(self.state, ""))
        if self.is_mounted:
            label = self.query_one("#status-state", Label)
            label.set_class(self.state in ("loading", "generating"), "-busy")
            label.set_class(self.state == "error", "-error")

    def watch_tokens_per_second(self) -> None:
        speed = self.tokens_per_second
        self._set("status-speed", f"{speed:.1f} tok/s" if speed is not None else "")

    def watch_context_used(self) -> None:
        used, total = self.context_used, self.context_total
        self._set("status-context", f"ctx {used or 0}/{total}" if total else "")

    def watch_context_total(self) -> None:
        self.watch_context_used()
