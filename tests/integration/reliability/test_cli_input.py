"""Hostile or odd input on the command line: bytes that are not UTF-8, a closed stdin, files that are not
files, and the claims about `assistant chat`'s conversation (/new, /exit) and `--debug`.

Each refused input is one clear line, a non-zero exit, and nothing stored; each command runs as a user runs
it (a subprocess of the real entry point, the real models).
"""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, assert_one_line_error, run_cli

# Bytes a user can really have: Latin-1 text, and a UTF-16 surrogate encoded as if it were UTF-8 (CESU-8).
LATIN1 = "café au lait".encode("latin-1")
SURROGATE = b"half \xed\xa0\x80 a pair"


def chats() -> list[dict[str, object]]:
    result = run_cli("chats", "list", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def run_bytes(*args: str, stdin: bytes | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """The CLI with raw bytes on stdin."""
    result = subprocess.run(
        [sys.executable, "-m", "assistant", *args],
        input=stdin,
        capture_output=True,
        env=os.environ.copy(),
        cwd=REPO,
        timeout=timeout,
    )
    return subprocess.CompletedProcess(
        result.args, result.returncode, result.stdout.decode(errors="replace"), result.stderr.decode(errors="replace")
    )


# -- text that is not UTF-8 ----------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [LATIN1, SURROGATE], ids=["latin1", "surrogate"])
def test_prompt_argument_that_is_not_utf8_is_refused_and_nothing_stored(installed_models: object, raw: bytes) -> None:
    # argv bytes that are not UTF-8 reach Python as lone surrogates (surrogateescape); fsdecode makes them so.
    result = run_cli("chat", "-p", os.fsdecode(raw), "--max-tokens", "4")
    line = assert_one_line_error(result)
    assert "--prompt is not valid UTF-8" in line and "nothing was sent" in line
    assert chats() == []  # no empty "(untitled)" chat left behind


@pytest.mark.parametrize("raw", [LATIN1, SURROGATE], ids=["latin1", "surrogate"])
def test_stdin_that_is_not_utf8_is_refused_and_nothing_stored(installed_models: object, raw: bytes) -> None:
    result = run_bytes("chat", "--max-tokens", "4", stdin=raw)
    line = assert_one_line_error(result)
    assert "stdin is not UTF-8 text" in line and "iconv" in line
    assert chats() == []


def test_system_prompt_that_is_not_utf8_is_refused_and_nothing_stored(installed_models: object) -> None:
    result = run_cli("chat", "-p", "hi", "-s", os.fsdecode(LATIN1), "--max-tokens", "4")
    assert "--system is not valid UTF-8" in assert_one_line_error(result)
    assert chats() == []


def test_valid_utf8_on_stdin_still_works(installed_models: object) -> None:
    result = run_bytes("chat", "--max-tokens", "4", "--json", stdin="Un café, s'il vous plaît ?".encode())
    assert result.returncode == 0, result.stderr
    listed = chats()
    assert len(listed) == 1
    shown = json.loads(run_cli("chats", "show", str(listed[0]["id"]), "--json").stdout)
    assert shown["messages"][0]["content"] == "Un café, s'il vous plaît ?"


# -- stdin closed (`<&-`) ------------------------------------------------------------------------------------


def run_stdin_closed(*args: str) -> subprocess.CompletedProcess[str]:
    script = 'exec "$0" -m assistant "$@" <&-'
    return subprocess.run(
        ["bash", "-c", script, sys.executable, *args], capture_output=True, text=True, cwd=REPO, timeout=300
    )


def test_chat_with_stdin_closed_and_no_prompt_is_one_clear_line(installed_models: object) -> None:
    line = assert_one_line_error(run_stdin_closed("chat"))
    assert "stdin is closed" in line and "--prompt" in line
    assert chats() == []


def test_chat_with_stdin_closed_and_a_prompt_works(installed_models: object) -> None:
    result = run_stdin_closed("chat", "-p", "Say hi", "--max-tokens", "4", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["completion_tokens"] >= 1
    assert len(chats()) == 1


# -- files that are not regular files -------------------------------------------------------------------------


def _not_files(tmp_path: Path) -> dict[str, Path]:
    fifo = tmp_path / "audio.fifo"
    os.mkfifo(fifo)  # nobody ever writes to it: opening it for reading the usual way blocks forever
    folder = tmp_path / "folder.wav"
    folder.mkdir()
    return {"fifo": fifo, "device": Path("/dev/zero"), "folder": folder}


@pytest.mark.parametrize("kind", ["fifo", "device", "folder"])
@pytest.mark.parametrize(
    "command", [("transcribe",), ("dictate", "--fast", "--file"), ("talk", "--file")], ids=lambda c: c[0]
)
def test_audio_input_that_is_not_a_regular_file_is_refused(tmp_path: Path, kind: str, command: tuple[str, ...]) -> None:
    target = _not_files(tmp_path)[kind]
    # The timeout only catches a hang (the bug: a FIFO blocked forever); a refusal takes no time at all.
    result = run_cli(*command, str(target), timeout=120)
    line = assert_one_line_error(result)
    assert str(target) in line
    if kind == "folder":
        assert "is a directory" in line
    else:
        assert "not a regular file" in line


# -- `assistant chat` as a conversation (a terminal): /new and /exit -------------------------------------------


class Terminal:
    """``assistant chat`` on a pseudo-terminal, so it holds a conversation as it does for a user."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "assistant", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=REPO,
            env={**os.environ, "TERM": "dumb", **(env or {})},
            close_fds=True,
        )
        os.close(slave)
        self.output = b""

    def read_until(self, text: str, deadline: float = 300) -> str:
        """Everything read so far, once ``text`` appeared in it (counted from the last mark)."""
        end = time.monotonic() + deadline
        want = text.encode()
        while want not in self.output:
            if time.monotonic() > end:
                raise AssertionError(f"no {text!r} in {self.output.decode(errors='replace')!r}")
            ready, _, _ = select.select([self.master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:  # the process ended and closed the terminal
                    chunk = b""
                if not chunk and self.proc.poll() is not None:
                    raise AssertionError(f"exited before {text!r}: {self.output.decode(errors='replace')!r}")
                self.output += chunk
        seen, _, self.output = self.output.partition(want)
        return seen.decode(errors="replace")

    def type(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\r")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        os.close(self.master)


def test_conversation_new_starts_a_chat_and_exit_quits(installed_models: object) -> None:
    term = Terminal("chat", "--max-tokens", "6")
    try:
        term.read_until(">>> ")
        term.type("Name a colour.")
        term.read_until(">>> ")  # the reply streamed, and the prompt is back
        term.type("/new")
        announced = term.read_until(">>> ")
        term.type("Name a fruit.")
        term.read_until(">>> ")
        term.type("/exit")
        assert term.proc.wait(timeout=120) == 0
    finally:
        term.close()
    listed = sorted(chats(), key=lambda c: int(c["id"]))  # type: ignore[call-overload]
    assert len(listed) == 2
    assert f"new chat {listed[1]['id']}" in announced
    for chat, said in zip(listed, ["Name a colour.", "Name a fruit."], strict=True):
        shown = json.loads(run_cli("chats", "show", str(chat["id"]), "--json").stdout)
        assert [m["role"] for m in shown["messages"]] == ["user", "assistant"]
        assert shown["messages"][0]["content"] == said


def test_conversation_refuses_a_line_that_is_not_utf8_and_goes_on(installed_models: object) -> None:
    # In a UTF-8 locale readline drops bytes that are not UTF-8; in the POSIX locale (a Latin-1 terminal)
    # they reach the app, as lone surrogates.
    term = Terminal("chat", "--max-tokens", "4", env={"LC_ALL": "C"})
    try:
        term.read_until(">>> ")
        os.write(term.master, b"caf\xe9\r")
        refused = term.read_until(">>> ")
        term.type("/exit")
        assert term.proc.wait(timeout=120) == 0
    finally:
        term.close()
    assert "error: that line is not valid UTF-8 text" in refused and "nothing was sent" in refused
    assert "Traceback" not in refused
    listed = chats()
    assert len(listed) == 1 and listed[0]["messages"] == 0  # the chat the conversation opened, nothing in it


# -- --debug ---------------------------------------------------------------------------------------------------


def test_debug_shows_the_traceback_and_without_it_one_line() -> None:
    plain = run_cli("chats", "show", "999")
    assert assert_one_line_error(plain) == "error: no chat 999 (see 'assistant chats list')"
    debug = run_cli("--debug", "chats", "show", "999")
    assert debug.returncode == plain.returncode != 0
    assert "Traceback (most recent call last)" in debug.stderr
    assert "get_chat" in debug.stderr  # the frames of the failure itself
    assert debug.stderr.strip().splitlines()[-1] == plain.stderr.strip()  # and then the same one line
    env_debug = run_cli("chats", "show", "999", env={"ASSISTANT_DEBUG": "1"})
    assert "Traceback (most recent call last)" in env_debug.stderr
