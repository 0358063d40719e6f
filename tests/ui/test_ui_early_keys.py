"""Keys are kept and acted on in the order typed: while the app is starting (before the model is loaded),
in a burst (a paste, tmux), and the README's keys (Shift+Enter, Ctrl+J, Ctrl+P) in the whole app.

For the start-up tests the model load is scripted and slow: the engine factory blocks until the test lets it
return, so the keys are pressed while the app is still starting, before the model is there.
"""

from __future__ import annotations

import threading

from textual import events
from textual.command import CommandPalette
from textual.widgets import OptionList

from assistant.errors import AssistantError
from assistant.history import History
from assistant.ui.app import AssistantApp
from assistant.ui.widgets.chat_log import ChatLog, ReplyTurn, UserTurn
from assistant.ui.widgets.prompt_bar import PromptBar
from assistant.ui.widgets.status_bar import StatusBar

from helpers.ui import ScriptedEngine, wait_until


class SlowLoad:
    """An engine factory that returns only once ``release()`` is called (or fails then, if ``error``)."""

    def __init__(self, engine: ScriptedEngine, error: Exception | None = None) -> None:
        self.engine = engine
        self.error = error
        self.started = threading.Event()
        self._go = threading.Event()

    def __call__(self, model_id: str) -> ScriptedEngine:
        self.started.set()
        if not self._go.wait(60):
            raise AssertionError("the test never released the model load")
        if self.error is not None:
            raise self.error
        return self.engine

    def release(self) -> None:
        self._go.set()


def stored() -> list[tuple[str, str]]:
    history = History()
    try:
        return [(m.role, m.content) for c in history.list_chats() for m in history.messages(c.id)]
    finally:
        history.close()


def chat_count() -> int:
    history = History()
    try:
        return len(history.list_chats())
    finally:
        history.close()


async def test_enter_pressed_while_starting_sends_once_the_model_loads(engine: ScriptedEngine) -> None:
    engine.enqueue("Paris", ".")
    load = SlowLoad(engine)
    app = AssistantApp(engine_factory=load)
    async with app.run_test(size=(120, 40)) as pilot:
        prompt = app.query_one(PromptBar)
        assert app.engine is None  # the app is still starting: settings not even read yet
        await pilot.press(*"What is the capital of France?", "enter")
        # Typed after Enter, still before the load: these stay in the box, after the message that was sent.
        await pilot.press(*"and Spain")
        await wait_until(pilot, load.started.is_set, "the model load to start")
        log = app.query_one(ChatLog)
        assert [t.text for t in log.query(UserTurn)] == ["What is the capital of France?"]
        assert prompt.text == "and Spain"
        assert engine.seen == []  # nothing reached the model: it is not loaded
        load.release()
        await wait_until(pilot, lambda: app.engine is not None, "the model to load")
        await wait_until(pilot, lambda: not app.generating and app.conversation.reply is None, "the reply to finish")
        assert app.query_one(ReplyTurn).text == "Paris."
        assert app.query_one(StatusBar).state == "ready"
        assert prompt.text == "and Spain"
        assert [m.content for m in engine.seen[0] if m.role == "user"] == ["What is the capital of France?"]
        await pilot.press("enter")  # the model is there now: the rest goes as usual
        await wait_until(pilot, lambda: len(engine.seen) == 2 and not app.generating, "the second reply")
    assert stored() == [
        ("user", "What is the capital of France?"),
        ("assistant", "Paris."),
        ("user", "and Spain"),
        ("assistant", "(no reply scripted)"),
    ]


async def test_escape_takes_a_waiting_message_back_into_the_box(engine: ScriptedEngine) -> None:
    load = SlowLoad(engine)
    app = AssistantApp(engine_factory=load)
    async with app.run_test(size=(120, 40)) as pilot:
        prompt = app.query_one(PromptBar)
        await pilot.press(*"hello", "enter", *"world")
        await wait_until(pilot, lambda: bool(app.query(UserTurn)), "the message to show")
        await pilot.press("escape")
        await wait_until(pilot, lambda: not app.query(UserTurn), "the message to leave the chat")
        assert prompt.text == "hello\nworld"  # nothing typed is lost, in the order it was typed
        assert not app.query(ReplyTurn) and not app.generating
        load.release()
        await wait_until(pilot, lambda: app.engine is not None, "the model to load")
        assert engine.seen == []  # the taken-back message was not sent
    assert chat_count() == 0


async def test_a_failed_load_puts_the_waiting_message_back(engine: ScriptedEngine) -> None:
    load = SlowLoad(engine, error=AssistantError("the model won't fit in memory", "lower --ctx"))
    app = AssistantApp(engine_factory=load)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press(*"hello", "enter")
        await wait_until(pilot, lambda: bool(app.query(UserTurn)), "the message to show")
        load.release()
        status = app.query_one(StatusBar)
        await wait_until(pilot, lambda: status.state == "error", "the load to fail")
        assert app.query_one(PromptBar).text == "hello"
        assert not app.query(UserTurn) and not app.query(ReplyTurn) and not app.generating
        texts = [str(n.message) for n in app._notifications]
        assert texts == ["the model won't fit in memory (lower --ctx)"]
    assert chat_count() == 0


async def test_a_message_waiting_for_the_model_is_stored_when_the_user_quits(engine: ScriptedEngine) -> None:
    """Sent while the model loads, it lived only on screen: Ctrl+Q before the load ended lost it. Now it is
    stored, unanswered, in a new chat named after it."""
    load = SlowLoad(engine)
    app = AssistantApp(engine_factory=load)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press(*"remember the milk", "enter")
            await wait_until(pilot, lambda: bool(app.query(UserTurn)), "the message to show")
            await wait_until(pilot, load.started.is_set, "the model load to start")
            await pilot.press("ctrl+q")
    finally:
        load.release()  # only once the app has gone: the message never reaches a model
    assert stored() == [("user", "remember the milk")]
    history = History()
    try:
        assert [c.title for c in history.list_chats()] == ["remember the milk"]
    finally:
        history.close()
    assert engine.seen == []


async def test_without_a_model_enter_warns_and_keeps_the_text() -> None:
    # (This was already so; it guards that a message is only held while a model is on its way.)
    # Nothing installed: the first-run screen offers the starters; dismissed, there is no model coming.
    app = AssistantApp(engine_factory=lambda model_id: ScriptedEngine())
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: len(app.screen_stack) == 2, "the first-run screen")
        app.pop_screen()
        await wait_until(pilot, lambda: len(app.screen_stack) == 1, "the main screen")
        app.query_one(PromptBar).focus()
        await pilot.press(*"hi", "enter")
        await wait_until(pilot, lambda: bool(app._notifications), "the warning")
        assert [str(n.message) for n in app._notifications] == ["No model loaded."]
        assert app.query_one(PromptBar).text == "hi" and not app.query(UserTurn)


def burst(app: AssistantApp, *keys: str) -> None:
    """Keys as a terminal delivers a paste or a fast typist: all queued before the app handles the first
    (the driver posts each to the app as it reads it; ``pilot.press`` would wait after every key)."""
    for key in keys:
        char = {"enter": "\r", "ctrl+j": "\n"}.get(key, key if len(key) == 1 else None)
        app.post_message(events.Key(key, char))


async def test_a_burst_of_keys_is_acted_on_in_the_order_typed(engine: ScriptedEngine) -> None:
    """ "a", Ctrl+J, "b", Enter, "c" at once: the message is "a\\nb" and "c" stays in the box. (Before: the
    newline binding ran after "b" was inserted, and the message was taken from the box after "c" came.)"""
    engine.enqueue("ok")
    app = AssistantApp(engine_factory=lambda model_id: engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: app.engine is not None, "the model to load")
        prompt = app.query_one(PromptBar)
        burst(app, "a", "ctrl+j", "b", "enter", "c")
        await wait_until(pilot, lambda: len(engine.seen) == 1 and not app.generating, "the reply")
        await wait_until(pilot, lambda: prompt.text == "c", "the rest in the box")
    assert stored() == [("user", "a\nb"), ("assistant", "ok")]


async def test_shift_enter_starts_a_new_line_in_the_app(engine: ScriptedEngine) -> None:
    engine.enqueue("ok")
    app = AssistantApp(engine_factory=lambda model_id: engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: app.engine is not None, "the model to load")
        await pilot.press("o", "n", "e", "shift+enter", "t", "w", "o")
        assert app.query_one(PromptBar).text == "one\ntwo" and engine.seen == []
        await pilot.press("enter")
        await wait_until(pilot, lambda: len(engine.seen) == 1 and not app.generating, "the reply")
    assert stored()[0] == ("user", "one\ntwo")


async def test_ctrl_p_opens_the_palette_with_the_apps_own_commands(engine: ScriptedEngine) -> None:
    """The palette asks for commands while it is itself on the screen stack: the app's actions (and its
    chats) must be offered then, not only Textual's own commands."""
    engine.enqueue("ok")
    app = AssistantApp(engine_factory=lambda model_id: engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: app.engine is not None, "the model to load")
        await pilot.press(*"hello", "enter")
        await wait_until(pilot, lambda: len(engine.seen) == 1 and not app.generating, "the reply")
        await pilot.press("ctrl+p")
        await wait_until(pilot, lambda: isinstance(app.screen, CommandPalette), "the palette")
        await pilot.press(*"New chat")

        def offered() -> list[str]:
            return [str(o.prompt) for o in app.screen.query_one(OptionList).options]

        await wait_until(pilot, lambda: any("Start a new, empty chat" in o for o in offered()), "New chat offered")
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.chat is None and not app.query(UserTurn), "a new, empty chat")
        await pilot.press("ctrl+p")
        await wait_until(pilot, lambda: isinstance(app.screen, CommandPalette), "the palette again")
        await pilot.press(*"Open chat")
        await wait_until(pilot, lambda: any("Open chat: hello" in o for o in offered()), "the saved chat offered")
        await pilot.press("enter")
        await wait_until(pilot, lambda: [t.text for t in app.query(UserTurn)] == ["hello"], "the chat reopened")
