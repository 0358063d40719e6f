"""The app's chat tools, each a dialog and a worker: attach a file, export the chat, its settings, search the
chats, download models. ``app.py`` binds their keys (``actions.py``) and calls these; a failure in any of their
workers reaches the app's one ``report_failure``."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..untrusted import clean

if TYPE_CHECKING:
    from ..config import Settings
    from .backend import Backend, ChatSetup, ChatSummary, SearchResult
    from .widgets.conversation import Conversation


class AssistantApp(Protocol):
    """What the tools need of the app (``ui.app.AssistantApp`` is it; passed in, so this never imports it)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def backend(self) -> Backend: ...

    @property
    def chat(self) -> ChatSummary | None: ...

    @property
    def model_id(self) -> str | None: ...

    @property
    def generating(self) -> bool: ...

    @property
    def conversation(self) -> Conversation: ...

    def notify(self, message: str, *, severity: Any = ..., markup: bool = ...) -> None: ...

    def push_screen(self, screen: Any, callback: Callable[[Any], Any]) -> Any: ...

    def run_worker(self, work: Callable[[], None], *, thread: bool, group: str, exit_on_error: bool) -> Any: ...

    def call_from_thread(self, callback: Callable[..., Any], *args: Any, **kwargs: Any) -> Any: ...

    def load_model(self, model_id: str) -> None: ...

    def open_chat(self, chat: ChatSummary, at_message: int | None = None) -> None: ...


def attach(app: AssistantApp) -> None:
    """A path dialog; the file goes into the prompt (``Conversation.attach``)."""
    from .screens.dialogs import AskPath

    def chosen(path: str | None) -> None:
        if path:
            app.conversation.attach(Path(path))

    help_text = "Enter: attach (text files; the content goes in the message)  ·  Esc: cancel"
    app.push_screen(AskPath("Attach a text file", f"{Path.cwd()}/", help_text, "attach-input"), chosen)


def file_stem(title: str) -> str:
    """A chat title as a file name: its letters and digits, words joined by dashes, at most 40 characters."""
    words = re.findall(r"\w+", title.lower())
    return "-".join(words)[:40].strip("-")


def export_chat(app: AssistantApp) -> None:
    """A path dialog prefilled in the documents folder; the extension picks Markdown or JSON."""
    chat = app.chat
    if chat is None or isinstance(chat.id, str):
        app.notify("nothing to export yet: this chat has no messages", severity="warning")
        return
    from .. import paths
    from .screens.dialogs import AskPath

    chat_id = chat.id
    default = paths.documents_dir() / f"{file_stem(chat.title) or 'chat'}-{chat_id}.md"

    def write(target: Path) -> None:
        written = app.backend.export_chat(chat_id, target)
        app.call_from_thread(app.notify, f"exported to {clean(str(written), one_line=True)}", markup=False)

    def chosen(target: str | None) -> None:
        if target:
            app.run_worker(partial(write, Path(target)), thread=True, group="db", exit_on_error=False)

    help_text = "Enter: write (.md Markdown, .json JSON)  ·  Esc: cancel"
    app.push_screen(AskPath("Export chat", str(default), help_text, "export-input"), chosen)


def chat_settings(app: AssistantApp) -> None:
    """The chat's settings dialog: stored with the chat, or kept for the chat the next message starts."""
    if app.generating:
        app.notify("Stop the reply first (Esc).", severity="warning")
        return
    chat = app.chat
    chat_id = None if chat is None or isinstance(chat.id, str) else chat.id

    def read() -> None:
        pending = app.conversation.pending_setup
        setup = pending if chat_id is None and pending is not None else app.backend.chat_setup(chat_id)
        if chat_id is None and app.model_id:
            setup.model_id = app.model_id  # a new chat starts with the model in use
        models = app.backend.installed_llms()
        app.call_from_thread(_show_settings, app, chat_id, setup, models)

    app.run_worker(read, thread=True, group="settings", exit_on_error=False)


def _show_settings(app: AssistantApp, chat_id: int | None, setup: ChatSetup, models: list[str]) -> None:
    from .screens.chat_settings import ChatSettingsDialog

    def save(result: ChatSetup) -> None:
        assert chat_id is not None
        app.backend.save_chat_setup(chat_id, result)
        app.call_from_thread(app.notify, "chat settings saved")

    def saved(result: ChatSetup | None) -> None:
        if result is None:
            return
        if chat_id is None:
            app.conversation.pending_setup = result  # the chat the next message starts takes them
        else:
            app.run_worker(partial(save, result), thread=True, group="db", exit_on_error=False)
        if result.model_id and result.model_id != app.model_id and not app.generating:
            app.load_model(result.model_id)

    app.push_screen(ChatSettingsDialog(setup, models, app.settings.chat.presets), saved)


def search(app: AssistantApp) -> None:
    """The search screen; a hit opens its chat at the message."""
    from .screens.search import SearchChats

    def chosen(hit: SearchResult | None) -> None:
        if hit is not None:
            app.open_chat(hit.chat, hit.message_id)

    app.push_screen(SearchChats(app.backend), chosen)


def catalog(app: AssistantApp) -> None:
    """The catalog screen (pull any model)."""
    from .screens.catalog import CatalogScreen

    def closed(installed: bool | None) -> None:
        if installed:
            app.notify("downloaded: Ctrl+O chooses the chat model")

    app.push_screen(CatalogScreen(), closed)
