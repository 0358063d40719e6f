"""Regenerate, edit and versions in the TUI: the real app and history, a scripted engine."""

from __future__ import annotations

from typing import Any

from textual.widgets import OptionList

from assistant.history import History
from assistant.ui.app import AssistantApp
from assistant.ui.screens.edit_message import PickMessage
from assistant.ui.widgets.chat_log import ChatLog, ReplyTurn, Turn, UserTurn
from assistant.ui.widgets.prompt_bar import PromptBar

from helpers.ui import ScriptedEngine, register_fake_model, wait_until


def make_app(engine: ScriptedEngine) -> AssistantApp:
    register_fake_model()
    return AssistantApp(engine_factory=lambda model_id: engine)


async def ready(pilot: Any) -> AssistantApp:
    app: AssistantApp = pilot.app
    await wait_until(pilot, lambda: app.engine is not None, "the model to load")
    return app


async def say(pilot: Any, engine: ScriptedEngine, text: str, reply: str) -> None:
    app: AssistantApp = pilot.app
    engine.enqueue(reply)
    prompt = app.query_one(PromptBar)
    prompt.focus()
    prompt.insert(text)
    await pilot.press("enter")
    await finished(pilot)


async def finished(pilot: Any) -> None:
    app: AssistantApp = pilot.app
    await wait_until(pilot, lambda: not app.generating and app.conversation.reply is None, "the reply to finish")


def said(engine: ScriptedEngine) -> list[str]:
    """What the model was given last, without the system prompt."""
    return [m.content for m in engine.seen[-1] if m.role != "system"]


def shown(app: AssistantApp) -> list[tuple[str, str]]:
    return [(t.ROLE, t.text) for t in app.query_one(ChatLog).messages]


def markers(app: AssistantApp) -> list[tuple[int, int] | None]:
    return [t.alternative for t in app.query_one(ChatLog).messages]


async def test_regenerate_keeps_the_old_reply_and_a_key_shows_it_again(engine: ScriptedEngine) -> None:
    app = make_app(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        await say(pilot, engine, "Name a river.", "The Nile.")
        engine.enqueue("The Danube.")
        await pilot.press("ctrl+l")
        await finished(pilot)
        await wait_until(pilot, lambda: markers(app) == [None, (2, 2)], "the reply's marker")
        assert shown(app) == [("You", "Name a river."), ("Assistant", "The Danube.")]
        assert said(engine) == ["Name a river."]
        label = app.query_one(ReplyTurn).query_one(".role")
        assert "‹ 2/2 ›" in str(label.render())

        await pilot.press("ctrl+pageup")
        await wait_until(pilot, lambda: markers(app) == [None, (1, 2)], "the old reply")
        assert shown(app)[-1] == ("Assistant", "The Nile.")
        await pilot.press("ctrl+pagedown")
        await wait_until(pilot, lambda: markers(app) == [None, (2, 2)], "the new reply again")
        # the version shown is the one continued
        await pilot.press("ctrl+pageup")
        await wait_until(pilot, lambda: markers(app) == [None, (1, 2)], "the old reply")
        await say(pilot, engine, "Longer?", "Yes.")
        assert said(engine) == ["Name a river.", "The Nile.", "Longer?"]
    history = History()
    (chat,) = history.list_chats()
    assert sorted(m.content for m in history.all_messages(chat.id)) == sorted(
        ["Name a river.", "The Nile.", "The Danube.", "Longer?", "Yes."]
    )
    history.close()


async def test_editing_message_1_of_3_makes_a_branch_and_the_old_one_is_reachable(engine: ScriptedEngine) -> None:
    app = make_app(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        for n in (1, 2, 3):
            await say(pilot, engine, f"question {n}", f"answer {n}")
        await pilot.press("ctrl+up")
        await wait_until(pilot, lambda: isinstance(app.screen, PickMessage), "the message picker")
        options = app.screen.query_one(OptionList)
        assert [str(options.get_option_at_index(i).prompt) for i in range(3)] == [
            "question 3",
            "question 2",
            "question 1",
        ]
        await pilot.press("down", "down", "enter")
        prompt = app.query_one(PromptBar)
        await wait_until(pilot, lambda: prompt.text == "question 1", "the message in the prompt")
        assert prompt.has_class("-editing")
        prompt.text = "question one"
        engine.enqueue("answer one")
        await pilot.press("enter")
        await finished(pilot)
        await wait_until(pilot, lambda: markers(app) == [(2, 2), None], "the edited turn's marker")
        assert shown(app) == [("You", "question one"), ("Assistant", "answer one")]
        assert said(engine) == ["question one"]
        assert not prompt.has_class("-editing")

        # Tab focuses the turn with versions; the key steps that one
        first = app.query_one(ChatLog).messages[0]
        first.focus()
        await pilot.press("ctrl+pageup")
        await wait_until(pilot, lambda: len(shown(app)) == 6, "the original branch")
        assert shown(app)[0] == ("You", "question 1") and shown(app)[-1] == ("Assistant", "answer 3")
        assert markers(app)[0] == (1, 2)
        await wait_until(pilot, lambda: isinstance(app.focused, UserTurn), "the focus back on the turn")


async def test_esc_leaves_an_edit_and_the_chat_as_it_was(engine: ScriptedEngine) -> None:
    app = make_app(engine)
    async with app.run_test(size=(40, 20)) as pilot:
        await ready(pilot)
        await say(pilot, engine, "Hello", "Hi.")
        await pilot.press("ctrl+up")
        await wait_until(pilot, lambda: isinstance(app.screen, PickMessage), "the message picker")
        await pilot.press("enter")
        prompt = app.query_one(PromptBar)
        await wait_until(pilot, lambda: prompt.has_class("-editing"), "the edit")
        await pilot.press("escape")
        await wait_until(pilot, lambda: not prompt.has_class("-editing"), "the edit to end")
        assert prompt.text == "" and shown(app) == [("You", "Hello"), ("Assistant", "Hi.")]
        await say(pilot, engine, "Bye", "Bye.")
        assert said(engine) == ["Hello", "Hi.", "Bye"]  # an ordinary message again


async def test_no_versions_yet_is_said(engine: ScriptedEngine) -> None:
    app = make_app(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        await say(pilot, engine, "Hello", "Hi.")
        await pilot.press("ctrl+pageup")
        await wait_until(pilot, lambda: any("No other versions" in str(n.message) for n in app._notifications), "why")
        assert all(isinstance(t, Turn) and not t.can_focus for t in app.query_one(ChatLog).messages)
