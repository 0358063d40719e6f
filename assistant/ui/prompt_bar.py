"""The message box: Enter sends; Shift+Enter or Ctrl+J starts a new line.

Terminals without the kitty keyboard protocol send the same byte for Enter and Shift+Enter, so Ctrl+J
(a plain line feed everywhere) is the newline key that always works.
"""

from __future__ import annotations

from typing import ClassVar

from textual import events
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import TextArea


class PromptBar(TextArea):
    """A multi-line prompt that posts ``PromptBar.Submitted`` on Enter."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("shift+enter,ctrl+j", "newline", "New line", show=False, id="prompt.newline"),
    ]

    class Submitted(Message):
        """The user pressed Enter on a non-empty prompt."""

        def __init__(self, prompt: PromptBar, text: str) -> None:
            super().__init__()
            self.prompt = prompt
            self.text = text

        @property
        def control(self) -> PromptBar:
            return self.prompt

    DEFAULT_PLACEHOLDER = "Message (Enter to send, Ctrl+J for a new line)"

    def __init__(self, *, placeholder: str = DEFAULT_PLACEHOLDER, id: str | None = None) -> None:
        super().__init__(
            id=id,
            soft_wrap=True,
            tab_behavior="focus",
            show_line_numbers=False,
            compact=True,
            placeholder=placeholder,
        )

    async def _on_key(self, event: events.Key) -> None:
        if event.key == "enter":
            event.stop()
            event.prevent_default()
            self.action_submit()
            return
        await super()._on_key(event)

    def action_newline(self) -> None:
        start, end = self.selection
        self._replace_via_keyboard("\n", start, end)

    def action_submit(self) -> None:
        text = self.text.strip()
        if not text or self.read_only:
            return
        self.post_message(self.Submitted(self, text))

    def take(self) -> str:
        """Clear the box and return what it held."""
        text = self.text
        self.clear()
        return text
