"""Events the workers post back to the UI thread, named for what already happened (Harlequin style).

Workers never touch widgets: they post one of these to the widget or screen that started them, which
applies it on the event loop; it then bubbles on to the app (which keeps the sidebar and answers ``Settle``).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from textual.message import Message

if TYPE_CHECKING:
    from ..chat import ChatEngine, Stats
    from .backend import ChatSummary, SearchResult, StoredTurn


class ChatsListed(Message):
    """The sidebar's list of chats was read from the history."""

    def __init__(self, chats: list[ChatSummary], select: int | str | None = None) -> None:
        super().__init__()
        self.chats = chats
        self.select = select


class ChatOpened(Message):
    """A chat's messages were read; the view can show them."""

    def __init__(
        self, chat: ChatSummary, turns: list[StoredTurn], context_used: int | None, model_installed: bool = False
    ) -> None:
        super().__init__()
        self.chat = chat
        self.turns = turns
        self.context_used = context_used
        self.model_installed = model_installed  # the chat's own model can be loaded (the app switches to it)


class ChatCreated(Message):
    """The first message of a new chat created its row in the history."""

    def __init__(self, chat: ChatSummary) -> None:
        super().__init__()
        self.chat = chat


class Settle(Message):
    """Posted by a worker that waits for ``done``: set once the app has handled the messages posted before
    this one and painted the result (so that work is over before the worker starts something heavy)."""

    def __init__(self, done: threading.Event) -> None:
        super().__init__()
        self.done = done


class ModelLoaded(Message):
    """A model finished loading in its worker and is ready to chat."""

    def __init__(self, model_id: str, engine: ChatEngine, context_size: int) -> None:
        super().__init__()
        self.model_id = model_id
        self.engine = engine
        self.context_size = context_size


class ReplyStreamed(Message):
    """A batch of reply text (several tokens joined), plus any notice the engine sent with it."""

    def __init__(
        self, text: str, notices: list[str], tokens: int, elapsed: float, prompt_tokens: int | None = None
    ) -> None:
        super().__init__()
        self.text = text
        self.notices = notices
        self.tokens = tokens  # chunks received so far in this reply
        self.elapsed = elapsed  # seconds since the first chunk
        self.prompt_tokens = prompt_tokens  # the reply's prompt, when the engine said (the live context meter)


class ReplyPainted(Message):
    """The frame showing a streamed batch has been painted (posted after the screen's next refresh).

    A public hook for measuring what the user sees rather than what the engine produced: the conversation
    posts it and it bubbles up to the app, where ``benchmarks/tui.py`` times streaming speed from these
    (with ``AssistantApp.generating`` for the reply's end). ``tokens`` is ``ReplyStreamed.tokens`` of the
    batch now on screen; ``at`` is ``time.perf_counter()`` just after the paint."""

    def __init__(self, tokens: int, at: float) -> None:
        super().__init__()
        self.tokens = tokens
        self.at = at


class ReplyFinished(Message):
    """Generation ended: completed, cut by the length limit, or cancelled (then the reply is partial)."""

    def __init__(self, chat_id: int | str | None, stats: Stats | None, partial: bool, text: str) -> None:
        super().__init__()
        self.chat_id = chat_id
        self.stats = stats
        self.partial = partial
        self.text = text


class ReplyRead(Message):
    """Voice mode: the reply was read out to its end, or silenced (it follows that reply's ReplyFinished)."""


class DownloadProgressed(Message):
    """Bytes arrived for a pull (throttled: a few per second at most)."""

    def __init__(self, done: int, total: int | None, label: str) -> None:
        super().__init__()
        self.done = done
        self.total = total
        self.label = label


class DownloadFinished(Message):
    """Every requested model is installed."""

    def __init__(self, installed: list[Any] | None = None) -> None:
        super().__init__()
        self.installed = installed or []


class ModelsListed(Message):
    """The model picker's rows (installed models with size, quant and fit) were computed."""

    def __init__(self, rows: list[Any]) -> None:
        super().__init__()
        self.rows = rows


class SearchFound(Message):
    """The search screen's hits for ``text`` were read from the history."""

    def __init__(self, text: str, hits: list[SearchResult]) -> None:
        super().__init__()
        self.text = text
        self.hits = hits
