"""SVG snapshots of the app at a normal (120x40) and a phone-sized (40x20) terminal.

Deterministic by construction: a scripted engine with fixed stats, chats created with fixed timestamps,
the prompt's cursor blink off, and every shot taken after the reply has finished (no spinner, no toast).
Update them with ``pytest tests/ui/test_ui_snapshots.py --snapshot-update`` and look at the SVGs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from textual.widgets import SelectionList

from assistant.history import History
from assistant.ui.app import AssistantApp
from assistant.ui.widgets.prompt_bar import PromptBar

from helpers.ui import FAKE_MODEL, ScriptedEngine, first_run_shown, register_fake_model, wait_until

REPLY = (
    "Here is a function that adds two numbers:\n\n"
    "```python\ndef add(a: int, b: int) -> int:\n    return a + b\n```\n\n"
    "Call it as `add(2, 3)`; it returns **5**."
)

Snap = Callable[..., bool]


def seed_chats() -> None:
    """Two older chats in the sidebar, with fixed times so their order never changes."""
    history = History()
    for n, title in enumerate(["Packing list for a hike", "Regex for dates"]):
        chat = history.create_chat(title=title, model_id="smollm2-135m-instruct:q4_1")
        history.add_message(chat.id, "user", title)
        history.conn.execute("UPDATE chats SET created_at = ?, updated_at = ? WHERE id = ?", (n, n, chat.id))
    history.close()


def chat_app(*, partial: bool = False) -> AssistantApp:
    register_fake_model()
    seed_chats()
    engine = ScriptedEngine()
    if partial:
        engine.enqueue("Once upon a time, a small model", " ran on a phone", " and never", hold_after=2)
    else:
        words = REPLY.split(" ")
        chunks = [w + " " for w in words[:-1]] + words[-1:]  # streamed word by word
        engine.enqueue(*chunks, notices=["history trimmed: 2 oldest messages dropped"])
    return AssistantApp(engine_factory=lambda model_id: engine)


def converse(text: str, *, cancel: bool = False, keys: tuple[str, ...] = ()) -> Callable[[Any], Any]:
    async def run_before(pilot: Any) -> None:
        app: AssistantApp = pilot.app
        prompt = app.query_one(PromptBar)
        prompt.cursor_blink = False
        await wait_until(pilot, lambda: app.engine is not None, "the model")
        prompt.insert(text)
        await pilot.press("enter")
        if cancel:
            engine = app.backend.session.engine(app.model_id)
            assert isinstance(engine, ScriptedEngine)
            await wait_until(pilot, engine.holding.is_set, "the reply to be mid-way")
            await pilot.press("escape")
        await wait_until(pilot, lambda: not app.generating and app.conversation.reply is None, "the reply")
        prompt.cursor_blink = False  # the app turns blinking back on when a reply ends: the shot must not catch a phase
        await pilot.press(*keys)
        await pilot.wait_for_scheduled_animations()

    return run_before


@pytest.mark.parametrize("size", [(120, 40), (40, 20)], ids=["120x40", "40x20"])
def test_chat_with_code_reply(snap_compare: Snap, size: tuple[int, int]) -> None:
    assert snap_compare(chat_app(), terminal_size=size, run_before=converse("Write an add function in Python"))


@pytest.mark.parametrize("size", [(120, 40), (40, 20)], ids=["120x40", "40x20"])
def test_cancelled_reply_is_marked_partial(snap_compare: Snap, size: tuple[int, int]) -> None:
    assert snap_compare(chat_app(partial=True), terminal_size=size, run_before=converse("Tell me a story", cancel=True))


def test_narrow_sidebar_toggled_open(snap_compare: Snap) -> None:
    run_before = converse("Write an add function in Python", keys=("ctrl+b",))
    assert snap_compare(chat_app(), terminal_size=(40, 20), run_before=run_before)


@pytest.mark.parametrize("size", [(120, 40), (40, 20)], ids=["120x40", "40x20"])
def test_first_run_screen(snap_compare: Snap, size: tuple[int, int]) -> None:
    async def run_before(pilot: Any) -> None:
        await wait_until(pilot, lambda: first_run_shown(pilot.app), "the first-run screen")

    app = AssistantApp(engine_factory=lambda model_id: ScriptedEngine())
    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", [(120, 40), (40, 20)], ids=["120x40", "40x20"])
def test_bench_new_run_dialog(snap_compare: Snap, size: tuple[int, int]) -> None:
    """F9 then ``n``: the installed models (a chat and a speech model), the first one ticked, Quick chosen."""
    from assistant.store import Installed, Store
    from assistant.ui.screens.bench_new import NewBenchRun
    from assistant.ui.screens.bench_screen import BenchScreen

    app = chat_app()
    store = Store()
    speech = store.get(FAKE_MODEL)
    assert speech is not None
    store.add(Installed("whisper-tiny.en:int8", "whisper", speech.path, True, 78_000_000, None, "test", installed_at=1))
    store.conn.close()

    async def run_before(pilot: Any) -> None:
        await wait_until(pilot, lambda: app.engine is not None, "the model")
        await pilot.press("f9")
        await wait_until(pilot, lambda: isinstance(app.screen, BenchScreen), "the bench screen")
        status = app.screen.query_one("#bench-status")
        await wait_until(pilot, lambda: "no benchmark runs" in str(status.render()), "the runs read")
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, NewBenchRun), "the new-run dialog")
        models = app.screen.query_one("#bench-models", SelectionList)
        await wait_until(pilot, lambda: models.option_count == 2, "the models listed")
        await pilot.press("space")
        await pilot.wait_for_scheduled_animations()

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", [(120, 40), (40, 20)], ids=["120x40", "40x20"])
def test_search_screen_with_a_hit(snap_compare: Snap, size: tuple[int, int]) -> None:
    """Ctrl+F and a word from one of the chats: its title and the text around the match."""
    from textual.widgets import OptionList

    from assistant.ui.screens.search import SearchChats

    app = chat_app()

    async def run_before(pilot: Any) -> None:
        await wait_until(pilot, lambda: app.engine is not None, "the model")
        await pilot.press("ctrl+f")
        await wait_until(pilot, lambda: isinstance(app.screen, SearchChats), "the search screen")
        await pilot.press(*"hike")
        hits = app.screen.query_one("#search-hits", OptionList)
        await wait_until(pilot, lambda: hits.option_count == 1, "the hit")
        await pilot.wait_for_scheduled_animations()

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", [(120, 40), (40, 20)], ids=["120x40", "40x20"])
def test_chat_settings_dialog(snap_compare: Snap, size: tuple[int, int]) -> None:
    """Ctrl+S on a new chat: the model in use, config.toml's system prompt, the settings left to config."""
    from assistant.ui.screens.chat_settings import ChatSettingsDialog

    app = chat_app()

    async def run_before(pilot: Any) -> None:
        await wait_until(pilot, lambda: app.engine is not None, "the model")
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, ChatSettingsDialog), "the settings dialog")
        await pilot.wait_for_scheduled_animations()

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", [(120, 40), (40, 20)], ids=["120x40", "40x20"])
def test_regenerated_reply_shows_its_versions(snap_compare: Snap, size: tuple[int, int]) -> None:
    """Ctrl+L after a reply: the new reply, marked as the second of two versions."""
    app = chat_app()

    async def run_before(pilot: Any) -> None:
        await converse("Write an add function in Python")(pilot)
        engine = app.backend.session.engine(app.model_id)
        assert isinstance(engine, ScriptedEngine)
        engine.enqueue("Use `operator.add`: it is the same function, already written.")
        await pilot.press("ctrl+l")
        await wait_until(pilot, lambda: "‹ 2/2 ›" in str(app.screen.query(".role.-branched").first().render())
                         if app.screen.query(".role.-branched") else False, "the versions marker")  # fmt: skip
        app.query_one(PromptBar).cursor_blink = False
        await pilot.wait_for_scheduled_animations()

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", [(120, 40), (40, 20)], ids=["120x40", "40x20"])
def test_edit_message_picker(snap_compare: Snap, size: tuple[int, int]) -> None:
    """Ctrl+Up: your messages on the branch shown, newest first."""
    from assistant.ui.screens.edit_message import PickMessage

    app = chat_app()

    async def run_before(pilot: Any) -> None:
        await converse("Write an add function in Python")(pilot)
        await pilot.press("ctrl+up")
        await wait_until(pilot, lambda: isinstance(app.screen, PickMessage), "the message picker")
        await pilot.wait_for_scheduled_animations()

    assert snap_compare(app, terminal_size=size, run_before=run_before)
