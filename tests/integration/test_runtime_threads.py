"""``runtime.threads`` defaults to the physical cores (hyper-threads slow llama.cpp down), and llama.cpp's
context is created with that many threads; a configured value wins."""

from __future__ import annotations

from typing import Any

import pytest

from assistant import config, paths

from conftest import SMOL


def _llama_threads(engine: Any) -> tuple[int, int]:
    """The thread counts llama.cpp's own context reports (generation, prompt batches)."""
    import llama_cpp

    ctx = engine.llama._ctx.ctx
    return int(llama_cpp.llama_n_threads(ctx)), int(llama_cpp.llama_n_threads_batch(ctx))


def _hyperthreaded(monkeypatch: pytest.MonkeyPatch, physical: int, logical: int) -> None:
    """Pretend this machine has ``physical`` cores showing as ``logical`` CPUs."""
    import psutil

    def cpu_count(logical: bool = True) -> int:
        return logical_cpus if logical else physical

    logical_cpus = logical
    monkeypatch.setattr(psutil, "cpu_count", cpu_count)


def test_default_is_psutil_physical_core_count(monkeypatch: pytest.MonkeyPatch) -> None:
    import psutil

    assert config.load().threads() == psutil.cpu_count(logical=False)
    _hyperthreaded(monkeypatch, physical=3, logical=6)
    assert config.load().threads() == 3  # not the 6 logical CPUs
    paths.ensure(paths.config_file().parent)
    paths.write_text_atomic(paths.config_file(), "[runtime]\nthreads = 5\n")
    assert config.load().threads() == 5


@pytest.mark.slow
def test_the_chat_engine_runs_llama_cpp_on_the_physical_cores(
    installed_models: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    from assistant.engine import load_engine

    _hyperthreaded(monkeypatch, physical=1, logical=4)
    engine = load_engine(SMOL, n_ctx=512)
    try:
        assert engine.n_threads == 1 and _llama_threads(engine) == (1, 1)
    finally:
        engine.close()
    paths.ensure(paths.config_file().parent)
    paths.write_text_atomic(paths.config_file(), "[runtime]\nthreads = 2\n")
    engine = load_engine(SMOL, n_ctx=512)
    try:
        assert engine.n_threads == 2 and _llama_threads(engine) == (2, 2)
    finally:
        engine.close()
