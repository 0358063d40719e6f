"""The list of chats. Selecting one opens it; rename and delete live in the command palette."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from ...untrusted import clean
from ..backend import ChatSummary


class ChatList(OptionList):
    """Chats, newest first. Option ids are the chat ids (as strings)."""

    class ChatChosen(Message):
        def __init__(self, chat: ChatSummary) -> None:
            super().__init__()
            self.chat = chat

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, markup=False)  # a title is what the user (or the model) wrote: never markup
        self.chats: dict[str, ChatSummary] = {}

    def show(self, chats: list[ChatSummary], current: int | str | None) -> None:
        self.chats = {str(chat.id): chat for chat in chats}
        self.clear_options()
        self.add_options([Option(clean(chat.title or "Untitled", one_line=True), id=str(chat.id)) for chat in chats])
        self.mark(current)

    def mark(self, current: int | str | None) -> None:
        """Highlight the open chat (without re-opening it)."""
        if current is None:
            self.highlighted = None
            return
        try:
            self.highlighted = self.get_option_index(str(current))
        except Exception:  # OptionDoesNotExist: the chat is not listed yet
            self.highlighted = None

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        chat = self.chats.get(event.option.id or "")
        if chat is not None:
            self.post_message(self.ChatChosen(chat))


class Sidebar(Vertical):
    def compose(self) -> ComposeResult:
        yield Label("Chats", classes="sidebar-title")
        yield ChatList(id="chat-list")
