"""Regenerate, edit and branches: every reply and message kept, the chat showing (and continuing) one branch.

The storage is the real SQLite history; the model is scripted (what is tested is which messages it is given
and where its reply is stored). ``tests/integration/test_chat_branches.py`` does the same with SmolLM2.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant import db
from assistant.errors import AssistantError
from assistant.history import MIGRATIONS, History
from assistant.session import ChatSession, Turn

from helpers.ui import ScriptedEngine


@pytest.fixture
def engine() -> ScriptedEngine:
    return ScriptedEngine()


@pytest.fixture
def session(engine: ScriptedEngine) -> Iterator[ChatSession]:
    s = ChatSession(History(), lambda model_id: engine)
    yield s
    s.close()


def _say(engine: ScriptedEngine, turn: Turn, reply: str) -> None:
    engine.enqueue(reply)
    for _ in turn:
        pass


def _shown(session: ChatSession, chat_id: int) -> list[str]:
    return [m.content for m in session.history.messages(chat_id)]


def test_regenerate_keeps_the_old_reply_as_an_alternative(session: ChatSession, engine: ScriptedEngine) -> None:
    chat = session.new_chat(system_prompt="")
    _say(engine, session.send(chat.id, "Name a river."), "The Nile.")
    _say(engine, session.regenerate(chat.id), "The Danube.")
    assert _shown(session, chat.id) == ["Name a river.", "The Danube."]
    assert [m.content for m in engine.seen[1]] == ["Name a river."]  # the old reply is not in the prompt
    history = session.history
    new = history.messages(chat.id)[-1]
    assert history.alternatives(chat.id) == {new.id: (2, 2)}
    old = history.step_branch(chat.id, new.id, -1)
    assert old is not None and _shown(session, chat.id) == ["Name a river.", "The Nile."]
    assert history.alternatives(chat.id) == {old: (1, 2)}
    assert history.step_branch(chat.id, old, -1) is None  # no third one before the first
    assert history.step_branch(chat.id, old, 1) == new.id
    # the branch shown is the one continued
    history.step_branch(chat.id, new.id, -1)
    _say(engine, session.send(chat.id, "Longer?"), "The Nile is longer.")
    assert _shown(session, chat.id) == ["Name a river.", "The Nile.", "Longer?", "The Nile is longer."]
    assert [m.content for m in engine.seen[-1]] == ["Name a river.", "The Nile.", "Longer?"]
    assert len(history.all_messages(chat.id)) == 5


def test_editing_message_1_of_3_makes_a_branch_and_the_other_stays_reachable(
    session: ChatSession, engine: ScriptedEngine
) -> None:
    chat = session.new_chat(system_prompt="")
    for n in (1, 2, 3):
        _say(engine, session.send(chat.id, f"question {n}"), f"answer {n}")
    original = session.history.messages(chat.id)
    first = original[0]
    _say(engine, session.edit(chat.id, first.id, "question one, fixed"), "answer one")
    assert _shown(session, chat.id) == ["question one, fixed", "answer one"]
    assert [m.content for m in engine.seen[-1]] == ["question one, fixed"]  # nothing of the old branch
    edited = session.history.messages(chat.id)[0]
    assert edited.parent_id is None and session.history.alternatives(chat.id) == {edited.id: (2, 2)}
    assert session.history.get_chat(chat.id).title == "question 1"  # the title stays the chat's

    assert session.history.step_branch(chat.id, edited.id, -1) == first.id
    assert session.history.messages(chat.id) == original  # the whole old branch, down to its end


def test_editing_a_later_message_keeps_what_came_before(session: ChatSession, engine: ScriptedEngine) -> None:
    chat = session.new_chat(system_prompt="")
    for n in (1, 2):
        _say(engine, session.send(chat.id, f"question {n}"), f"answer {n}")
    second = session.history.messages(chat.id)[2]
    _say(engine, session.edit(chat.id, second.id, "question two?"), "answer two")
    assert _shown(session, chat.id) == ["question 1", "answer 1", "question two?", "answer two"]
    assert [m.content for m in engine.seen[-1]] == ["question 1", "answer 1", "question two?"]


def test_a_regeneration_that_says_nothing_leaves_the_old_reply_shown(
    session: ChatSession, engine: ScriptedEngine
) -> None:
    chat = session.new_chat(system_prompt="")
    _say(engine, session.send(chat.id, "Hello"), "Hi there.")
    turn = session.regenerate(chat.id)
    turn.cancel()
    engine.enqueue("never said")
    for _ in turn:
        pass
    assert _shown(session, chat.id) == ["Hello", "Hi there."]
    assert session.history.alternatives(chat.id) == {}


def test_regenerate_and_edit_refuse_what_they_cannot_do(session: ChatSession, engine: ScriptedEngine) -> None:
    chat = session.new_chat(system_prompt="")
    with pytest.raises(AssistantError, match="no message to answer"):
        session.regenerate(chat.id)
    _say(engine, session.send(chat.id, "Hello"), "Hi there.")
    reply = session.history.messages(chat.id)[-1]
    with pytest.raises(AssistantError, match="not one of yours"):
        session.edit(chat.id, reply.id, "changed")
    other = session.new_chat(system_prompt="")
    with pytest.raises(AssistantError, match="not one of yours"):
        session.edit(other.id, reply.id - 1, "changed")
    with pytest.raises(AssistantError, match="empty"):
        session.edit(chat.id, reply.id - 1, "  ")
    assert len(session.history.all_messages(chat.id)) == 2  # nothing stored by a refusal


def test_a_reply_that_failed_is_answered_by_regenerate(session: ChatSession, engine: ScriptedEngine) -> None:
    chat = session.new_chat(system_prompt="")
    session.history.add_message(chat.id, "user", "unanswered")  # the app quit before the model answered
    _say(engine, session.regenerate(chat.id), "Answered.")
    assert _shown(session, chat.id) == ["unanswered", "Answered."]


def _release_database(path: Path) -> Path:
    """A database as the last release made it (history migrations 001 and 002): one chat of four messages."""
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
    for name, sql in MIGRATIONS:
        if name in ("history_001_chats", "history_002_messages_fts"):
            old.executescript(str(sql))
            old.execute("INSERT INTO _migrations VALUES (?, 0)", (name,))
    old.execute("INSERT INTO chats (title, created_at, updated_at) VALUES ('old chat', 1, 1)")
    for n, (role, text) in enumerate([("user", "one"), ("assistant", "two"), ("user", "three"), ("assistant", "four")]):
        old.execute(
            "INSERT INTO messages (chat_id, role, content, created_at, finished_at) VALUES (1, ?, ?, ?, ?)",
            (role, text, n, n),
        )
    old.commit()
    old.close()
    return path


def test_an_old_database_upgrades_in_place_as_one_branch(tmp_path: Path) -> None:
    """Every message kept, in order, the newest shown, and new messages follow it."""
    conn = db.connect(_release_database(tmp_path / "release.db"))
    history = History(conn)
    assert [m.content for m in history.messages(1)] == ["one", "two", "three", "four"]
    assert [m.parent_id for m in history.messages(1)] == [None, 1, 2, 3]
    assert history.alternatives(1) == {}
    history.add_message(1, "user", "five")
    assert [m.content for m in history.messages(1)][-2:] == ["four", "five"]
    conn.close()


def test_repair_chains_an_old_database_and_keeps_a_branched_one_whole(tmp_path: Path) -> None:
    """``doctor --repair`` copies rows into a fresh database: an old one's messages come out as one branch,
    and a branched one whose shown reply was lost shows the newest message left, nothing dropped."""
    from assistant import doctor

    fresh = tmp_path / "fresh.db"
    db.connect(fresh).close()
    doctor._merge(_release_database(tmp_path / "release.db"), fresh)
    conn = db.connect(fresh)
    assert [m.content for m in History(conn).messages(1)] == ["one", "two", "three", "four"]
    conn.close()

    branched = tmp_path / "branched.db"
    conn = db.connect(branched)
    history = History(conn)
    chat = history.create_chat(title="t")
    question = history.add_message(chat.id, "user", "q")
    history.add_message(chat.id, "assistant", "first answer")
    shown = history.add_message(chat.id, "assistant", "second answer", parent=question.id)
    conn.execute("PRAGMA foreign_keys=OFF")
    conn.execute("DELETE FROM messages WHERE id = ?", (shown.id,))  # a page of the damaged file lost it
    conn.execute("UPDATE chats SET head_id = ? WHERE id = ?", (shown.id, chat.id))
    conn.commit()
    conn.close()
    again = tmp_path / "again.db"
    db.connect(again).close()
    counts = doctor._merge(branched, again)
    assert counts["chats"] == 1 and counts["messages"] == 2
    conn = db.connect(again)
    assert [m.content for m in History(conn).messages(chat.id)] == ["q", "first answer"]
    conn.close()


def test_deleting_a_chat_removes_every_branch(session: ChatSession, engine: ScriptedEngine) -> None:
    chat = session.new_chat(system_prompt="")
    _say(engine, session.send(chat.id, "Hello"), "Hi.")
    _say(engine, session.regenerate(chat.id), "Hey.")
    session.history.delete(chat.id)
    left = session.history.conn.execute("SELECT COUNT(*) FROM messages WHERE chat_id = ?", (chat.id,)).fetchone()[0]
    assert left == 0
