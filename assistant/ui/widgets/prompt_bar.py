"""The message box: Enter sends; Shift+Enter or Ctrl+J starts a new line.

Terminals without the kitty keyboard protocol send the same byte for Enter and Shift+Enter, so Ctrl+J
(a plain line feed everywhere) is the newline key that always works.

Keys are acted on in the order they were typed, however fast they come (a paste, tmux, a quick typist):
the newline key is handled here, not by the binding alone (a binding runs once the key has bubbled up to
the app, after the keys typed next were inserted: "a", Ctrl+J, "b" became "ab" and a new line), and a
message leaves the box the moment Enter is pressed (taken later, it took the keys typed after Enter too).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from textual import events
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import TextArea


class PromptBar(TextArea):
    """A multi-line prompt that posts ``PromptBar.Submitted`` on Enter."""

    NEWLINE_KEYS = "shift+enter,ctrl+j"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(NEWLINE_KEYS, "newline", "New line", show=False, id="prompt.newline"),
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
        # Set by the app: may this text be sent now? If so, it leaves the box at once (see the module doc).
        self.gate: Callable[[str], bool] | None = None

    async def _on_key(self, event: events.Key) -> None:
        if event.key == "enter":
            event.stop()
            event.prevent_default()
            self.action_submit()
            return
        if event.key in self._newline_keys():
            event.stop()
            event.prevent_default()
            self.action_newline()
            return
        await super()._on_key(event)

    def _newline_keys(self) -> set[str]:
        """The binding's keys, as ``ui.keymap`` may have changed them (Textual keeps the keymap in ``_keymap``)."""
        keymap: dict[str, str] = getattr(self.app, "_keymap", None) or {}
        return {key.strip() for key in keymap.get("prompt.newline", self.NEWLINE_KEYS).split(",")}

    def action_newline(self) -> None:
        start, end = self.selection
        self._replace_via_keyboard("\n", start, end)

    def action_submit(self) -> None:
        text = self.text.strip()
        if not text or self.read_only:
            return
        if self.gate is not None:
            if not self.gate(text):
                return  # not now (a reply is streaming, no model): the text stays where it was typed
            self.clear()
        self.post_message(self.Submitted(self, text))

    def give_back(self, text: str) -> None:
        """Put a message that was not sent back into the box, before anything typed since."""
        rest = self.text
        self.text = text + ("\n" + rest if rest.strip() else "")
        self.move_cursor(self.document.end)

    def take(self) -> str:
        """Clear the box and return what it held."""
        text = self.text
        self.clear()
        return text
