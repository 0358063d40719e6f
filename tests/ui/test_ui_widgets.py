"""Widget tests: each widget in a small host app that loads the real app.tcss."""

from __future__ import annotations

from pathlib import Path

from textual.app import App, ComposeResult
from textual.widgets import Markdown

import assistant.ui
from assistant.ui.widgets.chat_log import ChatLog, ReplyTurn, code_blocks
from assistant.ui.widgets.prompt_bar import PromptBar
from assistant.ui.widgets.status_bar import StatusBar

from helpers.ui import wait_until

TCSS = Path(assistant.ui.__file__).parent / "app.tcss"


class Host(App[None]):
    CSS_PATH = TCSS

    def __init__(self, *widgets: object) -> None:
        super().__init__()
        self.widgets = widgets
        self.submitted: list[str] = []

    def compose(self) -> ComposeResult:
        yield from self.widgets  # type: ignore[misc]

    def on_prompt_bar_submitted(self, event: PromptBar.Submitted) -> None:
        self.submitted.append(event.text)


def test_code_blocks_found_in_order() -> None:
    text = "Intro\n```python\nprint(1)\n```\nmid\n~~~\nls -l\n~~~\n```\nunclosed"
    assert code_blocks(text) == ["print(1)", "ls -l"]


async def test_prompt_enter_sends_and_ctrl_j_adds_a_line() -> None:
    app = Host(PromptBar(id="prompt"))
    async with app.run_test() as pilot:
        prompt = app.query_one(PromptBar)
        prompt.focus()
        await pilot.press("h", "i", "ctrl+j", "x")
        assert prompt.text == "hi\nx"
        assert app.submitted == []
        await pilot.press("enter")
        assert app.submitted == ["hi\nx"]
        assert prompt.take() == "hi\nx" and prompt.text == ""
        await pilot.press("enter")  # empty prompt: nothing sent
        assert app.submitted == ["hi\nx"]


async def test_reply_streams_into_markdown_and_keeps_code_blocks() -> None:
    app = Host(ChatLog(id="chat-log"))
    async with app.run_test(size=(80, 30)) as pilot:
        log = app.query_one(ChatLog)
        await log.add_user("show me code")
        reply = await log.add_reply(streaming=True)
        for piece in ["Here:\n\n", "```python\n", "print('hi')\n", "```\n", "Done."]:
            await reply.append(piece)
        await reply.finish(partial=False)
        markdown = reply.query_one(Markdown)
        await wait_until(pilot, lambda: "Done." in markdown.source, "markdown to hold the streamed text")
        assert markdown.source == "Here:\n\n```python\nprint('hi')\n```\nDone."
        assert log.all_code_blocks() == ["print('hi')"]
        assert not reply.has_class("-partial")
        assert len(reply.query("MarkdownFence")) == 1


async def test_partial_reply_is_marked() -> None:
    app = Host(ChatLog(id="chat-log"))
    async with app.run_test() as pilot:
        log = app.query_one(ChatLog)
        reply = await log.add_reply(streaming=True)
        await reply.append("half a")
        await reply.finish(partial=True)
        await pilot.pause()
        assert reply.has_class("-partial")
        assert reply.query_one(".partial-mark").display
        assert isinstance(log.replies[0], ReplyTurn)


async def test_status_bar_shows_model_speed_and_context() -> None:
    app = Host(StatusBar(id="status"))
    async with app.run_test(size=(80, 5)) as pilot:
        status = app.query_one(StatusBar)
        status.model_id = "smollm2-135m-instruct:q4_1"
        status.state = "generating"
        status.tokens_per_second = 51.25
        status.context_used = 312
        status.context_total = 4096
        await pilot.pause()
        text = " ".join(str(label.render()) for label in status.query("Label"))
        assert "smollm2-135m-instruct:q4_1" in text
        assert "generating" in text
        assert "51.2 tok/s" in text
        assert "ctx 312/4096" in text


async def test_chat_log_follows_new_text_only_when_at_the_bottom() -> None:
    app = Host(ChatLog(id="chat-log"))
    async with app.run_test(size=(60, 12)) as pilot:
        log = app.query_one(ChatLog)
        reply = await log.add_reply(streaming=True)
        for n in range(30):
            await reply.append(f"line {n}\n\n")
        await wait_until(pilot, lambda: log.max_scroll_y > 10, "the reply to overflow")
        await wait_until(pilot, lambda: log.scroll_y == log.max_scroll_y, "the view to follow the reply")
        log.focus()
        await pilot.press("home")  # the user scrolls up to read
        await wait_until(pilot, lambda: log.scroll_y == 0, "the scroll to the top")
        for n in range(30, 40):
            await reply.append(f"line {n}\n\n")
        await wait_until(pilot, lambda: "line 39" in reply.markdown.source, "more text")
        await pilot.pause()
        assert log.scroll_y == 0  # left where the user is reading
        await pilot.press("end")  # back at the bottom: following again
        await wait_until(pilot, lambda: log.scroll_y == log.max_scroll_y, "the scroll to the end")
        for n in range(40, 50):
            await reply.append(f"line {n}\n\n")
        await reply.finish(partial=False)
        await wait_until(pilot, lambda: log.scroll_y == log.max_scroll_y and log.max_scroll_y > 30, "following")


async def test_a_screen_dismissed_before_it_has_mounted_leaves_the_app_running() -> None:
    """A fast Esc can dismiss the first-run screen or a confirmation before it has mounted: focusing its
    button then must not look for widgets that are already gone (that query's failure ended the app)."""
    from assistant.ui.screens.dialogs import Confirm
    from assistant.ui.screens.first_run import FirstRunScreen

    class Host(App[None]):
        def on_mount(self) -> None:
            for screen in (FirstRunScreen([("starter:q4_0", 1)], puller=lambda *_: []), Confirm("Delete it?")):
                self.push_screen(screen)
                self.pop_screen()  # in the same turn of the loop: before the screen's own mount has run

    app = Host()
    async with app.run_test() as pilot:
        await pilot.pause()
        await pilot.pause()
        assert len(app.screen_stack) == 1 and app.is_running
    assert app.return_code in (None, 0)
