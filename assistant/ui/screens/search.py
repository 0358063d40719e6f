"""Search the chats: titles, and every word of the messages (``chat_search.search``, SQLite FTS5).

Each keystroke starts a search in a thread worker (the newest cancels the one before); the list shows one
hit per chat, its title and the text around the match, as plain text. Enter on a hit (or on the query: the
first hit) returns it, and the app opens that chat scrolled to the message.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option
from textual.worker import Worker, get_current_worker

from ...untrusted import clean
from ..backend import Backend, SearchResult
from ..messages import SearchFound
from ..workers import report_failure


class SearchChats(ModalScreen[SearchResult | None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close", id="search.close"),
        Binding("down", "to_hits", "Hits", show=False, id="search.hits"),
    ]

    def __init__(self, backend: Backend) -> None:
        super().__init__()
        self.backend = backend
        self.hits: list[SearchResult] = []
        self.query_text = ""

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="search"):
            yield Label("Search chats", classes="dialog-title")
            yield Input(placeholder="words in titles and messages", id="search-input")
            yield OptionList(id="search-hits")
            yield Label("Enter: open  ·  ↓: the hits  ·  Esc: close", classes="dialog-help", id="search-help")

    @on(Input.Changed, "#search-input")
    def _changed(self, event: Input.Changed) -> None:
        self.query_text = event.value
        self._search(event.value)

    @work(thread=True, exclusive=True, exit_on_error=False, group="search")
    def _search(self, text: str) -> None:
        hits = self.backend.search(text) if text.strip() else []
        if not get_current_worker().is_cancelled:
            self.post_message(SearchFound(text, hits))

    def on_search_found(self, message: SearchFound) -> None:
        if message.text != self.query_text:
            return  # an older query's answer, overtaken by typing
        self.hits = message.hits
        hits = self.query_one("#search-hits", OptionList)
        hits.clear_options()
        hits.add_options([Option(_line(hit), id=str(n)) for n, hit in enumerate(message.hits)])
        if message.hits:
            hits.highlighted = 0
        help_text = "Enter: open  ·  ↓: the hits  ·  Esc: close"
        if message.text.strip() and not message.hits:
            help_text = "no chat has these words"
        self.query_one("#search-help", Label).update(help_text)

    @on(Input.Submitted, "#search-input")
    def _open_first(self) -> None:
        if self.hits:
            self.dismiss(self.hits[0])

    @on(OptionList.OptionSelected, "#search-hits")
    def _open(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.hits[int(event.option.id or 0)])

    def action_to_hits(self) -> None:
        if self.hits:
            self.query_one("#search-hits", OptionList).focus()

    def action_close(self) -> None:
        self.dismiss(None)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        report_failure(self, event)


def _line(hit: SearchResult) -> Text:
    """A hit as plain text (titles and messages are data): the title, then the text around the match."""
    line = Text(clean(hit.chat.title, one_line=True), style="bold")
    if hit.message_id is not None:
        line.append("  " + clean(hit.snippet, one_line=True))
    return line
