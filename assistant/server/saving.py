"""``assistant serve --save``: API conversations stored in the chat history, as ``assistant chats`` shows them.

Off by default: a request is the client's business, and nothing of it stays on disk unless the user asked.
With ``--save`` every finished chat or completion reply is stored, with its request's messages, as a chat of
the model that answered. An API client re-sends the whole conversation every turn, so a request whose
messages are an earlier saved exchange plus one new message continues that chat (only the new message and
its reply are added) instead of storing the conversation again; the server remembers the exchanges it saved
while it runs (a restarted server starts new chats).

A reply is stored as it ends, before the response's last bytes (a stream's ``[DONE]``), so a client that has the
whole reply finds it in ``assistant chats``. Writes run in a worker thread (``asyncio.to_thread``); a failure
to save is logged, never the client's error.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..chat import Message, Stats
from ..errors import AssistantError, one_line

if TYPE_CHECKING:
    from ..history import History

log = logging.getLogger("assistant.serve")

# Exchanges remembered for continuation: enough for many clients' open conversations, bounded for a long run.
REMEMBERED = 1024


def _digest(messages: Sequence[Message]) -> str:
    doc = json.dumps([(m.role, m.content) for m in messages], ensure_ascii=False)
    return hashlib.sha256(doc.encode()).hexdigest()


class Saver:
    """Stores finished API replies in the chat history (see the module docstring). Thread-safe."""

    def __init__(self) -> None:
        self._chats: dict[str, int] = {}  # digest of a saved exchange (messages + reply) -> its chat id
        self._lock = threading.Lock()
        self._history: History | None = None

    def save(
        self, model_id: str, messages: Sequence[Message], reply: str, stats: Stats, *, partial: bool
    ) -> int | None:
        """Store ``messages`` and ``reply``; returns the chat id (None if it could not be saved: logged)."""
        try:
            return self._save(model_id, list(messages), reply, stats, partial)
        except (AssistantError, OSError) as exc:
            log.warning("could not save the API reply to the chat history: %s", one_line(exc))
            return None

    def _save(self, model_id: str, messages: list[Message], reply: str, stats: Stats, partial: bool) -> int:
        from ..history import History as _History

        with self._lock:
            if self._history is None:
                self._history = _History()
            history = self._history
            chat_id = self._chats.get(_digest(messages[:-1])) if len(messages) > 1 else None
            if chat_id is None or history.find_chat(chat_id) is None:
                system = "\n\n".join(m.content for m in messages if m.role == "system")
                chat_id = history.create_chat(model_id=model_id, system_prompt=system).id
                new = [m for m in messages if m.role != "system"]
            else:
                new = [m for m in messages[-1:] if m.role != "system"]
            for message in new:
                history.add_message(chat_id, message.role, message.content, model_id=model_id)
            reply_id = history.start_reply(chat_id, model_id)
            history.finish_reply(reply_id, reply, stats, partial=partial)
            self._chats[_digest([*messages, Message("assistant", reply)])] = chat_id
            while len(self._chats) > REMEMBERED:
                self._chats.pop(next(iter(self._chats)))
            return chat_id

    def close(self) -> None:
        with self._lock:
            if self._history is not None:
                self._history.close()
                self._history = None
