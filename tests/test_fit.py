"""The memory-fit estimate, checked against what llama.cpp itself reports allocating."""

from __future__ import annotations

from pathlib import Path

from assistant import fit, gguf

from conftest import GEMMA, SMOL

MiB = 1024 * 1024


def test_kv_cache_matches_llama_cpp(starter_files: dict[str, Path]) -> None:
    # llama.cpp logs "CPU KV buffer size = 90.00 MiB" for SmolLM2 at n_ctx 4096, and 12 + 60 MiB for Gemma 3 270M
    # (llama-cpp-python asks for a full-size sliding-window cache).
    assert fit.kv_cache_bytes(gguf.read(starter_files[SMOL]), 4096) == 90 * MiB
    assert fit.kv_cache_bytes(gguf.read(starter_files[GEMMA]), 4096) == 72 * MiB


def test_compute_buffer_close_to_llama_cpp(starter_files: dict[str, Path]) -> None:
    # llama.cpp reserves 99.38 MiB (SmolLM2) and 514.50 MiB (Gemma 3) of compute buffer at n_ubatch 512.
    smol = fit.reserved_compute_bytes(gguf.read(starter_files[SMOL]), 512) / MiB
    gemma = fit.reserved_compute_bytes(gguf.read(starter_files[GEMMA]), 512) / MiB
    assert abs(smol - 99.38) / 99.38 < 0.07
    assert abs(gemma - 514.50) / 514.50 < 0.03


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
