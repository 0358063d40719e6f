"""The memory-fit estimate, checked against what llama.cpp itself reports allocating."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant import fit, gguf

from conftest import GEMMA, SMOL, LlamaLoad, llama_cpp_load

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def loads(starter_files: dict[str, Path]) -> dict[tuple[str, int], LlamaLoad]:
    """What llama.cpp reports allocating when the app's engine loads each starter (ubatch 512), measured
    now from this build rather than typed in from another build's log."""
    return {
        (model, n_ctx): llama_cpp_load(starter_files[model], n_ctx) for model in (SMOL, GEMMA) for n_ctx in (1024, 4096)
    }


@pytest.mark.slow
@pytest.mark.parametrize("n_ctx", [1024, 4096])
@pytest.mark.parametrize("model", [SMOL, GEMMA])
def test_kv_cache_matches_llama_cpp(
    starter_files: dict[str, Path], loads: dict[tuple[str, int], LlamaLoad], model: str, n_ctx: int
) -> None:
    # llama.cpp logs "CPU KV buffer size = N MiB" (twice for Gemma 3: its global and its sliding-window
    # layers, both full-size since llama-cpp-python asks for swa_full), rounded to 0.01 MiB
    measured = loads[model, n_ctx].buffer_mib("KV")
    assert fit.kv_cache_bytes(gguf.read(starter_files[model]), n_ctx) / MiB == pytest.approx(measured, abs=0.01)


@pytest.mark.slow
@pytest.mark.parametrize(("model", "tolerance"), [(SMOL, 0.07), (GEMMA, 0.03)])
def test_compute_buffer_close_to_llama_cpp(
    starter_files: dict[str, Path], loads: dict[tuple[str, int], LlamaLoad], model: str, tolerance: float
) -> None:
    # the compute buffer llama.cpp reserves at n_ubatch 512, n_ctx 4096
    measured = loads[model, 4096].buffer_mib("compute")
    estimate = fit.reserved_compute_bytes(gguf.read(starter_files[model]), 512) / MiB
    assert abs(estimate - measured) / measured < tolerance, (estimate, measured)


def test_resident_compute_never_exceeds_reserved(starter_files: dict[str, Path]) -> None:
    for model in (SMOL, GEMMA):
        info = gguf.read(starter_files[model])
        for n_ctx in (512, 2048, 8192, 32768):
            assert 0 < fit.resident_compute_bytes(info, n_ctx, 512) <= fit.reserved_compute_bytes(info, 512)


def test_estimate_grows_with_context(starter_files: dict[str, Path]) -> None:
    info = gguf.read(starter_files[SMOL])
    assert fit.estimate_llm(info, 8192).total > fit.estimate_llm(info, 2048).total
    assert fit.estimate_llm(info, 2048).weights == info.data_size


def test_verdicts() -> None:
    assert fit.verdict(100, available=1000) == "fits"
    assert fit.verdict(900, available=1000) == "tight"
    assert fit.verdict(1001, available=1000) == "won't fit"
