"""A real ``assistant serve`` for the integration tests: a subprocess on a free loopback port, over a home
with the starter models registered, waited on until it answers (never a fixed sleep)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import openai
import pytest

from conftest import REPO, SMOL, STARTERS, WHISPER, env_vars, register_model, wait_until

API_KEY = "test-key-3f9c"
# One thread: this machine is shared by several test runs and a benchmark; llama.cpp's OpenMP team of two
# spins against the others and gets far slower than one thread. A small context keeps "over the context" cheap.
CONFIG = """\
[runtime]
threads = 1
context_size = 1024

[chat]
max_tokens = 16
temperature = 0.0
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Served:
    url: str
    key: str | None
    process: subprocess.Popen[str]
    home: Path
    log: Path

    def get(self, path: str) -> bytes:
        request = urllib.request.Request(self.url + path)
        if self.key:
            request.add_header("Authorization", f"Bearer {self.key}")
        with urllib.request.urlopen(request, timeout=30) as response:
            return bytes(response.read())

    def stop(self) -> int:
        """Ctrl+C, as a user stops it; returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return int(self.process.returncode)


def serve_env(home: Path, **extra: str) -> dict[str, str]:
    pythonpath = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "ASSISTANT_HOME": str(home), "PYTHONPATH": pythonpath, **extra}


def start(
    home: Path,
    *args: str,
    key: str | None = API_KEY,
    prefix: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> Served:
    port = free_port()
    log = home / f"serve-{port}.log"
    command = [*(prefix or []), sys.executable, "-m", "assistant", "serve", "--port", str(port), *args]
    if key:
        command += ["--api-key", key]
    with log.open("w") as out:
        process = subprocess.Popen(
            command, env=env or serve_env(home), stdout=out, stderr=subprocess.STDOUT, text=True, cwd=REPO
        )
    served = Served(f"http://127.0.0.1:{port}", key, process, home, log)

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"assistant serve exited ({process.returncode}):\n{log.read_text()}")
        try:
            served.get("/health")
        except OSError:
            return False
        return True

    try:
        wait_until(ready, 180, "assistant serve to answer /health")
    except BaseException:
        served.stop()
        raise
    return served


def make_home(root: Path, starter_files: dict[str, Path]) -> Path:
    """A home with the starter chat and speech models registered in place, and CONFIG."""
    home = root / "home"
    (home / "config").mkdir(parents=True)
    (home / "config" / "config.toml").write_text(CONFIG, encoding="utf-8")
    with env_vars(ASSISTANT_HOME=str(home)):
        for model_id in (SMOL, WHISPER):
            register_model(model_id, starter_files[model_id], "whisper" if model_id == WHISPER else "llm")
    return home


@pytest.fixture(scope="session")
def serve_home(starter_files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_home(tmp_path_factory.mktemp("serve"), starter_files)


@pytest.fixture(scope="session")
def server(serve_home: Path) -> Iterator[Served]:
    """One server for the whole session (every module shares it): API key on, two slots, a short queue."""
    served = start(serve_home, "--parallel", "2", "--queue", "2")
    yield served
    assert served.stop() == 0, served.log.read_text()


@pytest.fixture
def fresh_home(starter_files: dict[str, Path], tmp_path: Path) -> Path:
    """A home of its own for a test that starts its own server (with options the shared one has not)."""
    return make_home(tmp_path, starter_files)


@pytest.fixture
def serving(fresh_home: Path) -> Iterator[Callable[..., openai.OpenAI]]:
    """``serving(*args)`` starts ``assistant serve *args`` (no key) on ``fresh_home``; an ``openai`` client for it."""
    started: list[Served] = []

    def run(*args: str) -> openai.OpenAI:
        served = start(fresh_home, *args, key=None)
        started.append(served)
        return openai.OpenAI(base_url=served.url + "/v1", api_key="-", max_retries=0, timeout=600)

    yield run
    for served in started:
        assert served.stop() == 0, served.log.read_text()


__all__ = [
    "API_KEY",
    "SMOL",
    "STARTERS",
    "WHISPER",
    "Served",
    "fresh_home",
    "make_home",
    "serve_home",
    "server",
    "serving",
    "start",
]
