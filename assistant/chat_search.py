"""Finding a chat: by its title, or by any words of its messages (SQLite FTS5, the index ``history``'s
migration 002 keeps in step by triggers). The user's text reaches FTS5 only as quoted words (``fts_query``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .history import Chat, History


@dataclass
class SearchHit:
    chat: Chat
    message_id: int | None  # None: the title matched
    snippet: str

    def to_json(self) -> dict[str, Any]:
        return {"chat": self.chat.to_json(), "message_id": self.message_id, "snippet": self.snippet}


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def fts_query(text: str) -> str:
    """An FTS5 query for the words of ``text``: each quoted (no FTS5 syntax reaches the engine from the
    user) and prefix-matched, all required; "" when ``text`` has no word."""
    words = re.findall(r"\w+", text)
    return " ".join('"' + w.replace('"', '""') + '"*' for w in words)


def search(history: History, text: str, limit: int = 50) -> list[SearchHit]:
    """Chats whose title contains ``text`` (case-insensitive), or one of whose messages has every word of
    it (full-text, each word also as a prefix: "danu" finds "Danube"), newest chat first; a message hit
    names the best-ranked message of its chat and a snippet around the match."""
    needle = text.strip()
    if not needle:
        return []
    hits: list[SearchHit] = []
    seen: set[int] = set()
    chats = {c.id: c for c in history.list_chats()}
    for row in history.conn.execute(
        "SELECT id FROM chats WHERE title LIKE ? ESCAPE '\\' ORDER BY updated_at DESC", (_like(needle),)
    ):
        chat = chats[row["id"]]
        hits.append(SearchHit(chat, None, chat.title))
        seen.add(chat.id)
    query = fts_query(needle)
    rows = (
        history.conn.execute(
            "SELECT m.id, m.chat_id, snippet(messages_fts, 0, '', '', '…', 16) AS snippet"
            " FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid"
            " WHERE messages_fts MATCH ? ORDER BY rank",
            (query,),
        )
        if query
        else []
    )
    for row in rows:
        if row["chat_id"] in seen or row["chat_id"] not in chats:
            continue
        seen.add(row["chat_id"])
        snippet = " ".join(str(row["snippet"]).split())
        hits.append(SearchHit(chats[row["chat_id"]], row["id"], snippet))
    hits.sort(key=lambda h: h.chat.updated_at, reverse=True)
    return hits[:limit]
