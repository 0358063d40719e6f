"""``assistant serve`` opens no outbound connection: serve a chat, an embedding and a transcription under both
of ``tests/test_offline.py``'s guards (strace on every thread, Python's audit hook) and find no connect, send
or lookup outside loopback. The server only listens and accepts; the test's client is not traced."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import httpx
import pytest

from conftest import SMOL
from helpers.serve import make_home, serve_env, start
from integration.test_offline import CLIP, _calls, _events, _guard_env, _network, _strace_prefix, guard_dir  # noqa: F401

pytestmark = pytest.mark.slow


@pytest.mark.timeout(1200)
def test_serve_opens_no_socket(starter_files: dict[str, Path], guard_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    home = make_home(tmp_path, starter_files)
    log, trace = tmp_path / "net.log", tmp_path / "strace.txt"
    env = serve_env(home, **_guard_env(guard_dir, log, "block"))
    served = start(home, key=None, prefix=_strace_prefix(trace), env=env)
    try:
        with httpx.Client(base_url=served.url, timeout=600) as http:
            chat = {"model": SMOL, "messages": [{"role": "user", "content": "Hi."}], "max_tokens": 4}
            assert http.post("/v1/chat/completions", json=chat).status_code == 200
            assert http.post("/v1/embeddings", json={"model": SMOL, "input": "offline"}).status_code == 200
            files = {"file": ("fox.wav", CLIP.read_bytes(), "audio/wav")}
            heard = http.post("/v1/audio/transcriptions", files=files, data={"model": "whisper-1"})
            assert heard.status_code == 200 and "lazy dog" in heard.json()["text"].lower(), heard.text
    finally:
        # Ctrl+C goes to the server itself (strace would only detach): its pid is in the state file
        state = next(home.rglob("server.json"), None)
        if state is not None:
            os.kill(json.loads(state.read_text())["pid"], signal.SIGINT)
        served.process.wait(timeout=120)
    assert served.process.returncode == 0, served.log.read_text()
    assert "stopped" in served.log.read_text()
    assert _events(log) == [], _events(log)
    assert _network(_calls(trace)) == [], _network(_calls(trace))
