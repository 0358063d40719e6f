"""ChatSession with the real SmolLM2: storage order, progressive saves, cancel/interrupt, engine cache."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant.chat import ChatOptions, Chunk
from assistant.engine import LlamaEngine
from assistant.errors import AssistantError
from assistant.history import History
from assistant.llama import llama_thread
from assistant.session import ChatSession

from conftest import SMOL

GREEDY = {"temperature": 0.0, "max_tokens": 24, "seed": 1}


@pytest.fixture(scope="module")
def smol(starter_files: dict[str, Path]) -> Iterator[LlamaEngine]:
    engine = LlamaEngine(starter_files[SMOL], n_ctx=1024, n_threads=2, model_id=SMOL)
    yield engine
    engine.close()


class Factory:
    """Hands out the module's engine and counts loads (the session must cache engines)."""

    def __init__(self, engine: LlamaEngine) -> None:
        self.engine = engine
        self.loads: list[str] = []

    def __call__(self, model_id: str) -> LlamaEngine:
        self.loads.append(model_id)
        return self.engine


@pytest.fixture
def session(smol: LlamaEngine) -> Iterator[ChatSession]:
    s = ChatSession(History(), Factory(smol))
    yield s
    s.history.close()  # not s.close(): the module's engine is shared by the tests


@pytest.mark.slow
def test_send_stores_then_streams_then_finishes(session: ChatSession) -> None:
    history = session.history
    chat = session.new_chat(model_id=SMOL, options=GREEDY)
    turn = session.send(chat.id, "What is the capital of France?")
    stored = history.messages(chat.id)
    assert [(m.role, m.content) for m in stored] == [("user", "What is the capital of France?")]

    texts: list[str] = []
    for chunk in turn:
        if chunk.text and not texts:
            rows = history.messages(chat.id)
            assert [m.role for m in rows] == ["user", "assistant"]
            assert rows[1].partial, "the reply row exists, partial, while it streams"
        texts.append(chunk.text)

    assert turn.text == "".join(texts) and turn.text
    assert turn.stats is not None and turn.stats.finish_reason in ("stop", "length")
    reply = history.messages(chat.id)[-1]
    assert turn.reply is not None and reply.id == turn.reply.id == turn.reply_id
    assert (reply.content, reply.partial, reply.model_id) == (turn.text, False, SMOL)
    assert reply.completion_tokens == turn.stats.completion_tokens and reply.finish_reason == turn.stats.finish_reason
    assert reply.ttft_ms and reply.tokens_per_second and reply.finished_at
    assert history.get_chat(chat.id).title == "What is the capital of France?"


@pytest.mark.slow
def test_reply_is_saved_while_it_streams(smol: LlamaEngine) -> None:
    session = ChatSession(History(), Factory(smol), flush_tokens=2, flush_seconds=60)
    reader = History()  # another connection, as another process would see the database
    try:
        chat = session.new_chat(model_id=SMOL, options={**GREEDY, "max_tokens": 40})
        turn = session.send(chat.id, "Write a short poem about the sea.")
        seen: list[str] = []
        text = ""
        for chunk in turn:
            text += chunk.text
            if chunk.text and turn.reply_id is not None:
                seen.append(reader.get_message(turn.reply_id).content)
        saved_mid_stream = [s for s in seen if s and s != turn.text]
        assert saved_mid_stream, "some text was committed before the reply finished"
        assert all(turn.text.startswith(s) for s in seen)
    finally:
        reader.close()
        session.history.close()


@pytest.mark.slow
def test_cancel_keeps_the_partial_reply(session: ChatSession) -> None:
    chat = session.new_chat(model_id=SMOL, options={**GREEDY, "max_tokens": 200})
    turn = session.send(chat.id, "Write a long story about a dragon.")
    n = 0
    for chunk in turn:
        if chunk.text:
            n += 1
            if n == 3:
                turn.cancel()
    assert turn.finish_reason == "cancelled"
    reply = session.history.messages(chat.id)[-1]
    assert reply.role == "assistant" and reply.partial and not reply.interrupted
    assert reply.content == turn.text and reply.content.strip()
    assert reply.finish_reason == "cancelled"


@pytest.mark.slow
def test_interrupt_in_the_consumer_keeps_the_partial_reply(session: ChatSession) -> None:
    """Ctrl+C (KeyboardInterrupt) raised while printing a chunk: the reply so far is kept, partial."""
    chat = session.new_chat(model_id=SMOL, options={**GREEDY, "max_tokens": 200})
    turn = session.send(chat.id, "Write a long story about a dragon.")
    streamed = ""
    with pytest.raises(KeyboardInterrupt):
        for chunk in turn:
            streamed += chunk.text
            if len(streamed) > 10:
                raise KeyboardInterrupt
    reply = session.history.messages(chat.id)[-1]
    assert reply.role == "assistant" and reply.partial
    assert reply.content == streamed and reply.content


@pytest.mark.slow
def test_run_delivers_the_reply_on_the_engine_thread(session: ChatSession) -> None:
    """Turn.run: the same reply as iterating (greedy), every chunk handed over on llama.cpp's own thread,
    and an error raised by the callback stops generation and keeps what was said, partial."""
    chat = session.new_chat(model_id=SMOL, options={**GREEDY, "max_tokens": 24})
    iterated = "".join(chunk.text for chunk in session.send(chat.id, "Name three colours."))
    other = session.new_chat(model_id=SMOL, options={**GREEDY, "max_tokens": 24})
    threads: set[int] = set()
    pieces: list[str] = []

    def on_chunk(chunk: Chunk) -> None:
        threads.add(threading.get_ident())
        pieces.append(chunk.text)

    turn = session.send(other.id, "Name three colours.")
    turn.run(on_chunk)
    assert "".join(pieces) == turn.text == iterated
    assert threads == {llama_thread._ident} and threading.get_ident() not in threads
    assert session.history.messages(other.id)[-1].content == turn.text

    def fail_after_some(chunk: Chunk) -> None:
        if len(failing.text) > 5:
            raise RuntimeError("display went away")

    failing = session.send(other.id, "Name three animals.")
    with pytest.raises(RuntimeError, match="display went away"):
        failing.run(fail_after_some)
    reply = session.history.messages(other.id)[-1]
    assert reply.role == "assistant" and reply.partial and reply.content == failing.text


@pytest.mark.slow
def test_follow_up_sees_history_and_reuses_cache(session: ChatSession) -> None:
    chat = session.new_chat(model_id=SMOL, system_prompt="Answer in one word.", options=GREEDY)
    first = session.send(chat.id, "Name a colour.")
    list(first)
    second = session.send(chat.id, "Name another one.")
    list(second)
    messages = session.build_messages(chat.id)
    assert [m.role for m in messages] == ["system", "user", "assistant", "user", "assistant"]
    assert messages[0].content == "Answer in one word." and messages[2].content == first.text
    assert first.stats is not None and second.stats is not None
    assert second.stats.cached_tokens >= first.stats.prompt_tokens


@pytest.mark.slow
def test_engine_loaded_once_and_shared_by_chats(smol: LlamaEngine) -> None:
    factory = Factory(smol)
    session = ChatSession(History(), factory)
    try:
        for _ in range(2):
            chat = session.new_chat(model_id=SMOL, options={**GREEDY, "max_tokens": 4})
            list(session.send(chat.id, "Hi"))
        assert factory.loads == [SMOL]
        assert session.loaded() == [SMOL]
    finally:
        session.history.close()


def test_messages_for_the_model(smol: LlamaEngine) -> None:
    """Partial replies are kept as assistant turns; same-role neighbours are joined; empty rows skipped."""
    session = ChatSession(History(), Factory(smol))
    history = session.history
    chat = session.new_chat(model_id=SMOL, system_prompt="Be brief.")
    history.add_message(chat.id, "user", "one")
    partial = history.start_reply(chat.id, SMOL)
    history.update_reply(partial, "half an answer")  # e.g. killed mid-reply
    history.add_message(chat.id, "user", "two")
    history.add_message(chat.id, "user", "three")  # the reply to "two" failed before any text
    history.start_reply(chat.id, SMOL)  # an empty partial row
    messages = session.build_messages(chat.id)
    assert [(m.role, m.content) for m in messages] == [
        ("system", "Be brief."),
        ("user", "one"),
        ("assistant", "half an answer"),
        ("user", "two\n\nthree"),
    ]
    no_system = session.new_chat(model_id=SMOL, system_prompt="")
    history.add_message(no_system.id, "user", "hi")
    assert [m.role for m in session.build_messages(no_system.id)] == ["user"]
    history.close()


def test_options_layering_and_validation(smol: LlamaEngine) -> None:
    session = ChatSession(History(), Factory(smol))
    chat = session.new_chat(model_id=SMOL, options={"temperature": 0.1})
    opts = session.chat_options(chat, {"max_tokens": 7})
    defaults = session.settings.chat
    assert opts == ChatOptions(temperature=0.1, top_p=defaults.top_p, max_tokens=7, seed=defaults.seed)
    with pytest.raises(AssistantError, match="bad chat options"):
        session.new_chat(options={"temprature": 1})
    with pytest.raises(AssistantError, match="empty message"):
        session.send(chat.id, "   ")
    assert session.history.messages(chat.id) == []
    session.history.close()


@pytest.mark.slow
def test_default_factory_loads_from_the_store(installed_models: dict[str, object]) -> None:
    session = ChatSession()
    try:
        by_family = session.engine("smollm2-135m-instruct")
        assert by_family.model_id == SMOL
        assert session.engine(SMOL) is by_family, "an alias must not load the model twice"
        chat = session.new_chat(options={**GREEDY, "max_tokens": 4})
        assert chat.model_id == SMOL  # the configured default
        turn = session.send(chat.id, "Hi")
        assert "".join(c.text for c in turn)
        assert turn.model_id == SMOL

        missing = session.new_chat(model_id="qwen2.5-0.5b-instruct:q4_k_m")
        turn = session.send(missing.id, "Hello?")
        with pytest.raises(AssistantError, match="not installed"):
            list(turn)
        rows = session.history.messages(missing.id)
        assert [(m.role, m.content) for m in rows] == [("user", "Hello?")], "what the user typed is kept"
    finally:
        session.close()
