"""The TUI with the real SmolLM2 model through the real engine, session and history (no fakes)."""

from __future__ import annotations

import os
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


@pytest.mark.slow
async def test_loading_the_model_leaves_the_terminal_to_the_screen(
    installed_models: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Textual paints to file descriptor 2 from its writer thread. llama-cpp-python (verbose=False) used to
    dup2() /dev/null over fds 1 and 2 while a model loaded, so every paint meanwhile went nowhere and those
    regions stayed stale: a command palette closed during the load stayed drawn over the chat it had opened,
    and keys seemed ignored (the "freeze" after a kill -9 restart, issue 11). The load must leave them alone."""
    redirected: list[tuple[int, int]] = []
    real_dup2 = os.dup2

    def dup2(fd: int, fd2: int, inheritable: bool = True) -> int:
        if fd2 in (1, 2):
            redirected.append((fd, fd2))
        return real_dup2(fd, fd2, inheritable)

    monkeypatch.setattr(os, "dup2", dup2)
    settings = config.Settings.model_validate({"runtime": {"context_size": 512, "threads": 1}})
    app = AssistantApp(settings=settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: app.engine is not None, "SmolLM2 to load", timeout=300)
    assert redirected == []
