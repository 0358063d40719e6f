"""Which of your messages to edit: the ones on the branch shown, newest first, one line each (plain text).
The one picked goes into the prompt; sent, it becomes a new version beside the original (``Versions``)."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from ...untrusted import clean

PREVIEW = 200  # characters of a message shown in the list (the prompt gets all of it)


class PickMessage(ModalScreen[int | None]):
    """Returns the place in ``texts`` of the message picked, or None (Esc)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel", id="dialog.cancel")]

    def __init__(self, texts: list[str]) -> None:
        super().__init__()
        self.texts = texts

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="edit-pick"):
            yield Label("Edit a message", classes="dialog-title")
            options = [Option(Text(clean(t[:PREVIEW], one_line=True)), id=str(n)) for n, t in enumerate(self.texts)]
            yield OptionList(*options, id="edit-messages")
            yield Label("Enter: edit  ·  Esc: cancel", classes="dialog-help")

    def on_mount(self) -> None:
        self.query_one(OptionList).highlighted = 0

    @on(OptionList.OptionSelected)
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(int(event.option.id or 0))

    def action_cancel(self) -> None:
        self.dismiss(None)
