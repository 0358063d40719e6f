"""`assistant chat` and `assistant chats ...` through the real entry point (subprocesses, real models)."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from assistant.chat import Stats
from assistant.history import History

from conftest import GEMMA, REPO, SMOL, assert_one_line_error, run_cli, wait_until

JSON_KEYS = {
    "chat_id",
    "model",
    "text",
    "finish_reason",
    "prompt_tokens",
    "completion_tokens",
    "ttft_ms",
    "tokens_per_second",
}
FAST = ("--max-tokens", "12", "--temperature", "0", "--ctx", "1024")


@pytest.mark.slow
def test_chat_json(installed_models: dict[str, object]) -> None:
    result = run_cli("chat", "-p", "What is the capital of France?", "--json", *FAST)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) >= JSON_KEYS
    assert data["model"] == SMOL and data["text"].strip()
    assert 0 < data["completion_tokens"] <= 12 and data["prompt_tokens"] > 0
    assert data["ttft_ms"] > 0 and data["tokens_per_second"] > 0
    assert data["finish_reason"] in ("stop", "length") and data["partial"] is False

    # continue the same chat: it sees the history and reuses nothing it should not
    again = run_cli("chat", "--chat", str(data["chat_id"]), "-p", "And of Italy?", "--json", *FAST)
    assert again.returncode == 0, again.stderr
    follow = json.loads(again.stdout)
    assert follow["chat_id"] == data["chat_id"] and follow["prompt_tokens"] > data["prompt_tokens"]
    shown = json.loads(run_cli("chats", "show", str(data["chat_id"]), "--json").stdout)
    assert [m["role"] for m in shown["messages"]] == ["user", "assistant", "user", "assistant"]
    assert shown["messages"][1]["content"] == data["text"]
    assert shown["options"] == {"max_tokens": 12, "temperature": 0.0}


@pytest.mark.slow
def test_chat_streams_stdin_prompt_to_stdout(installed_models: dict[str, object]) -> None:
    result = run_cli("chat", *FAST, input="Name a fruit.\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() and result.stdout.endswith("\n")
    assert "Traceback" not in result.stderr
    chats = json.loads(run_cli("chats", "list", "--json").stdout)
    assert len(chats) == 1 and chats[0]["messages"] == 2 and chats[0]["title"] == "Name a fruit."


@pytest.mark.slow
def test_completion_mode_notice_goes_to_stderr(installed_models: dict[str, object]) -> None:
    result = run_cli("chat", "-m", GEMMA, "-p", "The capital of France is", *FAST)
    assert result.returncode == 0, result.stderr
    assert f"[{GEMMA} has no chat template: completion mode]" in result.stderr
    assert result.stdout.strip() and "completion mode" not in result.stdout


@pytest.mark.slow
def test_chat_errors_are_one_line(installed_models: dict[str, object]) -> None:
    assert "not installed" in assert_one_line_error(run_cli("chat", "-m", "qwen2.5-0.5b-instruct:q4_k_m", "-p", "hi"))
    assert "empty" in assert_one_line_error(run_cli("chat", "-p", "  "))
    assert "stdin was empty" in assert_one_line_error(run_cli("chat", input=""))
    assert "no chat 42" in assert_one_line_error(run_cli("chat", "--chat", "42", "-p", "hi"))
    assert json.loads(run_cli("chats", "list", "--json").stdout) == [], "a bad --model creates no chat"

    too_long = run_cli("chat", "-p", "word " * 400, "--ctx", "256", "--max-tokens", "16")
    assert "too long" in assert_one_line_error(too_long)
    chats = json.loads(run_cli("chats", "list", "--json").stdout)
    assert [c["messages"] for c in chats] == [1], "the message is kept, with no empty reply"


def _seed_history() -> tuple[int, int]:
    history = History()
    try:
        rivers = history.create_chat(model_id=SMOL, system_prompt="Be brief.")
        history.add_message(rivers.id, "user", "Name a river in Europe.")
        reply = history.start_reply(rivers.id, SMOL)
        history.finish_reply(reply, "The Danube flows through ten countries.", Stats(completion_tokens=8))
        eggs = history.create_chat(model_id=GEMMA)
        history.add_message(eggs.id, "user", "How long to boil an egg?")
        return rivers.id, eggs.id
    finally:
        history.close()


def test_chats_commands(tmp_path: Path) -> None:
    rivers, eggs = _seed_history()

    listed = json.loads(run_cli("chats", "list", "--json").stdout)
    assert [c["id"] for c in listed] == [eggs, rivers]
    assert listed[1] | {"messages": 2, "model": SMOL, "title": "Name a river in Europe."} == listed[1]
    plain = run_cli("chats", "list")
    assert plain.returncode == 0 and "Name a river in Europe." in plain.stdout

    shown = run_cli("chats", "show", str(rivers))
    assert "The Danube flows through ten countries." in shown.stdout and "Be brief." in shown.stdout

    hits = json.loads(run_cli("chats", "search", "danube", "--json").stdout)
    assert [h["chat"]["id"] for h in hits] == [rivers] and "Danube" in hits[0]["snippet"]
    assert json.loads(run_cli("chats", "search", "volcano", "--json").stdout) == []

    renamed = run_cli("chats", "rename", str(eggs), "Eggs")
    assert renamed.returncode == 0 and "Eggs" in renamed.stdout
    assert json.loads(run_cli("chats", "search", "eggs", "--json").stdout)[0]["chat"]["title"] == "Eggs"

    out = tmp_path / "exports" / "rivers.md"
    out.parent.mkdir()
    exported = run_cli("chats", "export", str(rivers), "-o", str(out))
    assert exported.returncode == 0, exported.stderr
    text = out.read_text()
    assert text.startswith("# Name a river in Europe.") and "## Assistant\n\nThe Danube" in text
    assert [p.name for p in out.parent.iterdir()] == ["rivers.md"], "no temp file left behind"
    assert run_cli("chats", "export", str(rivers)).stdout == text
    as_json = tmp_path / "exports" / "rivers.json"  # the name picks the format; --format says it outright
    assert run_cli("chats", "export", str(rivers), "-o", str(as_json)).returncode == 0
    doc = json.loads(as_json.read_text())
    assert doc["chat"]["id"] == rivers and [m["role"] for m in doc["messages"]] == ["user", "assistant"]
    assert doc["messages"][1]["content"] == "The Danube flows through ten countries."
    assert json.loads(run_cli("chats", "export", str(rivers), "--format", "json").stdout) == doc

    assert "no chat 999" in assert_one_line_error(run_cli("chats", "show", "999"))
    assert "no chat 999" in assert_one_line_error(run_cli("chats", "rm", str(rivers), "999"))
    assert len(json.loads(run_cli("chats", "list", "--json").stdout)) == 2, "nothing deleted on a bad id"
    assert "no such folder" in assert_one_line_error(run_cli("chats", "export", str(rivers), "-o", "/nonexistent/x.md"))

    removed = run_cli("chats", "rm", str(rivers))
    assert removed.returncode == 0
    assert [c["id"] for c in json.loads(run_cli("chats", "list", "--json").stdout)] == [eggs]


class Terminal:
    """The CLI on a pseudo-terminal, so stdin is a TTY and Ctrl+C is a real SIGINT from the line discipline."""

    def __init__(self, *args: str) -> None:
        master, slave = pty.openpty()
        self.master = master
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "assistant", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=REPO,
            env=os.environ.copy(),
            start_new_session=True,  # its own session, with the pty as controlling terminal
            preexec_fn=lambda: __import__("fcntl").ioctl(0, __import__("termios").TIOCSCTTY, 0),
        )
        os.close(slave)
        self.output = b""
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 4096)
            except OSError:
                return
            if not data:
                return
            with self._lock:
                self.output += data

    def text(self) -> str:
        with self._lock:
            return self.output.decode("utf-8", "replace")

    def send(self, data: str) -> None:
        os.write(self.master, data.encode())

    def close(self) -> int:
        try:
            return self.proc.wait(timeout=60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            os.close(self.master)


@pytest.mark.slow
def test_repl_new_and_ctrl_c(installed_models: dict[str, object]) -> None:
    term = Terminal("chat", "--temperature", "0", "--max-tokens", "400", "--ctx", "1024")
    try:
        wait_until(lambda: ">>> " in term.text(), what="the prompt", timeout=120)
        term.send("Name a colour.\n")
        wait_until(lambda: term.text().count(">>> ") >= 2, what="the first reply", timeout=120)

        term.send("/new\n")
        wait_until(lambda: "new chat" in term.text(), what="/new", timeout=120)
        term.send("Write a very long story about a dragon and a knight.\n")
        history = History()

        def reply_started() -> bool:
            rows = [m for c in history.list_chats() for m in history.messages(c.id) if m.role == "assistant"]
            return len(rows) == 2 and any(m.partial and len(m.content) > 20 for m in rows)

        wait_until(reply_started, what="the second reply to stream", timeout=120)
        term.send("\x03")  # Ctrl+C: stops the reply, not the program
        wait_until(lambda: "kept as a partial reply" in term.text(), what="the cancel", timeout=120)
        term.send("\x04")  # Ctrl+D at the prompt: exit
        assert term.close() == 0, term.text()
    finally:
        if term.proc.poll() is None:
            term.proc.send_signal(signal.SIGKILL)
            term.close()

    chats = history.list_chats()
    assert len(chats) == 2
    first, second = (history.messages(c.id) for c in sorted(chats, key=lambda c: c.id))
    assert [m.role for m in first] == ["user", "assistant"] and not first[1].partial
    assert [m.role for m in second] == ["user", "assistant"]
    assert second[1].partial and second[1].finish_reason == "cancelled" and second[1].content
    assert "Traceback" not in term.text()
    history.close()


@pytest.mark.slow
def test_regenerate_keeps_the_old_reply_and_all_branches_shows_both(installed_models: dict[str, object]) -> None:
    first = run_cli("chat", "-p", "Name a colour.", "--json", *FAST)
    assert first.returncode == 0, first.stderr
    data = json.loads(first.stdout)
    chat_id = str(data["chat_id"])
    again = run_cli("chat", "--chat", chat_id, "--regenerate", "--json", "--temperature", "0.9", "--seed", "5")
    assert again.returncode == 0, again.stderr
    redo = json.loads(again.stdout)
    assert (
        redo["chat_id"] == data["chat_id"] and redo["text"].strip() and redo["prompt_tokens"] == data["prompt_tokens"]
    )

    shown = json.loads(run_cli("chats", "show", chat_id, "--json").stdout)
    assert [(m["role"], m["content"]) for m in shown["messages"]] == [
        ("user", "Name a colour."),
        ("assistant", redo["text"]),
    ]
    assert [m["alternative"] for m in shown["messages"]] == [[1, 1], [2, 2]]
    every = json.loads(run_cli("chats", "show", chat_id, "--all-branches", "--json").stdout)["messages"]
    assert [m["content"] for m in every] == ["Name a colour.", data["text"], redo["text"]]
    assert every[1]["parent_id"] == every[2]["parent_id"] == every[0]["id"]
    text = run_cli("chats", "show", chat_id).stdout
    assert "assistant ‹ 2/2 ›:" in text and data["text"].strip() not in text.replace(redo["text"], "")
    assert (
        f"#{every[2]['id']} assistant after #{every[0]['id']}:"
        in run_cli("chats", "show", chat_id, "--all-branches").stdout
    )

    assert "--regenerate" in assert_one_line_error(run_cli("chat", "--regenerate"))
    assert "--regenerate" in assert_one_line_error(run_cli("chat", "--chat", chat_id, "--regenerate", "-p", "x"))
    empty = run_cli("chats", "show", chat_id, "--json")
    assert len(json.loads(empty.stdout)["messages"]) == 2  # a refusal stores nothing
