"""Chats and their messages, in the app's SQLite database.

Nothing the user typed is lost: the user's message is committed before generation starts, the reply is
a row from its first token (``start_reply``), rewritten as it streams (``update_reply``) and closed by
``finish_reply``. A reply is ``partial`` until it finishes normally; a cancelled or failed one stays
partial, and so does one whose process was killed: its row keeps the text written so far and
``finished_at`` stays empty, which is how a reader tells an interrupted reply from a cancelled one.

Chats branch. Every message has a parent (the message it answers or follows; None for the first), so a
regenerated reply is a sibling of the reply it replaces and an edited message a sibling of the message it
corrects, and nothing is overwritten. A chat's ``head_id`` is the last message of the branch it shows and
continues: ``messages`` is that branch from the first message down, ``all_messages`` every branch, and
``switch`` moves the chat to another branch.

``History`` opens one connection per thread (SQLite connections must not cross threads), so the TUI
can read in its UI thread while a worker thread streams a reply into the same ``History``.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from . import db
from .chat import Role, Stats
from .errors import AssistantError

# A chat from before branches, as one branch: each message after the one before it, its newest one shown.
LINEAR_PARENTS = (
    "UPDATE messages SET parent_id = (SELECT MAX(p.id) FROM messages p"
    " WHERE p.chat_id = messages.chat_id AND p.id < messages.id)"
)
NEWEST_HEADS = "UPDATE chats SET head_id = (SELECT MAX(m.id) FROM messages m WHERE m.chat_id = chats.id)"

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
    (
        # Branches: each message's parent (an existing chat is one branch, each message following the one
        # before it) and the chat's head (the last message of the branch it shows: its newest message).
        "history_003_branches",
        f"""
        ALTER TABLE messages ADD COLUMN parent_id INTEGER REFERENCES messages(id) ON DELETE CASCADE;
        ALTER TABLE chats ADD COLUMN head_id INTEGER REFERENCES messages(id) ON DELETE SET NULL;
        CREATE INDEX messages_parent ON messages (parent_id);
        {LINEAR_PARENTS};
        {NEWEST_HEADS};
        """,
    ),
]

TITLE_LENGTH = 60
HEAD: Literal["head"] = "head"  # add_message / start_reply: after the message the chat shows last


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
    parent_id: int | None = None

    @property
    def interrupted(self) -> bool:
        """A reply whose process died before it finished (no ``finish_reply`` ever ran)."""
        return self.partial and self.finished_at is None

    def to_json(self) -> dict[str, Any]:
        """Every field, in order, with ``model_id`` named ``model`` (as a chat's)."""
        return {("model" if k == "model_id" else k): v for k, v in dataclasses.asdict(self).items()}


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
        parent_id=row["parent_id"],
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


def mend_branches(conn: sqlite3.Connection, *, had_branches: bool) -> None:
    """After a repair copied the messages in: chain them one after another as the migration does when the
    old database had no branches, and point a reference to a message that was lost at none (a parent) or at
    the chat's newest message (its head), so no message is left out of its chat."""
    if not had_branches:
        conn.execute(LINEAR_PARENTS)
    conn.execute("UPDATE messages SET parent_id = NULL WHERE parent_id NOT IN (SELECT id FROM messages)")
    conn.execute(f"{NEWEST_HEADS} WHERE head_id IS NULL OR head_id NOT IN (SELECT id FROM messages)")


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

    # -- messages ---------------------------------------------------------------------------------
    def messages(self, chat_id: int, upto: int | None = None) -> list[StoredMessage]:
        """The branch the chat shows: from its first message down to its head (or to ``upto``), each the
        parent of the next."""
        head = upto if upto is not None else self._head(chat_id)
        if head is None:
            return []
        # parent_id < id always holds (a parent exists before its child): a damaged row cannot make a loop
        rows = self.conn.execute(
            "WITH RECURSIVE branch(id, depth) AS (SELECT ?, 0 UNION ALL"
            " SELECT m.parent_id, b.depth + 1 FROM messages m JOIN branch b ON m.id = b.id"
            " WHERE m.parent_id IS NOT NULL AND m.parent_id < m.id)"
            " SELECT m.* FROM branch b JOIN messages m ON m.id = b.id WHERE m.chat_id = ? ORDER BY b.depth DESC",
            (head, chat_id),
        )
        return [_message(r) for r in rows]

    def all_messages(self, chat_id: int) -> list[StoredMessage]:
        """Every message of every branch, oldest first (``parent_id`` says where each belongs)."""
        rows = self.conn.execute("SELECT * FROM messages WHERE chat_id = ? ORDER BY id", (chat_id,))
        return [_message(r) for r in rows]

    def _head(self, chat_id: int) -> int | None:
        row = self.conn.execute(
            "SELECT COALESCE(c.head_id, (SELECT MAX(m.id) FROM messages m WHERE m.chat_id = c.id)) AS head"
            " FROM chats c WHERE c.id = ?",
            (chat_id,),
        ).fetchone()
        return row["head"] if row else None

    def _children(self, chat_id: int) -> dict[int | None, list[int]]:
        """Each message's children (None: the chat's first messages), oldest first."""
        children: dict[int | None, list[int]] = {}
        for row in self.conn.execute("SELECT id, parent_id FROM messages WHERE chat_id = ? ORDER BY id", (chat_id,)):
            children.setdefault(row["parent_id"], []).append(row["id"])
        return children

    def alternatives(self, chat_id: int) -> dict[int, tuple[int, int]]:
        """For each message of the shown branch that has siblings (regenerated, or edited): its place among
        them and how many there are, as (2, 3) for "‹ 2/3 ›"."""
        children = self._children(chat_id)
        out = {}
        for m in self.messages(chat_id):
            siblings = children.get(m.parent_id, [])
            if len(siblings) > 1:
                out[m.id] = (siblings.index(m.id) + 1, len(siblings))
        return out

    def set_head(self, chat_id: int, message_id: int | None) -> None:
        """Make ``message_id`` (a message of the chat, or None: before its first) the last one shown, so the
        next message follows it."""
        if message_id is not None and self.get_message(message_id).chat_id != chat_id:
            raise AssistantError(f"message {message_id} is not in chat {chat_id}")
        with self._write() as conn:
            conn.execute("UPDATE chats SET head_id = ? WHERE id = ?", (message_id, chat_id))

    def switch(self, chat_id: int, message_id: int) -> None:
        """Show the branch through ``message_id``, down its newest messages to the end."""
        children = self._children(chat_id)
        if message_id not in {i for ids in children.values() for i in ids}:
            raise AssistantError(f"message {message_id} is not in chat {chat_id}")
        leaf = message_id
        while children.get(leaf):
            leaf = children[leaf][-1]
        self.set_head(chat_id, leaf)

    def step_branch(self, chat_id: int, message_id: int, step: int) -> int | None:
        """Show the sibling ``step`` places from ``message_id`` (-1: the previous alternative, 1: the next);
        returns it, or None when there is none that way."""
        siblings = self._children(chat_id).get(self.get_message(message_id).parent_id, [])
        if message_id not in siblings:
            return None
        at = siblings.index(message_id) + step
        if not 0 <= at < len(siblings):
            return None
        self.switch(chat_id, siblings[at])
        return siblings[at]

    def get_message(self, message_id: int) -> StoredMessage:
        if not _storable(message_id):
            raise AssistantError(f"no message {message_id}")
        row = self.conn.execute("SELECT * FROM messages WHERE id = ?", (message_id,)).fetchone()
        if row is None:
            raise AssistantError(f"no message {message_id}")
        return _message(row)

    def add_message(
        self,
        chat_id: int,
        role: Role,
        content: str,
        *,
        model_id: str | None = None,
        parent: int | Literal["head"] | None = HEAD,
    ) -> StoredMessage:
        """Store a finished message (the user's, or an assistant reply written whole) after ``parent`` (by
        default the chat's head; None: as a first message), and show it. Commits at once."""
        now = time.time()
        chat = self.get_chat(chat_id)
        parent_id = self._head(chat_id) if isinstance(parent, str) else parent
        with self._write() as conn:
            cur = conn.execute(
                "INSERT INTO messages (chat_id, role, content, partial, model_id, created_at, finished_at, parent_id)"
                " VALUES (?, ?, ?, 0, ?, ?, ?, ?)",
                (chat_id, role, content, model_id, now, now, parent_id),
            )
            if not chat.title and role == "user":
                conn.execute("UPDATE chats SET title = ? WHERE id = ?", (title_from(content), chat_id))
            conn.execute("UPDATE chats SET updated_at = ?, head_id = ? WHERE id = ?", (now, cur.lastrowid, chat_id))
        assert cur.lastrowid is not None
        return self.get_message(cur.lastrowid)

    def start_reply(self, chat_id: int, model_id: str | None, *, parent: int | Literal["head"] | None = HEAD) -> int:
        """A new, empty, partial assistant row after ``parent`` (as ``add_message``), shown; returns its id
        for ``update_reply``/``finish_reply``."""
        now = time.time()
        self.get_chat(chat_id)
        parent_id = self._head(chat_id) if isinstance(parent, str) else parent
        with self._write() as conn:
            cur = conn.execute(
                "INSERT INTO messages (chat_id, role, content, partial, model_id, created_at, parent_id)"
                " VALUES (?, 'assistant', '', 1, ?, ?, ?)",
                (chat_id, model_id, now, parent_id),
            )
            conn.execute("UPDATE chats SET updated_at = ?, head_id = ? WHERE id = ?", (now, cur.lastrowid, chat_id))
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
        """Delete a message and what follows it on its branches. A chat that showed it shows the newest
        sibling left in its place (an empty regenerated reply gone: the reply it was to replace), else the
        message before it."""
        found = self.conn.execute("SELECT chat_id, parent_id FROM messages WHERE id = ?", (message_id,)).fetchone()
        if found is None:
            return
        shown = {m.id for m in self.messages(found["chat_id"])}
        with self._write() as conn:
            conn.execute("DELETE FROM messages WHERE id = ?", (message_id,))
        if message_id in shown:
            siblings = self._children(found["chat_id"]).get(found["parent_id"], [])
            if siblings:
                self.switch(found["chat_id"], siblings[-1])
            else:
                self.set_head(found["chat_id"], found["parent_id"])
