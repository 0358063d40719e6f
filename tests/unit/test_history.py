"""Chat history: CRUD, search, export, the partial-reply lifecycle, and use from several threads."""

from __future__ import annotations

import queue
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant import chat_export, db
from assistant.chat import Stats
from assistant.chat_search import search
from assistant.errors import AssistantError
from assistant.history import History, title_from


@pytest.fixture
def history() -> Iterator[History]:
    h = History()
    yield h
    h.close()


def test_migrations_recorded(history: History) -> None:
    names = {r[0] for r in history.conn.execute("SELECT name FROM _migrations")}
    assert "history_001_chats" in names
    assert db.migrate(history.conn) == []  # a second open applies nothing


def test_create_get_list_rename_delete(history: History) -> None:
    a = history.create_chat(model_id="m:a", system_prompt="be brief", options={"temperature": 0.2})
    b = history.create_chat(title="Second")
    assert a.id != b.id
    got = history.get_chat(a.id)
    assert (got.model_id, got.system_prompt, got.options) == ("m:a", "be brief", {"temperature": 0.2})

    history.add_message(a.id, "user", "first question\nwith a second line")
    assert history.get_chat(a.id).title == "first question"  # titled from the first user message
    assert [c.id for c in history.list_chats()] == [a.id, b.id]  # most recent activity first
    assert history.list_chats()[0].message_count == 1
    assert [c.id for c in history.list_chats(limit=1)] == [a.id]

    assert history.rename(b.id, "  Renamed  ").title == "Renamed"
    history.add_message(b.id, "user", "does not retitle a titled chat")
    assert history.get_chat(b.id).title == "Renamed"

    history.delete(a.id)
    assert history.find_chat(a.id) is None
    assert history.messages(a.id) == []  # cascaded
    with pytest.raises(AssistantError, match="no chat"):
        history.get_chat(a.id)
    with pytest.raises(AssistantError, match="no chat"):
        history.rename(9999, "x")


def test_ids_not_reused_after_delete(history: History) -> None:
    first = history.create_chat()
    history.delete(first.id)
    assert history.create_chat().id > first.id


def test_update_chat_only_given_fields(history: History) -> None:
    chat = history.create_chat(model_id="m:a", system_prompt="s", options={"seed": 1})
    updated = history.update_chat(chat.id, options={"seed": 2, "top_p": 0.5})
    assert (updated.model_id, updated.system_prompt, updated.options) == ("m:a", "s", {"seed": 2, "top_p": 0.5})


def test_reply_lifecycle(history: History) -> None:
    chat = history.create_chat()
    user = history.add_message(chat.id, "user", "hi")
    assert not user.partial and user.finished_at is not None

    reply_id = history.start_reply(chat.id, "m:a")
    row = history.get_message(reply_id)
    assert row.partial and row.interrupted and row.content == "" and row.model_id == "m:a"

    history.update_reply(reply_id, "Hel")
    assert history.get_message(reply_id).content == "Hel"

    stats = Stats(prompt_tokens=10, completion_tokens=3, ttft_ms=12.5, tokens_per_second=40.0)
    done = history.finish_reply(reply_id, "Hello", stats)
    assert (done.content, done.partial, done.interrupted) == ("Hello", False, False)
    assert (done.prompt_tokens, done.completion_tokens, done.ttft_ms, done.tokens_per_second) == (10, 3, 12.5, 40.0)
    assert done.finish_reason == "stop"

    cancelled_id = history.start_reply(chat.id, "m:a")
    cancelled = history.finish_reply(cancelled_id, "Partly", Stats(finish_reason="cancelled"), partial=True)
    assert cancelled.partial and not cancelled.interrupted and cancelled.finish_reason == "cancelled"
    assert [m.role for m in history.messages(chat.id)] == ["user", "assistant", "assistant"]


def test_interrupted_reply_survives_reopen(history: History) -> None:
    """A reply whose writer vanished (kill -9) stays, with its text, marked partial and interrupted."""
    chat = history.create_chat()
    history.add_message(chat.id, "user", "tell me a story")
    reply_id = history.start_reply(chat.id, "m:a")
    history.update_reply(reply_id, "Once upon a time")
    history.conn.close()  # the "process" is gone without finish_reply

    reopened = History()
    try:
        reply = reopened.get_message(reply_id)
        assert (reply.content, reply.partial, reply.interrupted) == ("Once upon a time", True, True)
        assert [m.role for m in reopened.messages(chat.id)] == ["user", "assistant"]
    finally:
        reopened.close()


def test_search_titles_and_contents(history: History) -> None:
    rivers = history.create_chat(title="Rivers of Europe")
    cooking = history.create_chat()
    history.add_message(cooking.id, "user", "How long do I boil an egg?")
    history.add_message(cooking.id, "assistant", "About 7 minutes for a 100% jammy yolk.")
    other = history.create_chat(title="xyz")

    assert [h.chat.id for h in search(history, "rivers")] == [rivers.id]  # case-insensitive, title match
    assert search(history, "rivers")[0].message_id is None
    hits = search(history, "JAMMY")
    assert [h.chat.id for h in hits] == [cooking.id]
    assert hits[0].message_id is not None and "jammy" in hits[0].snippet
    assert [h.chat.id for h in search(history, "100%")] == [cooking.id]  # % is literal, not a wildcard
    assert search(history, "1_0") == []  # so is _
    assert search(history, "   ") == []
    assert other.id not in {h.chat.id for h in search(history, "e")}


def test_export_markdown(history: History) -> None:
    chat = history.create_chat(model_id="m:a", system_prompt="Be brief.", options={"temperature": 0})
    history.add_message(chat.id, "user", "Name a river.")
    reply_id = history.start_reply(chat.id, "m:a")
    history.finish_reply(reply_id, "The Danube.", Stats(finish_reason="cancelled"), partial=True)
    text = chat_export.export_markdown(history, chat.id)
    assert text.startswith("# Name a river.\n")
    assert "- model: m:a" in text and "temperature=0" in text
    assert "## System\n\nBe brief." in text
    assert "## User\n\nName a river." in text
    assert "## Assistant (partial)\n\nThe Danube." in text
    assert text.endswith("\n")


def test_title_from() -> None:
    assert title_from("  \n  hello there \n more") == "hello there"
    long = "word " * 40
    title = title_from(long)
    assert len(title) <= 61 and title.endswith("…") and not title.startswith(" ")


def test_threads_get_their_own_connection(history: History) -> None:
    """A TUI streams in a worker thread while the UI thread reads: both through one History, at the same
    time. First in lockstep (the UI thread reads each update while the writer is still running and
    waiting), then free-running (reads race the writes and only ever see a whole, newer update)."""
    chat = history.create_chat()
    reply_id = history.start_reply(chat.id, "m:a")
    errors: list[BaseException] = []
    wrote: queue.Queue[int] = queue.Queue()
    read: queue.Queue[int] = queue.Queue()
    writer_conn: list[sqlite3.Connection] = []
    lockstep, free = 20, 300

    def writer() -> None:
        try:
            writer_conn.append(history.conn)
            for i in range(1, lockstep + 1):
                history.update_reply(reply_id, "x" * i)
                wrote.put(i)
                assert read.get(timeout=30) == i  # the reader saw it before the next write
            for i in range(lockstep + 1, free + 1):
                history.update_reply(reply_id, "x" * i)
            history.finish_reply(reply_id, "done", None)
        except BaseException as exc:
            errors.append(exc)
            wrote.put(-1)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for _ in range(lockstep):
            i = wrote.get(timeout=30)
            assert i > 0, errors
            assert thread.is_alive()
            assert history.get_message(reply_id).content == "x" * i
            read.put(i)
        seen = [lockstep]
        while (content := history.get_message(reply_id).content) != "done":
            assert content == "x" * len(content) and len(content) >= seen[-1], content[:20]
            seen.append(len(content))
            assert errors == [] and (thread.is_alive() or history.get_message(reply_id).content == "done")
    finally:
        thread.join(timeout=60)
    assert errors == []
    assert writer_conn and writer_conn[0] is not history.conn  # each thread its own connection
    assert history.get_message(reply_id).content == "done" and not history.get_message(reply_id).partial


def test_passed_connection_is_not_closed(history: History) -> None:
    conn = db.connect()
    h = History(conn)
    h.create_chat()
    h.close()
    assert conn.execute("SELECT COUNT(*) FROM chats").fetchone()[0] == 1
    conn.close()
    with pytest.raises(sqlite3.ProgrammingError):
        conn.execute("SELECT 1")


def test_close_closes_the_connections_of_other_threads() -> None:
    """Replies are stored from llama.cpp's thread, which outlives any History: close() must close that
    thread's connection too, not leave it open until the process exits."""
    history = History()
    opened: list[sqlite3.Connection] = []
    worker = threading.Thread(target=lambda: opened.append(history.conn))
    worker.start()
    worker.join()
    history.close()
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        opened[0].execute("SELECT 1")


def test_full_text_search_finds_words_and_prefixes_and_follows_edits(history: History) -> None:
    chat = history.create_chat(title="geography")
    history.add_message(chat.id, "user", "Which river flows through Vienna and Budapest?")
    reply = history.start_reply(chat.id, "m:a")  # a reply is written as it streams: the index follows its updates
    assert search(history, "danube") == []
    history.finish_reply(reply, "The Danube does; it crosses ten countries.", Stats(), partial=False)
    hits = search(history, "danu")  # a prefix of a word
    assert [(h.chat.id, h.snippet) for h in hits] == [(chat.id, "The Danube does; it crosses ten countries.")]
    assert [h.chat.id for h in search(history, "vienna budapest")] == [chat.id]  # every word, in any order
    assert search(history, "vienna paris") == []
    # FTS5 syntax in the query is words, not operators: OR is one more word to find, quotes are no phrase
    assert search(history, "danube OR nowhere") == [] and search(history, '"danube" NOT') == []
    assert [h.chat.id for h in search(history, '"ten danube"')] == [chat.id]
    history.delete(chat.id)
    assert search(history, "danube") == []  # deleting the chat (its messages by cascade) leaves the index


def test_the_search_index_is_built_for_a_database_made_before_it(tmp_path: Path) -> None:
    """An old database (before history_002) upgrades in place: the migration indexes what it holds."""
    from assistant import db

    path = tmp_path / "old.db"
    conn = db.connect(path)
    old = History(conn)
    chat = old.create_chat(title="t")
    old.add_message(chat.id, "user", "The Danube is long.")
    for name in ("messages_fts_insert", "messages_fts_delete", "messages_fts_update"):
        conn.execute(f"DROP TRIGGER {name}")
    conn.execute("DROP TABLE messages_fts")
    conn.execute("DELETE FROM _migrations WHERE name = 'history_002_messages_fts'")
    conn.close()
    again = db.connect(path)
    assert [h.chat.id for h in search(History(again), "danube")] == [chat.id]
    again.close()
