"""The TUI with the real SmolLM2 model through the real engine, session and history (no fakes)."""

from __future__ import annotations

from typing import Any

import pytest

from assistant import config
from assistant.history import History
from assistant.ui.app import AssistantApp
from assistant.ui.widgets.chat_log import ReplyTurn
from assistant.ui.widgets.prompt_bar import PromptBar
from assistant.ui.widgets.status_bar import StatusBar

from helpers.ui import wait_until


@pytest.mark.slow
async def test_real_model_answers_through_the_tui(installed_models: dict[str, Any]) -> None:
    settings = config.Settings.model_validate(
        {"chat": {"temperature": 0, "max_tokens": 24}, "runtime": {"context_size": 1024, "threads": 2}}
    )
    app = AssistantApp(settings=settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: app.engine is not None, "SmolLM2 to load", timeout=120)
        assert app.model_id == "smollm2-135m-instruct:q4_1"
        status = app.query_one(StatusBar)
        assert status.context_total == 1024
        prompt = app.query_one(PromptBar)
        prompt.insert("What is the capital of France? Answer in one word.")
        await pilot.press("enter")
        await wait_until(pilot, lambda: not app.generating and app.conversation.reply is None, "the reply", timeout=300)
        reply = app.query_one(ReplyTurn)
        assert "paris" in reply.text.lower()
        assert status.tokens_per_second and status.tokens_per_second > 0
        assert status.context_used and status.context_used > 20
    history = History()
    try:
        (chat,) = history.list_chats()
        stored = history.messages(chat.id)
        assert [m.role for m in stored] == ["user", "assistant"]
        assert stored[1].content == reply.text and not stored[1].partial
        assert stored[1].completion_tokens and stored[1].finish_reason in ("stop", "length")
    finally:
        history.close()
