"""``assistant serve --save``: API conversations in the chat history only when asked, one chat per conversation.

Real server, real SmolLM2, the official ``openai`` client; the history is read back with ``assistant chats``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import run_cli
from helpers.serve import SMOL, fresh_home, serving  # noqa: F401  (fixtures)

pytestmark = pytest.mark.slow


def chats(home: Path) -> list[dict[str, Any]]:
    result = run_cli("chats", "list", "--json", env={"ASSISTANT_HOME": str(home)})
    assert result.returncode == 0, result.stderr
    listed: list[dict[str, Any]] = json.loads(result.stdout)
    return listed


def messages(home: Path, chat_id: int) -> list[tuple[str, str]]:
    result = run_cli("chats", "show", str(chat_id), "--json", env={"ASSISTANT_HOME": str(home)})
    assert result.returncode == 0, result.stderr
    return [(m["role"], m["content"]) for m in json.loads(result.stdout)["messages"]]


def test_without_save_nothing_is_stored(serving: Callable[..., Any], fresh_home: Path) -> None:  # noqa: F811
    client = serving()
    reply = client.chat.completions.create(
        model=SMOL, messages=[{"role": "user", "content": "Name a colour."}], max_tokens=8, temperature=0
    )
    assert reply.choices[0].message.content
    assert chats(fresh_home) == []


def test_with_save_a_conversation_is_one_chat_continued_turn_by_turn(
    serving: Callable[..., Any],  # noqa: F811
    fresh_home: Path,  # noqa: F811
) -> None:
    client = serving("--save")
    turn: list[Any] = [
        {"role": "system", "content": "You answer in one short sentence."},
        {"role": "user", "content": "Name a colour."},
    ]
    first = client.chat.completions.create(model=SMOL, messages=turn, max_tokens=8, temperature=0)
    answer = first.choices[0].message.content
    assert answer
    turn += [{"role": "assistant", "content": answer}, {"role": "user", "content": "And a fruit?"}]
    second = client.chat.completions.create(model=SMOL, messages=turn, max_tokens=8, temperature=0, stream=True)
    streamed = "".join(c.choices[0].delta.content or "" for c in second if c.choices)
    assert streamed

    listed = chats(fresh_home)  # stored before the stream's last event: the client has read [DONE]
    assert len(listed) == 1, listed  # the second request continued the first chat, not a copy of it
    chat = listed[0]
    assert chat["model"] == SMOL and chat["title"].startswith("Name a colour")
    assert messages(fresh_home, chat["id"]) == [
        ("user", "Name a colour."),
        ("assistant", answer),
        ("user", "And a fruit?"),
        ("assistant", streamed),
    ]
    shown = run_cli("chats", "show", str(chat["id"]), "--json", env={"ASSISTANT_HOME": str(fresh_home)})
    assert json.loads(shown.stdout)["system_prompt"] == "You answer in one short sentence."

    other = client.completions.create(model=SMOL, prompt="The capital of France is", max_tokens=4, temperature=0)
    assert len(chats(fresh_home)) == 2  # a new conversation is a new chat (a whole reply is stored before it is sent)
    newest = chats(fresh_home)[0]
    assert messages(fresh_home, newest["id"]) == [
        ("user", "The capital of France is"),
        ("assistant", other.choices[0].text),
    ]
