"""Whole-app tests: the real app, the real chat history (SQLite under the test's home), a scripted engine."""

from __future__ import annotations

import gc
import os
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest
from textual.widgets import Button, DataTable, Input, Label, Markdown, OptionList, ProgressBar, Select, TextArea
from textual.widgets._footer import FooterKey

from assistant import config
from assistant.errors import AssistantError
from assistant.history import History
from assistant.ui.app import AssistantApp
from assistant.ui.pacing import (
    STREAM_CPU_SHARE_BUSY,
    STREAM_CPU_SHARE_SPARE,
    STREAM_INTERVAL_MAX,
    STREAM_INTERVAL_MIN,
    stream_cpu_share,
)
from assistant.ui.screens.first_run import FirstRunScreen
from assistant.ui.widgets.chat_log import ChatLog, NoticeView, ReplyTurn, UserTurn
from assistant.ui.widgets.conversation import SETTLE_TIMEOUT
from assistant.ui.widgets.footer import KeyFooter
from assistant.ui.widgets.prompt_bar import PromptBar
from assistant.ui.widgets.sidebar import ChatList, Sidebar
from assistant.ui.widgets.status_bar import StatusBar

from conftest import run_cli
from helpers.ui import FAKE_MODEL, ScriptedEngine, first_run_shown, open_model_picker, register_fake_model, wait_until


def make_app(engine: ScriptedEngine, settings: config.Settings | None = None, **kwargs: Any) -> AssistantApp:
    return AssistantApp(engine_factory=lambda model_id: engine, settings=settings, **kwargs)


async def ready(pilot: Any) -> AssistantApp:
    app: AssistantApp = pilot.app
    await wait_until(pilot, lambda: app.engine is not None, "the model to load")
    return app


async def send(pilot: Any, text: str) -> None:
    app: AssistantApp = pilot.app
    prompt = app.query_one(PromptBar)
    prompt.focus()
    prompt.insert(text)
    await pilot.press("enter")


async def finished(pilot: Any) -> None:
    app: AssistantApp = pilot.app
    await wait_until(pilot, lambda: not app.generating and app.conversation.reply is None, "the reply to finish")


def stored_messages() -> list[Any]:
    history = History()
    try:
        chats = history.list_chats()
        return [m for chat in chats for m in history.messages(chat.id)]
    finally:
        history.close()


async def test_send_streams_markdown_reply_and_stores_both_messages(engine: ScriptedEngine) -> None:
    engine.enqueue("Sure", ", here is code:\n\n", "```python\n", "print('hi')\n", "```\n")
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        assert app.query_one(StatusBar).state == "ready"
        await send(pilot, "show me code")
        await finished(pilot)
        log = app.query_one(ChatLog)
        assert [t.text for t in log.query(UserTurn)] == ["show me code"]
        reply = log.query_one(ReplyTurn)
        await wait_until(pilot, lambda: "print" in reply.query_one(Markdown).source, "the markdown")
        assert reply.text == "Sure, here is code:\n\n```python\nprint('hi')\n```\n"
        assert len(reply.query("MarkdownFence")) == 1
        assert not reply.has_class("-partial")
        status = app.query_one(StatusBar)
        assert status.tokens_per_second == 42.0
        assert status.context_total == 2048 and status.context_used
        assert app.chat is not None and app.chat.title == "show me code"
        assert [o.prompt for o in app.query_one(ChatList).options] == ["show me code"]
        # the engine saw the system prompt and the user's message
        assert [m.role for m in engine.seen[0]] == ["system", "user"]
    rows = stored_messages()
    assert [(m.role, m.content, m.partial) for m in rows] == [
        ("user", "show me code", False),
        ("assistant", reply.text, False),
    ]


async def test_escape_cancels_and_keeps_the_partial_reply(engine: ScriptedEngine) -> None:
    engine.enqueue("Once upon", " a time", " never shown", hold_after=2)
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await send(pilot, "tell me a story")
        await wait_until(pilot, engine.holding.is_set, "the reply to be mid-way")
        assert not gc.isenabled()  # no 40-70 ms garbage collection pause while a reply streams
        # keys still work while the reply streams: the sidebar toggles
        await pilot.press("ctrl+b")
        assert app.screen.has_class("-sidebar-closed")
        await pilot.press("escape")
        await finished(pilot)
        assert gc.isenabled()
        reply = app.query_one(ReplyTurn)
        assert reply.text == "Once upon a time"
        assert reply.has_class("-partial")
        assert reply.query_one(".partial-mark").display
        assert app.query_one(PromptBar).has_focus
    assert [(m.role, m.content, m.partial) for m in stored_messages()] == [
        ("user", "tell me a story", False),
        ("assistant", "Once upon a time", True),
    ]


async def test_context_meter_moves_while_the_reply_streams_and_warns_past_80_percent(engine: ScriptedEngine) -> None:
    """The meter counts the prompt and the reply so far while it streams (not only once it ends), and turns
    to the warning colour past 80 % of the context."""
    engine._context_size = 24
    engine.enqueue("one", " two", " three", " four", " never", hold_after=4)
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        label = app.query_one("#status-context", Label)
        assert not label.has_class("-warn")
        await send(pilot, "count with me please")
        await wait_until(pilot, engine.holding.is_set, "the reply to be mid-way")
        prompt = engine.count_tokens(engine.seen[0])
        assert prompt < 0.8 * 24 < prompt + 1
        # the first text is shown at once, the next chunks as the pacing allows: 1 to 4 of them so far
        streaming = {f"ctx {prompt + k}/24" for k in range(1, 5)}
        try:
            await wait_until(pilot, lambda: str(label.content) in streaming, "the meter to count the reply")
            assert label.has_class("-warn")
        finally:
            await pilot.press("escape")  # a held reply would keep the app from closing
        await finished(pilot)
        assert str(label.content) == f"ctx {prompt + 4}/24" and label.has_class("-warn")


async def test_export_writes_the_open_chat_as_markdown_or_json(engine: ScriptedEngine) -> None:
    import json

    from assistant import paths
    from assistant.ui.screens.dialogs import AskPath as ExportChat

    engine.enqueue("The Danube.")
    app = make_app(engine)
    async with app.run_test(size=(40, 20)) as pilot:  # the smallest terminal the app supports
        await ready(pilot)
        await pilot.press("f4")
        assert not isinstance(app.screen, ExportChat)  # nothing to export before the first message
        await send(pilot, "Name a river")
        await finished(pilot)
        await pilot.press("f4")
        await wait_until(pilot, lambda: isinstance(app.screen, ExportChat), "the export dialog")
        field = app.screen.query_one("#export-input", Input)
        default = Path(field.value)
        assert app.chat is not None
        assert default.parent == paths.documents_dir() and default.name == f"name-a-river-{app.chat.id}.md"
        default.parent.mkdir(parents=True, exist_ok=True)
        await pilot.press("enter")
        await wait_until(pilot, default.exists, "the Markdown export")
        assert "## Assistant\n\nThe Danube." in default.read_text()
        assert oct(default.stat().st_mode & 0o777) == "0o600"
        await pilot.press("f4")
        await wait_until(pilot, lambda: isinstance(app.screen, ExportChat), "the export dialog")
        field = app.screen.query_one("#export-input", Input)
        field.value = str(default.with_suffix(".json"))
        await pilot.press("enter")
        await wait_until(pilot, default.with_suffix(".json").exists, "the JSON export")
        doc = json.loads(default.with_suffix(".json").read_text())
        assert [m["content"] for m in doc["messages"]] == ["Name a river", "The Danube."]
        await pilot.press("f4")
        await wait_until(pilot, lambda: isinstance(app.screen, ExportChat), "the export dialog")
        app.screen.query_one("#export-input", Input).value = "/nonexistent/folder/x.md"
        await pilot.press("enter")  # refused in one line, nothing written, the app goes on
        await wait_until(pilot, lambda: any("no such folder" in n.message for n in app._notifications), "the error")
        assert not isinstance(app.screen, ExportChat)


async def test_attach_puts_a_text_file_in_the_prompt_and_refuses_one_too_large(
    engine: ScriptedEngine, tmp_path: Path
) -> None:
    from assistant.ui.screens.dialogs import AskPath

    notes = tmp_path / "notes.txt"
    notes.write_text("buy milk\ncall Ana\n", encoding="utf-8")
    big = tmp_path / "big.txt"
    big.write_text("word " * 3000, encoding="utf-8")
    app = make_app(engine)
    async with app.run_test(size=(40, 20)) as pilot:
        await ready(pilot)
        prompt = app.query_one(PromptBar)
        prompt.focus()
        prompt.insert(f"/attach {notes}\nwhat is on my list?")
        await pilot.press("enter")  # the command is not sent: the file takes its line
        block = "notes.txt:\n```txt\nbuy milk\ncall Ana\n```\n"
        await wait_until(pilot, lambda: prompt.text == block + "what is on my list?", "the attached file")
        assert engine.seen == [] and not app.generating
        prompt.clear()
        await pilot.press("f5")  # the key, with a path dialog
        await wait_until(pilot, lambda: isinstance(app.screen, AskPath), "the attach dialog")
        app.screen.query_one("#attach-input", Input).value = str(big)
        await pilot.press("enter")
        tokens = 3000 + 3 + 4  # the scripted engine's count: words of the block, plus 4 for the message
        refusal = f"big.txt is {tokens:,} tokens; the context holds {engine.context_size:,} (0 in use)"
        await wait_until(pilot, lambda: any(refusal in str(n.message) for n in app._notifications), "the refusal")
        assert prompt.text == "" and engine.seen == []  # nothing attached, nothing sent


async def test_search_finds_a_word_from_an_old_chat_and_opens_it_at_the_message(engine: ScriptedEngine) -> None:
    from assistant.ui.screens.search import SearchChats

    history = History()
    old = history.create_chat(title="trip planning", model_id=FAKE_MODEL)
    history.add_message(old.id, "user", "Which river runs through Vienna?")
    found = history.add_message(old.id, "assistant", "The Danube, on its way to the Black Sea.")
    for n in range(12):  # a long chat: the hit is far above its end
        history.add_message(old.id, "user", f"and then question {n}")
    other = history.create_chat(title="recipes", model_id=FAKE_MODEL)
    history.add_message(other.id, "user", "How long to boil an egg?")
    history.close()
    app = make_app(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        await pilot.press("ctrl+f")
        await wait_until(pilot, lambda: isinstance(app.screen, SearchChats), "the search screen")
        screen = app.screen
        assert isinstance(screen, SearchChats)
        await pilot.press(*"danu")  # a prefix of a word in an old reply
        await wait_until(pilot, lambda: [h.chat.id for h in screen.hits] == [old.id], "the hit")
        line = str(screen.query_one("#search-hits", OptionList).get_option_at_index(0).prompt)
        assert line == "trip planning  The Danube, on its way to the Black Sea."
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.chat is not None and app.chat.id == old.id, "the chat to open")
        log = app.query_one(ChatLog)
        await wait_until(pilot, lambda: bool(log.query(".-found")), "the message to be marked")
        (turn,) = log.query(".-found")
        assert isinstance(turn, ReplyTurn) and turn.text.startswith("The Danube")
        await wait_until(pilot, lambda: turn.region.height > 0 and log.scroll_y < log.max_scroll_y, "the scroll")
        await pilot.press("ctrl+f")
        await wait_until(pilot, lambda: isinstance(app.screen, SearchChats), "the search screen")
        await pilot.press(*"volcano")
        help_label = app.screen.query_one("#search-help", Label)
        await wait_until(pilot, lambda: "no chat has these words" in str(help_label.content), "no hit")
        await pilot.press("escape")
        assert not isinstance(app.screen, SearchChats) and app.chat is not None and app.chat.id == old.id
    assert found.id is not None


async def test_chat_settings_from_a_preset_are_used_and_survive_a_restart(engine: ScriptedEngine) -> None:
    from assistant.ui.screens.chat_settings import ChatSettingsDialog

    engine.enqueue("Paris.")
    app = make_app(engine)
    async with app.run_test(size=(40, 20)) as pilot:
        await ready(pilot)
        await pilot.press("ctrl+s")  # before the first message: the settings the new chat starts with
        await wait_until(pilot, lambda: isinstance(app.screen, ChatSettingsDialog), "the settings dialog")
        dialog = app.screen
        dialog.query_one("#settings-preset", Select).value = "concise"
        await wait_until(pilot, lambda: dialog.query_one("#settings-temperature", Input).value == "0.3", "the preset")
        dialog.query_one("#settings-seed", Input).value = "not a number"
        dialog.query_one("#settings-save", Button).press()
        error = dialog.query_one("#settings-error", Label)
        await wait_until(pilot, lambda: str(error.content).startswith("seed: "), "the refusal")
        assert app.screen is dialog  # a bad value keeps the dialog open, nothing stored
        dialog.query_one("#settings-seed", Input).value = "7"
        dialog.query_one("#settings-save", Button).press()
        await wait_until(pilot, lambda: not isinstance(app.screen, ChatSettingsDialog), "the dialog to close")
        await send(pilot, "Capital of France?")
        await finished(pilot)
        system = engine.seen[0][0]
        assert system.role == "system" and system.content.startswith("Answer in one or two sentences.")
        assert engine.options_seen[0].temperature == 0.3 and engine.options_seen[0].seed == 7
    again = make_app(ScriptedEngine())
    async with again.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await wait_until(pilot, lambda: bool(again.chats), "the chat list")
        again.open_chat(again.chats[0])
        await wait_until(pilot, lambda: bool(again.query(ReplyTurn)), "the chat to open")
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(again.screen, ChatSettingsDialog), "the settings dialog")
        dialog = again.screen
        assert dialog.query_one("#settings-system", TextArea).text.startswith("Answer in one or two sentences.")
        assert [dialog.query_one(f"#settings-{k}", Input).value for k in ("temperature", "seed", "top_p")] == [
            "0.3",
            "7",
            "",  # not set by the chat: config.toml's value applies
        ]
        await pilot.press("escape")


async def test_a_reopened_chat_continues_with_its_own_model() -> None:
    register_fake_model()
    register_fake_model("gemma3-270m:q4_k_m")
    history = History()
    chat = history.create_chat(title="poems", model_id="gemma3-270m:q4_k_m")
    history.add_message(chat.id, "user", "a haiku please")
    history.close()
    app = AssistantApp(engine_factory=lambda model_id: ScriptedEngine(model_id))
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        assert app.model_id == FAKE_MODEL
        await wait_until(pilot, lambda: bool(app.chats), "the chat list")
        app.open_chat(app.chats[0])
        await wait_until(pilot, lambda: app.model_id == "gemma3-270m:q4_k_m" and app.engine is not None, "the switch")


async def test_catalog_screen_pulls_from_a_local_hub_and_escape_stops_then_resumes(
    engine: ScriptedEngine, tmp_path: Path
) -> None:
    """Ctrl+G lists the catalog; Enter pulls the highlighted variant from a local HF-compatible server with
    progress; Esc stops it (the part fetched is kept) and Enter resumes it from there."""
    from assistant import catalog, paths
    from assistant.store import Store
    from assistant.ui.screens.catalog import CatalogScreen

    from helpers.hf_server import HubServer
    from helpers.pull import SMOL_SIZE, hub_catalog, make_hub_root, partial_files, write_user_catalog

    home = paths.home()
    assert home is not None
    write_user_catalog(home, hub_catalog())
    catalog.default.cache_clear()
    with HubServer(make_hub_root(tmp_path / "hub")) as hub:
        paths.ensure(paths.config_dir())
        (paths.config_dir() / "config.toml").write_text(f'[models]\nhub_endpoint = "{hub.url}"\n')
        hub.throttle = 8 << 20  # 8 MiB/s: the 98 MB file takes long enough to stop half-way
        app = make_app(engine)
        async with app.run_test(size=(120, 40)) as pilot:
            await ready(pilot)
            await pilot.press("ctrl+g")
            await wait_until(pilot, lambda: isinstance(app.screen, CatalogScreen), "the catalog screen")
            screen = app.screen
            assert isinstance(screen, CatalogScreen)
            table = screen.query_one("#catalog-table", DataTable)
            await wait_until(pilot, lambda: "smol-hub:q4_1" in screen.rows, "the catalog listed")
            row = table.get_row_index("smol-hub:q4_1")
            assert [str(c) for c in table.get_row_at(row)][:2] == ["smol-hub:q4_1", "llm"]
            table.move_cursor(row=row)
            await pilot.press("enter")
            bar = screen.query_one("#catalog-progress", ProgressBar)
            await wait_until(pilot, lambda: (bar.progress or 0) > 8 << 20, "some progress", timeout=60)
            await pilot.press("escape")  # stops the download, keeps the screen
            status = screen.query_one("#catalog-status", Label)
            await wait_until(pilot, lambda: "Enter resumes it" in str(status.content), "the stop", timeout=30)
            assert isinstance(app.screen, CatalogScreen) and partial_files(home)  # what was fetched is kept
            hub.throttle = None
            hub.reset()
            await pilot.press("enter")
            await wait_until(pilot, lambda: "installed smol-hub:q4_1" in str(status.content), "the pull", timeout=60)
            assert any(r.range for r in hub.gets())  # it resumed from the kept part
            store = Store()
            item = store.get("smol-hub:q4_1")
            store.conn.close()
            assert item is not None and item.size_bytes == SMOL_SIZE and partial_files(home) == []
            await pilot.press("escape")
            await wait_until(pilot, lambda: not isinstance(app.screen, CatalogScreen), "the screen to close")
    catalog.default.cache_clear()


async def test_ctrl_n_starts_a_new_chat(engine: ScriptedEngine) -> None:
    engine.enqueue("first answer")
    engine.enqueue("second answer")
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await send(pilot, "first question")
        await finished(pilot)
        first = app.chat
        await pilot.press("ctrl+n")
        assert app.chat is None
        assert not app.query_one(ChatLog).turns
        await send(pilot, "second question")
        await finished(pilot)
        assert app.chat is not None and first is not None and app.chat.id != first.id
        assert [o.prompt for o in app.query_one(ChatList).options] == ["second question", "first question"]
        # the second chat's model input does not include the first chat
        assert [m.content for m in engine.seen[1] if m.role == "user"] == ["second question"]


async def test_chats_survive_a_restart(engine: ScriptedEngine) -> None:
    engine.enqueue("Paris.")
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await send(pilot, "capital of France?")
        await finished(pilot)
        await pilot.press("ctrl+q")
    assert app.return_code == 0

    again = make_app(ScriptedEngine())
    async with again.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        chat_list = again.query_one(ChatList)
        await wait_until(pilot, lambda: chat_list.option_count == 1, "the saved chat in the sidebar")
        assert str(chat_list.get_option_at_index(0).prompt) == "capital of France?"
        chat_list.focus()
        chat_list.highlighted = 0
        await pilot.press("enter")
        log = again.query_one(ChatLog)
        await wait_until(pilot, lambda: len(log.query(ReplyTurn)) == 1, "the chat to open")
        assert [t.text for t in log.query(UserTurn)] == ["capital of France?"]
        assert log.query_one(ReplyTurn).text == "Paris."
        assert again.query_one(PromptBar).has_focus


async def test_engine_notices_show_in_the_chat(engine: ScriptedEngine) -> None:
    engine.enqueue("hello", notices=["history trimmed: 2 oldest messages dropped", "x has no chat template"])
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await send(pilot, "hi")
        await finished(pilot)
        notices = [str(n.render()) for n in app.query(NoticeView)]
        assert notices == ["history trimmed: 2 oldest messages dropped", "x has no chat template"]
        # shown above the reply they concern
        children = app.query_one(ChatLog).turns
        assert isinstance(children[-1], ReplyTurn) and isinstance(children[1], NoticeView)


async def test_keymap_from_config_rebinds_an_action(engine: ScriptedEngine) -> None:
    engine.enqueue("ok")
    settings = config.Settings.model_validate({"ui": {"keymap": {"new_chat": "ctrl+g"}}})
    app = make_app(engine, settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await send(pilot, "one")
        await finished(pilot)
        assert app.chat is not None
        await pilot.press("ctrl+n")  # no longer bound
        assert app.chat is not None
        await pilot.press("ctrl+g")
        assert app.chat is None


async def test_copy_reply_and_code_block(engine: ScriptedEngine) -> None:
    engine.enqueue("Run this:\n\n```sh\nls -l\n```\n")
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await pilot.press("f2")  # nothing to copy yet: a warning, no crash
        assert app.clipboard == ""
        await send(pilot, "list files")
        await finished(pilot)
        await pilot.press("f2")
        assert app.clipboard == "Run this:\n\n```sh\nls -l\n```\n"
        await pilot.press("f3")
        assert app.clipboard == "ls -l"


async def test_palette_lists_every_action(engine: ScriptedEngine) -> None:
    engine.enqueue("```\ncode\n```")
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await send(pilot, "q")
        await finished(pilot)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for title in ("New chat", "Toggle chat list", "Choose model", "Copy last reply", "Rename chat", "Delete chat"):
            assert title in titles
        assert "Copy code block 1" in titles
        assert "Stop reply" not in titles  # only while a reply streams


async def test_rename_and_delete_chat(engine: ScriptedEngine) -> None:
    engine.enqueue("hi")
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await send(pilot, "hello")
        await finished(pilot)
        chat_list = app.query_one(ChatList)
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: bool(app.screen.query("#rename-input")), "the rename dialog")
        await pilot.press(*"Greetings", "enter")  # the old title is selected: typing replaces it
        await wait_until(
            pilot, lambda: [str(o.prompt) for o in chat_list.options] == ["Greetings"], "the renamed chat listed"
        )
        await pilot.press("f8")
        await wait_until(
            pilot,
            lambda: bool(app.screen.query("#yes")) and app.screen.query_one("#yes").region.width > 0,
            "the delete confirmation",
        )
        await pilot.click("#yes")
        await wait_until(pilot, lambda: chat_list.option_count == 0, "the chat to be deleted")
        assert app.chat is None
    assert stored_messages() == []


async def test_model_load_failure_is_one_line(engine: ScriptedEngine) -> None:
    def failing(model_id: str) -> ScriptedEngine:
        raise AssistantError(f"{model_id} won't fit in memory", "lower --ctx")

    app = AssistantApp(engine_factory=failing)
    async with app.run_test(size=(120, 40)) as pilot:
        status = app.query_one(StatusBar)
        await wait_until(pilot, lambda: status.state == "error", "the load to fail")
        texts = [str(n.message) for n in app._notifications]
        assert texts == [f"{FAKE_MODEL} won't fit in memory (lower --ctx)"]
        await send(pilot, "hello?")  # no engine: a warning, the text stays in the box
        assert app.query_one(PromptBar).text == "hello?"


async def test_narrow_terminal_hides_the_sidebar_until_toggled(engine: ScriptedEngine) -> None:
    app = make_app(engine)
    async with app.run_test(size=(40, 20)) as pilot:
        await ready(pilot)
        sidebar = app.query_one(Sidebar)
        assert app.screen.has_class("-narrow")
        assert not sidebar.display
        await pilot.press("ctrl+b")
        assert sidebar.display and app.query_one(ChatList).has_focus
        await pilot.press("ctrl+b")
        assert not sidebar.display and app.query_one(PromptBar).has_focus


async def test_first_run_pulls_starters_then_chats() -> None:
    engine = ScriptedEngine()
    engine.enqueue("hello from the starter model")
    calls: list[str] = []

    def puller(on_progress: Any, cancel: threading.Event) -> list[Any]:
        calls.append("pull")
        for done in range(0, 101, 25):
            on_progress(done, 100, f"smollm2 {done}%")
        register_fake_model()
        return []

    app = make_app(engine, puller=puller)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: first_run_shown(app), "the first-run screen")
        screen = app.screen
        assert "No chat model is installed yet" in str(screen.query_one("#first-run-text").render())
        bar = screen.query_one(ProgressBar)
        await pilot.click("#pull")
        await wait_until(pilot, lambda: app.engine is not None, "the model to load after the pull")
        assert calls == ["pull"]
        assert not isinstance(app.screen, FirstRunScreen)
        assert bar.percentage == 1.0
        await send(pilot, "hi")
        await finished(pilot)
        assert app.query_one(ReplyTurn).text == "hello from the starter model"


async def test_first_run_download_failure_lets_the_user_retry() -> None:
    attempts: list[int] = []

    def puller(on_progress: Any, cancel: threading.Event) -> list[Any]:
        attempts.append(1)
        raise AssistantError("network unreachable", "check the connection")

    app = make_app(ScriptedEngine(), puller=puller)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: first_run_shown(app), "the first-run screen")
        await pilot.click("#pull")
        status = app.screen.query_one("#first-run-status")
        await wait_until(pilot, lambda: "failed" in str(status.render()), "the failure to show")
        assert "network unreachable" in str(status.render())
        pull = app.screen.query_one("#pull", Button)
        assert not pull.disabled and str(pull.label) == "Try again"
        assert [str(n.message) for n in app._notifications] == ["network unreachable (check the connection)"]


async def test_benchmarks_screen_opens_and_closes(engine: ScriptedEngine) -> None:
    from assistant.ui.screens.bench_screen import BenchScreen

    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await pilot.press("f9")
        await wait_until(pilot, lambda: isinstance(app.screen, BenchScreen), "the benchmarks screen")
        assert app.check_action("new_chat", ()) is False  # chat actions are off while it is shown
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.on_main_screen, "the chat screen again")
        assert app.query_one(PromptBar).has_focus


async def test_quit_while_streaming_keeps_the_partial_reply(engine: ScriptedEngine) -> None:
    engine.enqueue("Half", " of it", " never", hold_after=2)
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await send(pilot, "long answer please")
        await wait_until(pilot, engine.holding.is_set, "the reply to be mid-way")
        await pilot.press("ctrl+q")
    assert [(m.role, m.content, m.partial) for m in stored_messages()] == [
        ("user", "long answer please", False),
        ("assistant", "Half of it", True),
    ]
    assert engine.closed  # the engine was freed once the reply had stopped


async def test_model_picker_lists_installed_models_and_switches() -> None:
    register_fake_model()
    register_fake_model("gemma3-270m:q4_k_m")
    loaded: list[str] = []

    def factory(model_id: str) -> ScriptedEngine:
        loaded.append(model_id)
        return ScriptedEngine(model_id)

    app = AssistantApp(engine_factory=factory)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        table = await open_model_picker(pilot, 2)
        rows = [[str(cell) for cell in table.get_row_at(i)] for i in range(2)]
        assert rows[0][0].endswith("gemma3-270m:q4_k_m") and rows[1][0] == f"● {FAKE_MODEL}"
        assert rows[1][3] == "unreadable"  # a fake file: listed, and said to be unusable
        table.move_cursor(row=0)
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.engine is not None and app.model_id == "gemma3-270m:q4_k_m", "the switch")
        assert loaded == [FAKE_MODEL, "gemma3-270m:q4_k_m"]
        assert app.query_one(StatusBar).model_id == "gemma3-270m:q4_k_m"


async def test_model_picker_names_the_smaller_models_that_can_draft_for_each() -> None:
    from assistant import paths
    from assistant.store import Installed, Store

    register_fake_model()  # the configured chat model, so the app opens on the chat
    store = Store()
    for model_id, size in (("fam:q8_0", 300), ("fam:q4_1", 200), ("other:q4_0", 100)):
        path = paths.ensure(paths.models_dir()) / f"{model_id.replace(':', '-')}.gguf"
        path.write_bytes(b"GGUF" + b"x" * size)
        digest = "other-vocab" if model_id.startswith("other") else "fam-vocab"
        header = {"layers": 30, "heads": 9, "kv_heads": 3, "embedding_length": 576, "vocab_size": 49152}
        header |= {"key_length": 64, "value_length": 64, "context_length": 8192}
        info = {**header, "vocab_digest": digest, "quant": model_id.split(":")[1].upper(), "file_size": size}
        store.add(Installed(model_id, "llm", path, True, size, None, "test", info=info, installed_at=1.0))
    store.conn.close()
    app = AssistantApp(engine_factory=ScriptedEngine)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        table = await open_model_picker(pilot, 4)
        rows = {str(table.get_row_at(i)[0]).strip("● "): str(table.get_row_at(i)[4]) for i in range(4)}
        assert rows == {"fam:q8_0": "q4_1", "fam:q4_1": "–", "other:q4_0": "–", FAKE_MODEL: "–"}


async def test_completion_mode_and_trim_notices_from_stats_once_per_chat(engine: ScriptedEngine) -> None:
    from assistant.chat import Stats

    engine.enqueue("once upon", notices=["base:model has no chat template: completion mode"])
    engine.enqueue("a time")
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await send(pilot, "Tell")
        await finished(pilot)
        # second turn: the engine sends no notice, but its stats say the history was trimmed
        original = engine.stream

        def trimmed_stream(*args: Any, **kwargs: Any) -> Any:
            for chunk in original(*args, **kwargs):
                if chunk.stats is not None:
                    chunk.stats = Stats(completion_tokens=2, dropped_messages=2, completion_mode=True)
                yield chunk

        engine.stream = trimmed_stream  # type: ignore[method-assign]
        await send(pilot, "more")
        await finished(pilot)
        notices = [str(n.render()) for n in app.query(NoticeView)]
        assert notices == [
            "base:model has no chat template: completion mode",
            "history trimmed: 2 oldest messages dropped",
        ]


async def test_palette_shows_remapped_keys(engine: ScriptedEngine) -> None:
    settings = config.Settings.model_validate({"ui": {"keymap": {"new_chat": "ctrl+g"}}})
    app = make_app(engine, settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        helps = {c.title: c.help for c in app.get_system_commands(app.screen)}
        assert helps["New chat"].endswith("(ctrl+g)")
        assert helps["Choose model"].endswith("(ctrl+o)")


async def test_escape_stops_the_first_run_download() -> None:
    from assistant.errors import Cancelled

    started = threading.Event()

    def puller(on_progress: Any, cancel: threading.Event) -> list[Any]:
        on_progress(10, 100, "smollm2 10%")
        started.set()
        cancel.wait(30)
        raise Cancelled("download cancelled (the partial file is kept to resume)")

    app = make_app(ScriptedEngine(), puller=puller)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: first_run_shown(app), "the first-run screen")
        await pilot.click("#pull")
        await wait_until(pilot, started.is_set, "the download to start")
        await pilot.press("escape")
        status = app.screen.query_one("#first-run-status")
        await wait_until(pilot, lambda: str(status.render()) == "download stopped", "the stop to show")
        assert str(app.screen.query_one("#pull", Button).label) == "Resume"
        assert [n.severity for n in app._notifications] == ["information"]


class FakeSpeaker:
    instances: ClassVar[list[FakeSpeaker]] = []

    def __init__(self) -> None:
        self.fed: list[str] = []
        self.finished = self.stopped = False
        FakeSpeaker.instances.append(self)

    def feed(self, text: str) -> None:
        self.fed.append(text)

    def finish(self, timeout: float | None = None) -> None:
        self.finished = True

    def stop(self) -> None:
        self.stopped = True


async def test_replies_are_read_aloud_when_enabled(engine: ScriptedEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    from assistant import tts

    FakeSpeaker.instances.clear()
    monkeypatch.setattr(tts, "available", lambda: True)
    monkeypatch.setattr(tts, "Speaker", FakeSpeaker)
    engine.enqueue("Hello.", " Bye.")
    engine.enqueue("Once", " upon", " never", hold_after=2)
    settings = config.Settings.model_validate({"speech": {"speak_replies": True}})
    app = make_app(engine, settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await send(pilot, "hi")
        await finished(pilot)
        first = FakeSpeaker.instances[0]
        assert first.fed == ["Hello.", " Bye."] and first.finished and not first.stopped
        await send(pilot, "story")
        await wait_until(pilot, engine.holding.is_set, "the reply to be mid-way")
        await pilot.press("escape")  # stops the reply and the voice
        await finished(pilot)
        second = FakeSpeaker.instances[1]
        assert second.fed == ["Once", " upon"] and second.stopped and not second.finished


async def test_dictation_fills_the_prompt_and_can_send(engine: ScriptedEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    from assistant.ui.widgets.conversation import DictationPanel
    from assistant.ui.widgets.voice import VoicePanel

    toggled: list[bool] = []
    monkeypatch.setattr(DictationPanel, "toggle", lambda self: toggled.append(True))
    engine.enqueue("Bonjour!")
    settings = config.Settings.model_validate({"speech": {"auto_send": False}})
    app = make_app(engine, settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await pilot.press("ctrl+t")
        assert toggled == [True]
        panel = app.query_one(DictationPanel)
        prompt = app.query_one(PromptBar)
        prompt.insert("Translate:")
        panel.post_message(VoicePanel.DictationFinished("hello world", 1.5, 0.2))
        await wait_until(pilot, lambda: prompt.text == "Translate: hello world", "the dictated text in the prompt")
        assert not app.query(ReplyTurn)  # not sent: auto_send is off
        app.settings.speech.auto_send = True
        prompt.clear()
        panel.post_message(VoicePanel.DictationFinished("say hi in French", 1.0, 0.2))
        await finished(pilot)
        await wait_until(pilot, lambda: len(app.query(ReplyTurn)) == 1, "the dictated message sent")
        assert [t.text for t in app.query(UserTurn)] == ["say hi in French"]
        panel.post_message(VoicePanel.DictationFailed("no microphone found (plug one in)"))
        await wait_until(pilot, lambda: len(app._notifications) == 1, "the failure notice")
        assert [str(n.message) for n in app._notifications] == ["no microphone found (plug one in)"]


async def test_dictation_worker_crash_reaches_the_one_error_handler(engine: ScriptedEngine) -> None:
    from assistant.ui.widgets.conversation import DictationPanel

    def no_audio() -> Any:
        raise RuntimeError("audio device vanished")

    app = make_app(engine, voice_options={"source_factory": no_audio})
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await pilot.press("ctrl+t")
        panel = app.query_one(DictationPanel)
        await wait_until(pilot, lambda: len(app._notifications) == 1, "the failure notice")
        assert [str(n.message) for n in app._notifications] == ["RuntimeError: audio device vanished"]
        await wait_until(pilot, lambda: not panel.has_class("-active"), "the panel to hide")
        assert not panel.busy


def test_streaming_pace_follows_what_updates_cost(engine: ScriptedEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Updates are spaced so they take at most the allowed share of a core: a small share when the model's
    threads take every core, a large one when a core is spare; always within [MIN, MAX]. The UI thread's
    CPU clock is scripted here, so the figures are exact rather than measured."""
    clock = [1000.0]
    monkeypatch.setattr(time, "thread_time", lambda: clock[0])
    app = make_app(engine)
    cores = len(os.sched_getaffinity(0))
    assert stream_cpu_share(cores) == STREAM_CPU_SHARE_BUSY
    assert stream_cpu_share(cores - 1) == STREAM_CPU_SHARE_SPARE
    app.conversation.pacer.share = STREAM_CPU_SHARE_BUSY
    app.conversation.pacer.pace()  # the first update: nothing measured yet
    assert app.conversation.pacer.interval == STREAM_INTERVAL_MIN
    spent = (STREAM_INTERVAL_MIN + STREAM_INTERVAL_MAX) / 2 * STREAM_CPU_SHARE_BUSY  # paces inside [MIN, MAX]
    clock[0] += spent  # what the UI thread spent on the last update
    app.conversation.pacer.pace()
    assert app.conversation.pacer.interval == pytest.approx(spent / STREAM_CPU_SHARE_BUSY)
    app.conversation.pacer.share = STREAM_CPU_SHARE_SPARE  # a spare core: the same cost paces faster, down to MIN
    clock[0] += spent
    app.conversation.pacer.pace()
    assert app.conversation.pacer.interval == STREAM_INTERVAL_MIN
    app.conversation.pacer.share = STREAM_CPU_SHARE_BUSY
    clock[0] += STREAM_INTERVAL_MAX  # an update that cost half a second: the pace stops at MAX
    app.conversation.pacer.pace()
    assert app.conversation.pacer.interval == STREAM_INTERVAL_MAX
    app.conversation.pacer.pace()  # nothing spent since: back to MIN
    assert app.conversation.pacer.interval == STREAM_INTERVAL_MIN


@pytest.mark.parametrize(("interval", "posts"), [(0.0, "every chunk"), (3600.0, "first, then the rest")])
async def test_streamed_batches_keep_every_chunk_once_in_order(
    engine: ScriptedEngine, monkeypatch: pytest.MonkeyPatch, interval: float, posts: str
) -> None:
    """The pump batches chunks by the pace: every chunk posted on its own when the interval is 0; with an
    interval nothing reaches, the first chunk at once and the rest in one batch when the reply ends. Either
    way the reply holds every chunk exactly once, in order, and the token count is the chunk count."""
    from assistant.ui import pacing

    monkeypatch.setattr(pacing, "STREAM_INTERVAL_MIN", interval)
    monkeypatch.setattr(pacing, "STREAM_INTERVAL_MAX", interval)
    chunks = [f"w{i} " for i in range(40)]
    engine.enqueue(*chunks)
    batches: list[tuple[str, int]] = []

    class Recording(AssistantApp):
        def on_reply_streamed(self, message: Any) -> None:  # runs before AssistantApp's own handler
            batches.append((message.text, message.tokens))

    app = Recording(engine_factory=lambda model_id: engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await send(pilot, "count to forty")
        await finished(pilot)
        assert app.query_one(ReplyTurn).text == "".join(chunks)
    if posts == "every chunk":
        assert batches == [(chunk, i + 1) for i, chunk in enumerate(chunks)]
    else:
        assert batches == [(chunks[0], 1), ("".join(chunks[1:]), len(chunks))]
    assert [m.content for m in stored_messages()] == ["count to forty", "".join(chunks)]


async def test_keys_are_handled_while_a_reply_streams(engine: ScriptedEngine) -> None:
    """Typing into the prompt and a binding both take effect while the reply is still being generated."""
    engine.enqueue("Once upon", " a time", " never shown", hold_after=2)
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await send(pilot, "tell me a story")
        await wait_until(pilot, engine.holding.is_set, "the reply to be mid-way")
        prompt = app.query_one(PromptBar)
        prompt.focus()
        await pilot.press(*"next")
        await wait_until(pilot, lambda: prompt.text == "next", "the typed keys in the prompt")
        await pilot.press("ctrl+b")
        await wait_until(pilot, lambda: app.screen.has_class("-sidebar-closed"), "the sidebar to close")
        assert app.generating and app.conversation.reply is not None  # all of it before the reply ended
        await pilot.press("escape")
        await finished(pilot)
        assert prompt.text == "next"  # stopping the reply kept what was typed


async def test_bad_config_closes_the_app_with_its_one_line_error(engine: ScriptedEngine) -> None:
    """config.toml is validated just after the first frame: a bad value quits the app, and run() raises the
    error the CLI prints as one line. The first frame used the file's theme, read without validation."""
    from assistant import paths

    paths.ensure(paths.config_file().parent)
    paths.write_text_atomic(paths.config_file(), '[ui]\ntheme = "textual-light"\n[chat]\ntemperature = "hot"\n')
    app = AssistantApp(engine_factory=lambda model_id: engine)
    assert app.theme == "textual-light"
    async with app.run_test() as pilot:
        await wait_until(pilot, lambda: app.fatal is not None, "the settings to be validated")
    assert app.fatal is not None and "chat.temperature" in str(app.fatal)
    assert app.engine is None  # nothing was loaded


def test_bare_assistant_reports_a_bad_config_in_one_line() -> None:
    from assistant import paths

    paths.ensure(paths.config_file().parent)
    paths.write_text_atomic(paths.config_file(), "[runtime]\nthreads = 0\n")
    result = run_cli(timeout=60)  # no arguments: the TUI, which quits at once
    assert result.returncode == 1 and "Traceback" not in result.stderr
    # without a terminal Textual draws on stderr; the error follows, on its own line, once the screen is left
    last = result.stderr.rstrip().rsplit("\x1b[?1006l", 1)[-1]
    assert last.startswith("error: ") and "runtime.threads" in last and "\n" not in last


async def test_startup_does_not_wait_forever_for_the_footer(engine: ScriptedEngine) -> None:
    """Settings and models are read once the footer's keys are painted, or after FIRST_FRAME_WAIT at most:
    an app whose footer never shows still starts."""

    class NoFooter(AssistantApp):
        CSS = "Footer { display: none; }"

    app = NoFooter(engine_factory=lambda model_id: engine)
    async with app.run_test() as pilot:
        await wait_until(pilot, lambda: app.engine is not None, "the model to load", 10)


async def test_footer_keys_are_in_the_first_frame(engine: ScriptedEngine) -> None:
    """KeyFooter composes its keys at mount (Textual's Footer waits a few repaints): the first frame is
    complete. This checks the Footer internals KeyFooter relies on still behave."""
    seen: list[int] = []

    class Probe(AssistantApp):
        def on_mount(self) -> None:
            seen.append(len(self.query_one(KeyFooter).query(FooterKey)))
            super().on_mount()

    app = Probe(engine_factory=lambda model_id: engine)
    async with app.run_test():
        pass
    assert seen and seen[0] >= 5, seen


async def test_reply_starts_once_the_turn_is_painted_without_waiting_out_the_timeout(
    engine: ScriptedEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The generation worker waits for the UI to paint the new turn (Settle) before the model starts:
    that wait ends with the paint, in a new chat and in an existing one, never by SETTLE_TIMEOUT (set here
    to 30 s, beyond the 10 s ``finished`` waits, so a wait that only the timeout ended fails the test)."""
    from assistant.ui.widgets import conversation

    assert SETTLE_TIMEOUT < 30
    monkeypatch.setattr(conversation, "SETTLE_TIMEOUT", 30.0)
    events: list[str] = []
    stream = engine.stream

    def recorded_stream(*args: Any, **kwargs: Any) -> Any:
        events.append("model starts")
        return stream(*args, **kwargs)

    engine.stream = recorded_stream  # type: ignore[method-assign]

    class Recording(AssistantApp):
        def on_settle(self, message: Any) -> None:  # runs before AssistantApp's own handler
            events.append("settle asked")
            done = message.done.set

            def painted() -> None:
                events.append(f"painted with {len(self.query(UserTurn))} turns")
                done()

            message.done.set = painted

    app = Recording(engine_factory=lambda model_id: engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        for text in ("first message, new chat", "second message, same chat", "third"):
            engine.enqueue("ok")
            await send(pilot, text)
            await finished(pilot)
    assert events == [step for n in (1, 2, 3) for step in ("settle asked", f"painted with {n} turns", "model starts")]


async def test_the_status_line_shows_a_speculative_replys_drafts_and_gain(engine: ScriptedEngine) -> None:
    from assistant.chat import Stats

    engine.enqueue("Renamed.", stats=Stats(completion_tokens=60, tokens_per_second=42.0, drafted_tokens=40,
                                           accepted_tokens=30, plain_tokens_per_second=28.0))  # fmt: skip
    engine.enqueue("Plain.")
    app = AssistantApp(engine_factory=lambda model_id: engine)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        await send(pilot, "rename it")
        await finished(pilot)
        state = app.query_one("#status-state", Label)
        await wait_until(pilot, lambda: str(state.content) == "drafts 30/40 · 1.50×", "the drafts figure")
        await send(pilot, "and now?")
        await finished(pilot)
        await wait_until(pilot, lambda: str(state.content) == "", "no figure for a reply without drafts")
