"""The domain calls the app makes: all blocking, all made from thread workers.

One ``ChatSession`` (history + engines) serves the whole app; ``History`` gives every thread its own
SQLite connection, so workers can read and write while the UI thread never touches the database.
The engine comes from ``engine_factory`` so tests can script it; the history is always the real one.
Nothing here imports textual: the backend and what it returns are plain Python, usable without the UI.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import AssistantError

if TYPE_CHECKING:
    from ..chat import CancelToken, ChatEngine, Chunk
    from ..config import Settings
    from ..history import Chat
    from ..session import ChatSession

EngineFactory = Callable[[str], "ChatEngine"]


@dataclass
class ChatSummary:
    """What the sidebar needs to show one chat."""

    id: int | str
    title: str
    model_id: str | None = None
    updated_at: float = 0.0


@dataclass
class StoredTurn:
    """One message as the chat view shows it (independent of the history module's row type)."""

    role: str
    content: str
    partial: bool = False
    notice: str | None = None
    message_id: int | None = None  # its row in the history (a search hit opens the chat at it)
    alternative: tuple[int, int] | None = None  # (2, 3): the second of three versions of this turn


@dataclass
class ChatSetup:
    """A chat's own settings (the chat settings dialog): its model, system prompt and sampling options
    (only those it sets; the rest come from config.toml's [chat])."""

    model_id: str | None
    system_prompt: str
    options: dict[str, Any]


@dataclass
class SearchResult:
    """One chat a search found: at a message (with the text around the match), or by its title."""

    chat: ChatSummary
    message_id: int | None
    snippet: str


def _summary(chat: Chat) -> ChatSummary:
    return ChatSummary(id=chat.id, title=chat.title or "Untitled", model_id=chat.model_id, updated_at=chat.updated_at)


class Backend:
    def __init__(self, settings: Settings, engine_factory: EngineFactory | None = None) -> None:
        self.settings = settings
        self.engine_factory = engine_factory
        self._session: ChatSession | None = None
        self._lock = threading.Lock()

    @property
    def session(self) -> ChatSession:
        """Created on first use, in a worker: opening the database must not delay the first paint."""
        with self._lock:
            if self._session is None:
                from ..session import ChatSession

                # One engine loaded at a time: switching models frees the previous one's memory.
                self._session = ChatSession(engine_factory=self.engine_factory, settings=self.settings, max_engines=1)
            return self._session

    def close(self) -> None:
        with self._lock:
            session, self._session = self._session, None
        if session is not None:
            session.close()
            session.history.close()

    # -- models
    def installed_llms(self) -> list[str]:
        from ..store import Store

        store = Store()
        try:
            return [item.id for item in store.list(kind="llm") if item.present]
        finally:
            store.conn.close()

    def starters(self) -> list[tuple[str, int | None]]:
        from .. import catalog

        return [(v.id, v.size) for v in catalog.default().starters()]

    def load_engine(self, model_id: str) -> ChatEngine:
        session = self.session
        for loaded in session.loaded():
            if loaded != model_id:
                session.unload(loaded)  # free the old model before the new one takes its share
        return session.engine(model_id)

    # -- chats
    def list_chats(self) -> list[ChatSummary]:
        return [_summary(chat) for chat in self.session.history.list_chats()]

    def open_chat(self, chat_id: int | str, at_message: int | None = None) -> tuple[ChatSummary, list[StoredTurn]]:
        """The chat and the branch it shows; ``at_message`` (a search hit) on another branch shows that one."""
        history = self.session.history
        chat = history.get_chat(int(chat_id))
        shown = history.messages(chat.id)
        if at_message is not None and all(m.id != at_message for m in shown):
            with contextlib.suppress(AssistantError):  # deleted since the search: the chat as it is
                history.switch(chat.id, at_message)
                shown = history.messages(chat.id)
        alternatives = history.alternatives(chat.id)
        turns = [
            StoredTurn(m.role, m.content, m.partial, message_id=m.id, alternative=alternatives.get(m.id))
            for m in shown
            if m.role != "system"
        ]
        return _summary(chat), turns

    def your_messages(self, chat_id: int | str) -> list[tuple[int, str]]:
        """(id, text) of each of the user's messages on the branch shown, newest first (what edit offers)."""
        shown = self.session.history.messages(int(chat_id))
        return [(m.id, m.content) for m in reversed(shown) if m.role == "user"]

    def step_branch(self, chat_id: int | str, message_id: int, step: int) -> bool:
        """Show the previous (-1) or next (1) version of a turn; False when there is none that way."""
        return self.session.history.step_branch(int(chat_id), message_id, step) is not None

    def create_chat(self, first_message: str, model_id: str, setup: ChatSetup | None = None) -> ChatSummary:
        """A new chat titled from its first message, with ``setup``'s system prompt and options when the
        user set them before sending (else config.toml's)."""
        from ..history import title_from

        chat = self.session.new_chat(
            model_id=model_id,
            system_prompt=setup.system_prompt if setup else None,
            options=setup.options if setup else None,
            title=title_from(first_message),
        )
        return _summary(chat)

    def chat_setup(self, chat_id: int | str | None) -> ChatSetup:
        """The stored chat's settings, or a new chat's defaults (config.toml's [chat])."""
        if chat_id is None or isinstance(chat_id, str):
            return ChatSetup(self.settings.models.chat, self.settings.chat.system_prompt, {})
        chat = self.session.history.get_chat(int(chat_id))
        return ChatSetup(chat.model_id, chat.system_prompt, dict(chat.options))

    def save_chat_setup(self, chat_id: int | str, setup: ChatSetup) -> None:
        """Store the chat's settings; its next reply uses them (the history keeps them for when it is reopened)."""
        from ..session import options_dict

        self.session.history.update_chat(
            int(chat_id),
            model_id=setup.model_id,
            system_prompt=setup.system_prompt,
            options=options_dict(setup.options),  # validated: a bad value is one line, nothing stored
        )

    def keep_unsent(self, chat_id: int | str | None, text: str, model_id: str | None) -> None:
        """Store a message that never reached a model (the app quit while it waited for one), in its chat
        or in a new one: nothing typed is lost. Reopened, the chat shows it unanswered."""
        if chat_id is None:
            chat_id = self.create_chat(text, model_id or self.settings.models.chat).id
        self.session.history.add_message(int(chat_id), "user", text)

    def search(self, text: str) -> list[SearchResult]:
        """Chats by title or by the words of their messages (``chat_search.search``: SQLite FTS5)."""
        from ..chat_search import search

        return [SearchResult(_summary(h.chat), h.message_id, h.snippet) for h in search(self.session.history, text)]

    def rename_chat(self, chat_id: int | str, title: str) -> None:
        self.session.history.rename(int(chat_id), title)

    def delete_chat(self, chat_id: int | str) -> None:
        self.session.history.delete(int(chat_id))

    def export_chat(self, chat_id: int | str, path: Path) -> Path:
        """Write the chat to ``path``: JSON when it ends in .json, else Markdown (never a half-written file)."""
        from .. import chat_export, paths

        path = path.expanduser()
        text = chat_export.export(self.session.history, int(chat_id), chat_export.export_format(path))
        paths.write_text_atomic(path, text)
        return path

    def count_context(self, chat_id: int | str, engine: ChatEngine) -> int:
        messages = self.session.build_messages(int(chat_id))
        return engine.count_tokens(messages) if messages else 0

    # -- replies
    def reply(
        self, chat_id: int | str, model_id: str, text: str, cancel: CancelToken, on_chunk: Callable[[Chunk], None]
    ) -> None:
        """Store the user's message, then generate the reply (stored as it grows; partial if cancelled),
        calling ``on_chunk`` for each chunk from the engine's own thread (``Turn.run``)."""
        self._continue(chat_id, model_id).send(int(chat_id), text, cancel=cancel).run(on_chunk)

    def regenerate(
        self, chat_id: int | str, model_id: str, cancel: CancelToken, on_chunk: Callable[[Chunk], None]
    ) -> None:
        """A new reply to the chat's last message, the old one kept as an alternative (``ChatSession``)."""
        self._continue(chat_id, model_id).regenerate(int(chat_id), cancel=cancel).run(on_chunk)

    def edit(
        self,
        chat_id: int | str,
        model_id: str,
        message_id: int,
        text: str,
        cancel: CancelToken,
        on_chunk: Callable[[Chunk], None],
    ) -> None:
        """``text`` in place of the user's message ``message_id`` (a new branch), and its reply."""
        session = self._continue(chat_id, model_id)
        session.edit(int(chat_id), message_id, text, cancel=cancel).run(on_chunk)

    def _continue(self, chat_id: int | str, model_id: str) -> ChatSession:
        session = self.session
        chat = session.history.get_chat(int(chat_id))
        if chat.model_id != model_id:
            session.history.update_chat(chat.id, model_id=model_id)  # the chat continues with the model in use
        return session
