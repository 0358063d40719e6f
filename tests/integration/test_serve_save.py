"""``assistant serve --save``: API conversations in the chat history only when asked, one chat per conversation.

Real server, real SmolLM2, the official ``openai`` client; the history is read back with ``assistant chats``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from conftest import run_cli
from helpers.serve import SMOL, Served, make_home, start

pytestmark = pytest.mark.slow


@pytest.fixture
def fresh_home(starter_files: dict[str, Path], tmp_path: Path) -> Path:
    return make_home(tmp_path, starter_files)


@pytest.fixture
def serving(fresh_home: Path) -> Iterator[Any]:
    started: list[Served] = []

    def run(*args: str) -> openai.OpenAI:
        served = start(fresh_home, *args, key=None)
        started.append(served)
        return openai.OpenAI(base_url=served.url + "/v1", api_key="-", max_retries=0, timeout=600)

    yield run
    for served in started:
        assert served.stop() == 0, served.log.read_text()


def chats(home: Path) -> list[dict[str, Any]]:
    result = run_cli("chats", "list", "--json", env={"ASSISTANT_HOME": str(home)})
    assert result.returncode == 0, result.stderr
    listed: list[dict[str, Any]] = json.loads(result.stdout)
    return listed


def messages(home: Path, chat_id: int) -> list[tuple[str, str]]:
    result = run_cli("chats", "show", str(chat_id), "--json", env={"ASSISTANT_HOME": str(home)})
    assert result.returncode == 0, result.stderr
    return [(m["role"], m["content"]) for m in json.loads(result.stdout)["messages"]]


def test_without_save_nothing_is_stored(serving: Any, fresh_home: Path) -> None:
    client = serving()
    reply = client.chat.completions.create(
        model=SMOL, messages=[{"role": "user", "content": "Name a colour."}], max_tokens=8, temperature=0
    )
    assert reply.choices[0].message.content
    assert chats(fresh_home) == []


def test_with_save_a_conversation_is_one_chat_continued_turn_by_turn(serving: Any, fresh_home: Path) -> None:
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

    listed = chats(fresh_home)
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
    assert len(chats(fresh_home)) == 2  # a new conversation is a new chat
    newest = chats(fresh_home)[0]
    assert messages(fresh_home, newest["id"]) == [
        ("user", "The capital of France is"),
        ("assistant", other.choices[0].text),
    ]
