"""One line under the chat: model, what it is doing, live tokens per second, context used / total."""

from __future__ import annotations

from typing import Literal

from rich.cells import cell_len
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.widgets import Label

from ...untrusted import clean

State = Literal["no model", "loading", "ready", "generating", "error"]

CONTEXT_WARN = 0.8  # share of the context past which the meter turns to the warning colour
STATE_TEXT = {"loading": "loading model…", "generating": "generating…", "error": "load failed"}


class StatusBar(Horizontal):
    model_id: reactive[str | None] = reactive(None)
    state: reactive[State] = reactive("no model")
    tokens_per_second: reactive[float | None] = reactive(None)
    context_used: reactive[int | None] = reactive(None)
    context_total: reactive[int | None] = reactive(None)
    speculation: reactive[str] = reactive("")  # the last reply's drafts: shown while ready

    def compose(self) -> ComposeResult:
        # the model id comes from the store: these labels show their text as it is, never as markup
        yield Label(id="status-model", markup=False)
        yield Label(id="status-state", markup=False)
        yield Label(id="status-speed", markup=False)
        yield Label(id="status-context", markup=False)

    def on_mount(self) -> None:
        self.watch_model_id()
        self.watch_state()
        self.watch_tokens_per_second()
        self.watch_context_used()

    def _set(self, label_id: str, text: str, *, fixed_width: bool = False) -> None:
        """Update one label when its text changes. A label whose size cannot change (fixed width, or a text
        as wide as before) is only repainted: a layout pass while a reply streams would cost the model CPU."""
        if not self.is_mounted:
            return
        label = self.query_one(f"#{label_id}", Label)
        old = str(label.content)
        if old != text:
            label.update(text, layout=not fixed_width and cell_len(old) != cell_len(text))

    def watch_model_id(self) -> None:
        self._set("status-model", clean(self.model_id or "no model", one_line=True))

    def watch_state(self) -> None:
        self._set("status-state", STATE_TEXT.get(self.state, self.speculation if self.state == "ready" else ""))
        if self.is_mounted:
            label = self.query_one("#status-state", Label)
            label.set_class(self.state in ("loading", "generating"), "-busy")
            label.set_class(self.state == "error", "-error")

    def watch_speculation(self) -> None:
        self.watch_state()

    def watch_tokens_per_second(self) -> None:
        self._set("status-speed", speed_text(self.tokens_per_second), fixed_width=True)

    def watch_context_used(self) -> None:
        used, total = self.context_used, self.context_total
        self._set("status-context", f"ctx {used or 0}/{total}" if total else "")
        if self.is_mounted:  # past 80 % the next turns start trimming the history: say so in colour
            full = bool(total) and (used or 0) > CONTEXT_WARN * (total or 0)
            self.query_one("#status-context", Label).set_class(full, "-warn")

    def watch_context_total(self) -> None:
        self.watch_context_used()


def speculation_text(drafted: int, accepted: int, speed_up: float | None) -> str:
    """A reply's speculative decoding: drafted tokens accepted, and its speed over its own plain steps."""
    if not drafted:
        return ""
    gain = f" · {speed_up:.2f}×" if speed_up else ""
    return f"drafts {accepted}/{drafted}{gain}"


def speed_text(speed: float | None) -> str:
    """The live figure, at most 11 cells (#status-speed is 12 wide in app.tcss)."""
    if speed is None:
        return ""
    return f"{speed:.1f} tok/s" if speed < 100 else f"{min(speed, 99_999):.0f} tok/s"
