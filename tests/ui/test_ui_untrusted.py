"""Untrusted text in the TUI (issue 10, items 1 and 2): chat titles, messages, model ids from the store and
error texts are shown as written. A ``[/]`` title crashed the app at start (MarkupError), a ``[/] hi`` first
message crashed it when the reply finished, a ``[link=...]`` title became a link, and control codes reached
the screen. The real app with a scripted engine, its real chat history and store under the test's home.
"""

from __future__ import annotations

from typing import Any

from textual.command import CommandList, CommandPalette
from textual.widgets import DataTable, Label

from assistant.errors import AssistantError
from assistant.history import History
from assistant.ui.app import AssistantApp
from assistant.ui.widgets.chat_log import ChatLog, NoticeView, UserTurn
from assistant.ui.widgets.prompt_bar import PromptBar
from assistant.ui.widgets.sidebar import ChatList
from assistant.ui.widgets.status_bar import StatusBar

from helpers.ui import FAKE_MODEL, ScriptedEngine, open_model_picker, register_fake_model, wait_until

MARKUP = ["[/] what does this tag mean?", "[link=https://example.com]click me[/link]", "[$accent]x [B]y[/B]"]
CODES = "\x1b]8;;http://x\x07link\x1b]8;;\x07 \x1b[31mred\x9b2J"
CONTROL = ("\x1b", "\x07", "\x9b")


def make_app(engine: ScriptedEngine) -> AssistantApp:
    return AssistantApp(engine_factory=lambda model_id: engine)


async def ready(pilot: Any) -> AssistantApp:
    app: AssistantApp = pilot.app
    await wait_until(pilot, lambda: app.engine is not None, "the model to load")
    return app


def make_chat(title: str, text: str) -> None:
    history = History()
    try:
        chat = history.create_chat(title=title, model_id=FAKE_MODEL)
        history.add_message(chat.id, "user", text)
        history.add_message(chat.id, "assistant", text)
    finally:
        history.close()


def shown(widget: Any) -> str:
    """What a widget paints, as plain text (its render, after markup, if any, was applied)."""
    return str(widget.render())


async def test_hostile_titles_in_the_sidebar_at_start_and_in_the_palette(engine: ScriptedEngine) -> None:
    for title in [*MARKUP, f"codes {CODES}"]:
        make_chat(title, f"body {title}")
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        chat_list = app.query_one(ChatList)
        await wait_until(pilot, lambda: chat_list.option_count == 4, "the chats listed")
        await pilot.pause()  # painted
        prompts = [str(o.prompt) for o in chat_list.options]
        assert prompts == ["codes ]8;;http://xlink]8;; [31mred2J", *reversed(MARKUP)]
        # the palette offers each chat by its title, literally (it parses titles as markup)
        await pilot.press("ctrl+p")
        await wait_until(pilot, lambda: isinstance(app.screen, CommandPalette), "the palette")
        await pilot.press(*"open chat")
        results = app.screen.query_one(CommandList)
        await wait_until(pilot, lambda: results.option_count >= 4, "the chats offered")
        await pilot.pause()
        offered = "\n".join(str(results.get_option_at_index(i).prompt) for i in range(results.option_count))
        for title in MARKUP:
            assert f"Open chat: {title}" in offered
        assert not any(c in offered for c in CONTROL)
        await pilot.press("escape")
        # opening one shows its messages as written, and its title in the header
        chat_list.focus()
        chat_list.highlighted = prompts.index(MARKUP[0])
        await pilot.press("enter")
        log = app.query_one(ChatLog)
        await wait_until(pilot, lambda: bool(log.query(UserTurn)), "the chat opened")
        assert [shown(t.query_one(".body")) for t in log.query(UserTurn)] == [f"body {MARKUP[0]}"]
        assert app.sub_title == MARKUP[0]
    assert app.return_code in (None, 0)


async def test_a_markup_first_message_becomes_a_literal_title(engine: ScriptedEngine) -> None:
    engine.enqueue("It closes a tag.")
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        prompt = app.query_one(PromptBar)
        prompt.focus()
        prompt.insert("[/] hi")
        await pilot.press("enter")
        await wait_until(pilot, lambda: not app.generating and app.conversation.reply is None, "the reply to finish")
        chat_list = app.query_one(ChatList)
        await wait_until(pilot, lambda: chat_list.option_count == 1, "the new chat listed")
        await pilot.pause()
        assert [str(o.prompt) for o in chat_list.options] == ["[/] hi"]
        assert app.sub_title == "[/] hi"
        # rename and delete quote the title in their dialogs
        await pilot.press("f8")
        await wait_until(pilot, lambda: bool(app.screen.query("#yes")), "the delete confirmation")
        await pilot.pause()
        assert shown(app.screen.query_one(".dialog-title", Label)) == "Delete “[/] hi”?"
        await pilot.press("escape")
    assert app.return_code in (None, 0)


async def test_control_codes_in_a_reply_and_a_notice_do_not_reach_the_screen(engine: ScriptedEngine) -> None:
    engine.enqueue(f"reply {CODES}", notices=[f"notice [/] {CODES}"])
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        prompt = app.query_one(PromptBar)
        prompt.focus()
        prompt.insert(f"ask {CODES}")
        await pilot.press("enter")
        await wait_until(pilot, lambda: not app.generating and app.conversation.reply is None, "the reply to finish")
        log = app.query_one(ChatLog)
        user = shown(log.query_one(UserTurn).query_one(".body"))
        notice = shown(log.query_one(NoticeView))
        reply = log.replies[-1].markdown.source
        for text in (user, notice, reply):
            assert "red" in text and not any(c in text for c in CONTROL), repr(text)
        assert notice.startswith("notice [/] ")
        assert [str(o.prompt) for o in app.query_one(ChatList).options] == ["ask ]8;;http://xlink]8;; [31mred2J"]


async def test_a_hostile_model_id_in_the_store_shows_in_the_picker_and_status_bar() -> None:
    register_fake_model()
    hostile = "[/]evil [link=https://example.com]x[/link]"  # ids are validated; a store row is still data
    register_fake_model(hostile)

    def factory(model_id: str) -> ScriptedEngine:
        return ScriptedEngine(model_id)

    app = AssistantApp(engine_factory=factory)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        table = await open_model_picker(pilot, 2)
        await pilot.pause()
        cells = [str(table.get_row_at(i)[0]).strip(" ●") for i in range(2)]
        assert sorted(cells) == sorted([FAKE_MODEL, hostile])
        table.move_cursor(row=cells.index(hostile))
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.model_id == hostile and app.engine is not None, "the switch")
        status = app.query_one(StatusBar)
        await pilot.pause()
        assert shown(status.query_one("#status-model", Label)) == hostile
    assert app.return_code in (None, 0)


async def test_a_notification_carrying_markup_and_codes_is_shown_as_text() -> None:
    register_fake_model()
    message = f"[/]evil [link=https://example.com]click me[/link] {CODES}"

    def failing(model_id: str) -> ScriptedEngine:
        raise AssistantError(message)

    app = AssistantApp(engine_factory=failing)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:  # run_test hides toasts by default
        status = app.query_one(StatusBar)
        await wait_until(pilot, lambda: status.state == "error", "the load to fail")
        await wait_until(pilot, lambda: bool(app.screen.query("Toast")), "the toast")
        await pilot.pause()
        toast = shown(app.screen.query_one("Toast"))
        assert "[/]evil [link=https://example.com]click me[/link]" in toast
        assert not any(c in toast for c in CONTROL), repr(toast)
        notes = list(app._notifications)
        assert [n.markup for n in notes] == [False]
    assert app.return_code in (None, 0)


async def test_a_stored_benchmark_run_with_hostile_text_is_shown_as_written() -> None:
    from textual.app import App

    from assistant.bench import fingerprint, results
    from assistant.bench.results import Run
    from assistant.ui.screens.bench_screen import BenchScreen

    cpu = f"[/]cpu [link=https://example.com]x[/link] {CODES}"
    rows = [
        {"id": "[/]fam:q8_0", "reference": "[/]fam:q8_0", "is_reference": True, "size_bytes": 9_000_000, "tg_tps": 5.0},
        {"id": f"fam:q4 {CODES}", "reference": "[/]fam:q8_0", "size_bytes": 5_000_000, "tg_tps": 8.0},
    ]
    facts = {**fingerprint.collect(2, 2048), "cpu": cpu}
    results.save(Run(kind="llm", rows=rows, fingerprint=facts, threads=2, context=2048))

    class Host(App[None]):
        def on_mount(self) -> None:
            self.push_screen(BenchScreen())

    app = Host()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, BenchScreen), "the bench screen")
        table = app.screen.query_one("#bench-table", DataTable)
        await wait_until(pilot, lambda: table.row_count == 2, "the table to fill")
        await pilot.pause()
        cells = [str(table.get_row_at(i)[0]) for i in range(2)]
        assert "[/]fam:q8_0 *" in cells
        assert not any(c in "".join(cells) for c in CONTROL)
        machine = shown(app.screen.query_one("#bench-machine", Label))
        assert machine.startswith("[/]cpu [link=https://example.com]x[/link]")
        assert not any(c in machine for c in CONTROL)
    assert app.return_code in (None, 0)


async def test_a_first_run_download_failure_quoting_markup_and_progress_labels_show_as_written() -> None:
    import threading

    from helpers.ui import first_run_shown

    def puller(on_progress: Any, cancel: threading.Event) -> list[Any]:
        on_progress(1, 10, f"[/]file [link=https://example.com]x[/link].gguf {CODES}")
        raise AssistantError(f"[/]mirror said [link=https://example.com]no[/link] {CODES}")

    app = AssistantApp(engine_factory=lambda model_id: ScriptedEngine(), puller=puller)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: first_run_shown(app), "the first-run screen")
        await pilot.click("#pull")
        status = app.screen.query_one("#first-run-status", Label)
        await wait_until(pilot, lambda: "failed" in shown(status), "the failure to show")
        await pilot.pause()
        text = shown(status)
        assert "download failed: [/]mirror said [link=https://example.com]no[/link]" in text
        assert not any(c in text for c in CONTROL), repr(text)
    assert app.return_code in (None, 0)


async def test_dictated_words_and_states_show_without_control_codes_or_markup(engine: ScriptedEngine) -> None:
    from assistant.ui.widgets.voice import VoicePanel

    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        panel = app.query_one(VoicePanel)
        panel.post_message(VoicePanel.TranscriptChanged(f"said {CODES}", f"maybe {CODES}"))
        panel.post_message(VoicePanel.StateChanged("[/]listening [link=https://example.com]x[/link]"))
        text = panel.query_one("#voice-text")
        await wait_until(pilot, lambda: "said" in shown(text), "the words shown")
        await pilot.pause()
        assert "maybe" in shown(text) and not any(c in shown(text) for c in CONTROL), repr(shown(text))
        assert shown(panel.query_one("#voice-state")) == "[/]listening [link=https://example.com]x[/link]"
    assert app.return_code in (None, 0)


async def test_hostile_titles_and_messages_in_search_hits_show_as_written(engine: ScriptedEngine) -> None:
    from textual.widgets import OptionList

    from assistant.ui.screens.search import SearchChats

    make_chat(MARKUP[0], f"needle {MARKUP[1]} {CODES}")
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await pilot.press("ctrl+f")
        await wait_until(pilot, lambda: isinstance(app.screen, SearchChats), "the search screen")
        await pilot.press(*"needle")
        hits = app.screen.query_one("#search-hits", OptionList)
        await wait_until(pilot, lambda: hits.option_count == 1, "the hit")
        line = str(hits.get_option_at_index(0).prompt)
        assert line.startswith(MARKUP[0]) and "[link=https://example.com]click me[/link]" in line
        assert not any(code in line for code in CONTROL)
