"""Chats and their messages, in the app's SQLite database.

Nothing the user typed is lost: the user's message is committed before generation starts, the reply is
a row from its first token (``start_reply``), rewritten as it streams (``update_reply``) and closed by
``finish_reply``. A reply is ``partial`` until it finishes normally; a cancelled or failed one stays
partial, and so does one whose process was killed: its row keeps the text written so far and
``finished_at`` stays empty, which is how a reader tells an interrupted reply from a cancelled one.

``History`` opens one connection per thread (SQLite connections must not cross threads), so the TUI
can read in its UI thread while a worker thread streams a reply into the same ``History``.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import db
from .chat import Role, Stats
from .errors import AssistantError

MIGRATIONS = [
    (
        "history_001_chats",
        """
        CREATE TABLE chats (
            id INTEGER PRIMARY KEY AUTOINCREMENT,   -- AUTOINCREMENT: a deleted chat's id is never reused
            title TEXT NOT NULL DEFAULT '',
            model_id TEXT,
            system_prompt TEXT NOT NULL DEFAULT '',
            options TEXT NOT NULL DEFAULT '{}',     -- JSON: ChatOptions fields set for this chat
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        );
        CREATE TABLE messages (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            chat_id INTEGER NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
            role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
            content TEXT NOT NULL DEFAULT '',
            partial INTEGER NOT NULL DEFAULT 0,     -- 1: the reply did not finish (cancelled, failed, killed)
            model_id TEXT,
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            ttft_ms REAL,
            tokens_per_second REAL,
            finish_reason TEXT,
            created_at REAL NOT NULL,
            finished_at REAL                        -- NULL on a reply still streaming or killed mid-way
        );
        CREATE INDEX messages_chat ON messages (chat_id, id);
        CREATE INDEX chats_updated ON chats (updated_at);
        """,
    ),
    (
        # Full-text search over messages (SQLite FTS5), an external-content index kept in step by triggers;
        # 'rebuild' indexes what an existing database already holds.
        "history_002_messages_fts",
        """
        CREATE VIRTUAL TABLE messages_fts USING fts5(
            content, content='messages', content_rowid='id', tokenize='unicode61 remove_diacritics 2'
        );
        INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');
        CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
            INSERT INTO messages_fts (rowid, content) VALUES (new.id, new.content);
        END;
        CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
            INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
        END;
        CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages BEGIN
            INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
            INSERT INTO messages_fts (rowid, content) VALUES (new.id, new.content);
        END;
        """,
    ),
]

TITLE_LENGTH = 60


@dataclass
class Chat:
    id: int
    title: str
    model_id: str | None
    system_prompt: str
    options: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0
    message_count: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "model": self.model_id,
            "system_prompt": self.system_prompt,
            "options": self.options,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "messages": self.message_count,
        }


@dataclass
class StoredMessage:
    id: int
    chat_id: int
    role: Role
    content: str
    partial: bool = False
    model_id: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    ttft_ms: float | None = None
    tokens_per_second: float | None = None
    finish_reason: str | None = None
    created_at: float = 0.0
    finished_at: float | None = None

    @property
    def interrupted(self) -> bool:
        """A reply whose process died before it finished (no ``finish_reply`` ever ran)."""
        return self.partial and self.finished_at is None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "chat_id": self.chat_id,
            "role": self.role,
            "content": self.content,
            "partial": self.partial,
            "model": self.model_id,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "ttft_ms": self.ttft_ms,
            "tokens_per_second": self.tokens_per_second,
            "finish_reason": self.finish_reason,
            "created_at": self.created_at,
            "finished_at": self.finished_at,
        }


@dataclass
class SearchHit:
    chat: Chat
    message_id: int | None  # None: the title matched
    snippet: str

    def to_json(self) -> dict[str, Any]:
        return {"chat": self.chat.to_json(), "message_id": self.message_id, "snippet": self.snippet}


def _chat(row: sqlite3.Row) -> Chat:
    keys = row.keys()
    return Chat(
        id=row["id"],
        title=row["title"],
        model_id=row["model_id"],
        system_prompt=row["system_prompt"],
        options=_options(row["options"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        message_count=row["message_count"] if "message_count" in keys else 0,
    )


def _options(text: str | None) -> dict[str, Any]:
    """A chat's options; a damaged value reads as none rather than failing every listing."""
    try:
        value = json.loads(text or "{}")
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _message(row: sqlite3.Row) -> StoredMessage:
    return StoredMessage(
        id=row["id"],
        chat_id=row["chat_id"],
        role=row["role"],
        content=row["content"],
        partial=bool(row["partial"]),
        model_id=row["model_id"],
        prompt_tokens=row["prompt_tokens"],
        completion_tokens=row["completion_tokens"],
        ttft_ms=row["ttft_ms"],
        tokens_per_second=row["tokens_per_second"],
        finish_reason=row["finish_reason"],
        created_at=row["created_at"],
        finished_at=row["finished_at"],
    )


def _storable(number: int) -> bool:
    return -(2**63) <= number < 2**63


def title_from(text: str) -> str:
    """A chat title from its first message: the first line, cut at a word near ``TITLE_LENGTH``."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    if len(line) <= TITLE_LENGTH:
        return line
    cut = line[:TITLE_LENGTH].rsplit(" ", 1)[0] or line[:TITLE_LENGTH]
    return cut.rstrip(" ,.;:") + "…"


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _fts_query(text: str) -> str:
    """An FTS5 query for the words of ``text``: each quoted (no FTS5 syntax reaches the engine from the
    user) and prefix-matched, all required; "" when ``text`` has no word."""
    words = re.findall(r"\w+", text)
    return " ".join('"' + w.replace('"', '""') + '"*' for w in words)


def reindex(conn: sqlite3.Connection) -> None:
    """Rebuild the full-text index from the messages (after a repair copied them in)."""
    conn.execute("INSERT INTO messages_fts (messages_fts) VALUES ('rebuild')")


def adopt_orphans(conn: sqlite3.Connection) -> int:
    """After a repair: give messages whose chat row was lost a chat again (titled "recovered chat N"), rather
    than lose them too. Returns how many chats were made."""
    cur = conn.execute(
        "INSERT INTO chats (id, title, model_id, system_prompt, options, created_at, updated_at)"
        " SELECT chat_id, 'recovered chat ' || chat_id, MAX(model_id), '', '{}', MIN(created_at), MAX(created_at)"
        " FROM messages WHERE chat_id NOT IN (SELECT id FROM chats) GROUP BY chat_id"
    )
    return max(cur.rowcount, 0)


class History:
    """Chats and messages. Safe to share between threads (each thread gets its own connection)."""

    def __init__(self, conn: sqlite3.Connection | None = None) -> None:
        first = conn or db.connect()
        self._path = getattr(first, "path", None) or Path(first.execute("PRAGMA database_list").fetchone()["file"])
        self._readonly = bool(getattr(first, "readonly", False))
        self._local = threading.local()
        self._local.conn = first
        here = threading.current_thread()
        self._owned: list[tuple[threading.Thread, sqlite3.Connection]] = [] if conn is not None else [(here, first)]
        self._owned_lock = threading.Lock()

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection (opened on first use in a thread)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = db.connect(self._path, readonly=self._readonly)
            self._local.conn = conn
            with self._owned_lock:
                self._owned.append((threading.current_thread(), conn))
        return conn

    def close(self) -> None:
        """Close the connections this object opened (not one passed in): this thread's and those of threads
        that have ended. One that a thread still running opened is left to that thread, and goes when the
        last reference to it does: closing a connection under another thread's statement crashes SQLite (a
        reply's worker can still be saving when the app quits: a segfault in the UI tests)."""
        with self._owned_lock:
            owned, self._owned = self._owned, []
        here = threading.current_thread()
        for thread, conn in owned:
            if thread is here or not thread.is_alive():
                conn.close()
        self._local = threading.local()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        try:
            with db.transaction(self.conn) as conn:
                yield conn
        except sqlite3.OperationalError as exc:
            raise AssistantError(f"chat history: cannot write: {exc}", "is the disk full?") from None

    # -- chats ------------------------------------------------------------------------------------
    def create_chat(
        self,
        *,
        title: str = "",
        model_id: str | None = None,
        system_prompt: str = "",
        options: dict[str, Any] | None = None,
    ) -> Chat:
        now = time.time()
        with self._write() as conn:
            cur = conn.execute(
                "INSERT INTO chats (title, model_id, system_prompt, options, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (title, model_id, system_prompt, json.dumps(options or {}), now, now),
            )
        assert cur.lastrowid is not None
        return self.get_chat(cur.lastrowid)

    def list_chats(self, limit: int | None = None) -> list[Chat]:
        """Newest activity first."""
        sql = (
            "SELECT c.*, (SELECT COUNT(*) FROM messages m WHERE m.chat_id = c.id) AS message_count"
            " FROM chats c ORDER BY c.updated_at DESC, c.id DESC"
        )
        params: tuple[Any, ...] = ()
        if limit is not None:
            sql += " LIMIT ?"
            params = (limit,)
        return [_chat(r) for r in self.conn.execute(sql, params)]

    def find_chat(self, chat_id: int) -> Chat | None:
        if not _storable(chat_id):
            return None  # no row can have it (SQLite ids are 64-bit): not a chat, rather than an OverflowError
        row = self.conn.execute(
            "SELECT c.*, (SELECT COUNT(*) FROM messages m WHERE m.chat_id = c.id) AS message_count"
            " FROM chats c WHERE c.id = ?",
            (chat_id,),
        ).fetchone()
        return _chat(row) if row else None

    def get_chat(self, chat_id: int) -> Chat:
        found = self.find_chat(chat_id)
        if found is None:
            raise AssistantError(f"no chat {chat_id}", "see 'assistant chats list'")
        return found

    def rename(self, chat_id: int, title: str) -> Chat:
        return self.update_chat(chat_id, title=title.strip())

    def update_chat(
        self,
        chat_id: int,
        *,
        title: str | None = None,
        model_id: str | None = None,
        system_prompt: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> Chat:
        """Change the given fields (None leaves a field as it is)."""
        changes: dict[str, Any] = {}
        if title is not None:
            changes["title"] = title
        if model_id is not None:
            changes["model_id"] = model_id
        if system_prompt is not None:
            changes["system_prompt"] = system_prompt
        if options is not None:
            changes["options"] = json.dumps(options)
        self.get_chat(chat_id)
        if changes:
            assignments = ", ".join(f"{name} = ?" for name in changes)  # names from the fixed set above
            with self._write() as conn:
                conn.execute(
                    f"UPDATE chats SET {assignments}, updated_at = ? WHERE id = ?",
                    (*changes.values(), time.time(), chat_id),
                )
        return self.get_chat(chat_id)

    def delete(self, chat_id: int) -> Chat:
        chat = self.get_chat(chat_id)
        with self._write() as conn:
            conn.execute("DELETE FROM chats WHERE id = ?", (chat_id,))
        return chat

    def search(self, text: str, limit: int = 50) -> list[SearchHit]:
        """Chats whose title contains ``text`` (case-insensitive), or one of whose messages has every word of
        it (full-text, each word also as a prefix: "danu" finds "Danube"), newest chat first; a message hit
        names the best-ranked message of its chat and a snippet around the match."""
        needle = text.strip()
        if not needle:
            return []
        hits: list[SearchHit] = []
        seen: set[int] = set()
        chats = {c.id: c for c in self.list_chats()}
        for row in self.conn.execute(
            "SELECT id FROM chats WHERE title LIKE ? ESCAPE '\\' ORDER BY updated_at DESC", (_like(needle),)
        ):
            chat = chats[row["id"]]
            hits.append(SearchHit(chat, None, chat.title))
            seen.add(chat.id)
        query = _fts_query(needle)
        rows = (
            self.conn.execute(
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

    # -- messages ---------------------------------------------------------------------------------
    def messages(self, chat_id: int) -> list[StoredMessage]:
        return [
            _message(r) for r in self.conn.execute("SELECT * FROM messages WHERE chat_id = ? ORDER BY id", (chat_id,))
        ]

    def get_message(self, message_id: int) -> StoredMessage:
        if not _storable(message_id):
            raise AssistantError(f"no message {message_id}")
        row = self.conn.execute("SELECT * FROM messages WHERE id = ?", (message_id,)).fetchone()
        if row is None:
            raise AssistantError(f"no message {message_id}")
        return _message(row)

    def add_message(self, chat_id: int, role: Role, content: str, *, model_id: str | None = None) -> StoredMessage:
        """Store a finished message (the user's, or an assistant reply written whole). Commits at once."""
        now = time.time()
        chat = self.get_chat(chat_id)
        with self._write() as conn:
            cur = conn.execute(
                "INSERT INTO messages (chat_id, role, content, partial, model_id, created_at, finished_at)"
                " VALUES (?, ?, ?, 0, ?, ?, ?)",
                (chat_id, role, content, model_id, now, now),
            )
            if not chat.title and role == "user":
                conn.execute("UPDATE chats SET title = ? WHERE id = ?", (title_from(content), chat_id))
            conn.execute("UPDATE chats SET updated_at = ? WHERE id = ?", (now, chat_id))
        assert cur.lastrowid is not None
        return self.get_message(cur.lastrowid)

    def start_reply(self, chat_id: int, model_id: str | None) -> int:
        """A new, empty, partial assistant row; returns its id for ``update_reply``/``finish_reply``."""
        now = time.time()
        self.get_chat(chat_id)
        with self._write() as conn:
            cur = conn.execute(
                "INSERT INTO messages (chat_id, role, content, partial, model_id, created_at)"
                " VALUES (?, 'assistant', '', 1, ?, ?)",
                (chat_id, model_id, now),
            )
            conn.execute("UPDATE chats SET updated_at = ? WHERE id = ?", (now, chat_id))
        assert cur.lastrowid is not None
        return cur.lastrowid

    def update_reply(self, message_id: int, text: str) -> None:
        """Save the reply so far (called every fraction of a second while streaming)."""
        with self._write() as conn:
            conn.execute("UPDATE messages SET content = ? WHERE id = ?", (text, message_id))

    def finish_reply(self, message_id: int, text: str, stats: Stats | None, *, partial: bool = False) -> StoredMessage:
        """Close a reply: final text, stats, and whether it is complete."""
        now = time.time()
        s = stats or Stats()
        with self._write() as conn:
            conn.execute(
                "UPDATE messages SET content = ?, partial = ?, prompt_tokens = ?, completion_tokens = ?,"
                " ttft_ms = ?, tokens_per_second = ?, finish_reason = ?, finished_at = ? WHERE id = ?",
                (
                    text,
                    int(partial),
                    s.prompt_tokens if stats else None,
                    s.completion_tokens if stats else None,
                    s.ttft_ms if stats else None,
                    s.tokens_per_second if stats else None,
                    s.finish_reason if stats else None,
                    now,
                    message_id,
                ),
            )
            conn.execute(
                "UPDATE chats SET updated_at = ? WHERE id = (SELECT chat_id FROM messages WHERE id = ?)",
                (now, message_id),
            )
        return self.get_message(message_id)

    def delete_message(self, message_id: int) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM messages WHERE id = ?", (message_id,))

    # -- export -----------------------------------------------------------------------------------
    @staticmethod
    def export_format(path: Path | None) -> str:
        """The format a file name asks for: "json" for ``.json``, else "markdown" (also with no file)."""
        return "json" if path is not None and path.suffix.lower() == ".json" else "markdown"

    def export(self, chat_id: int, fmt: str) -> str:
        """The chat as ``fmt``: "markdown" (``export_markdown``) or "json" (``export_json``)."""
        if fmt == "json":
            return self.export_json(chat_id)
        if fmt == "markdown":
            return self.export_markdown(chat_id)
        raise AssistantError(f"cannot export a chat as {fmt!r}", "use markdown or json")

    def export_json(self, chat_id: int) -> str:
        """The chat and every message with its stats, as ``chats show --json`` gives them, in one document."""
        chat = self.get_chat(chat_id)
        doc = {"chat": chat.to_json(), "messages": [m.to_json() for m in self.messages(chat_id)]}
        return json.dumps(doc, ensure_ascii=False, indent=2) + "\n"

    def export_markdown(self, chat_id: int) -> str:
        chat = self.get_chat(chat_id)
        created = time.strftime("%Y-%m-%d %H:%M", time.localtime(chat.created_at))
        lines = [f"# {chat.title or f'Chat {chat.id}'}", ""]
        lines.append(f"- chat: {chat.id}")
        lines.append(f"- created: {created}")
        if chat.model_id:
            lines.append(f"- model: {chat.model_id}")
        if chat.options:
            lines.append("- options: " + ", ".join(f"{k}={v}" for k, v in chat.options.items()))
        lines.append("")
        if chat.system_prompt:
            lines += ["## System", "", chat.system_prompt.strip(), ""]
        for m in self.messages(chat_id):
            heading = "User" if m.role == "user" else "Assistant" if m.role == "assistant" else "System"
            if m.partial:
                heading += " (interrupted)" if m.interrupted else " (partial)"
            lines += [f"## {heading}", "", m.content.strip() or "_(empty)_", ""]
        return "\n".join(lines).rstrip() + "\n"
