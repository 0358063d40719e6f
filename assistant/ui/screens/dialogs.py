"""Small modal questions: a new chat title, a file's path (export, attach), a delete confirmation."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label


class RenameChat(ModalScreen[str | None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel", id="dialog.cancel")]

    def __init__(self, title: str) -> None:
        super().__init__()
        self.title_text = title

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Rename chat", classes="dialog-title")
            yield Input(self.title_text, id="rename-input", select_on_focus=True)
            yield Label("Enter: save  ·  Esc: cancel", classes="dialog-help")

    @on(Input.Submitted)
    def _save(self, event: Input.Submitted) -> None:
        title = event.value.strip()
        self.dismiss(title or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class AskPath(ModalScreen[str | None]):
    """A file's path: where to export the chat, which file to attach."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel", id="dialog.cancel")]

    def __init__(self, title: str, default: str, help: str, input_id: str) -> None:
        super().__init__()
        self.title_text, self.default, self.help_text, self.input_id = title, default, help, input_id

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield Input(self.default, id=self.input_id)  # an Input shows its value as text, never markup
            yield Label(self.help_text, classes="dialog-help", markup=False)

    @on(Input.Submitted)
    def _save(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class Confirm(ModalScreen[bool]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel", id="dialog.cancel")]
    AUTO_FOCUS = "#no"  # the safe answer; see FirstRunScreen.AUTO_FOCUS for why not on_mount

    def __init__(self, question: str, yes: str = "Delete") -> None:
        super().__init__()
        self.question = question
        self.yes = yes

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.question, classes="dialog-title", markup=False)  # it quotes a chat title
            with Horizontal(classes="dialog-buttons"):
                yield Button(self.yes, variant="error", id="yes")
                yield Button("Cancel", id="no")

    @on(Button.Pressed)
    def _answer(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_cancel(self) -> None:
        self.dismiss(False)
