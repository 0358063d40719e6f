"""kill -9 in the middle of a reply loses nothing: the question, and the reply so far, marked partial."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from assistant.history import History

from conftest import REPO, SMOL, run_cli


@pytest.mark.slow
def test_kill_9_mid_reply_keeps_history(installed_models: dict[str, object]) -> None:
    prompt = "Write a very long story about a dragon who learns to bake bread."
    proc = subprocess.Popen(
        [sys.executable, "-m", "assistant", "chat", "-p", prompt, "--max-tokens", "2000", "--ctx", "4096"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=REPO,
        env=os.environ.copy(),
    )
    history = History()
    try:
        deadline = time.monotonic() + 180
        reply = None
        while reply is None:
            assert proc.poll() is None, f"the chat ended before it could be killed: {proc.stderr}"
            assert time.monotonic() < deadline, "no partial reply showed up in the database"
            rows = [m for c in history.list_chats() for m in history.messages(c.id)]
            reply = next((m for m in rows if m.role == "assistant" and m.partial and len(m.content) > 40), None)
            if reply is None:
                time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        history.close()

    # a fresh process: the database opens cleanly and holds the question and the interrupted reply
    reopened = History()
    try:
        assert reopened.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        chat_id = reply.chat_id
        rows = reopened.messages(chat_id)
        assert [(m.role, m.content) for m in rows[:1]] == [("user", prompt)]
        kept = rows[1]
        assert kept.id == reply.id and kept.partial and kept.interrupted
        assert kept.content.startswith(reply.content), "at least what was seen before the kill survives"
    finally:
        reopened.close()

    # the chat continues from there; the interrupted reply stays as it was, marked
    result = run_cli("chat", "--chat", str(chat_id), "-p", "Give it a title.", "--max-tokens", "8", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["chat_id"] == chat_id
    shown = json.loads(run_cli("chats", "show", str(chat_id), "--json").stdout)
    messages = shown["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    assert messages[1]["partial"] is True and messages[1]["finished_at"] is None
    assert messages[1]["content"] == kept.content
    assert messages[3]["partial"] is False and messages[3]["model"] == SMOL
    markdown = run_cli("chats", "export", str(chat_id)).stdout
    assert "## Assistant (interrupted)" in markdown
