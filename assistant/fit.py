"""Will this model fit in memory? An estimate from header fields, compared with what is free.

total = weights (tensor bytes, mmapped and all touched) + KV cache (f16 K and V for every layer at the
context size) + the resident part of the compute buffer (attention scores and activations of a batch) +
runtime overhead (Python, llama.cpp, the tokenizer's tables). It estimates the resident memory once the
context is full: the figure that decides whether the machine starts swapping. The KV cache matches what
llama.cpp allocates exactly; ``benchmarks/fit_accuracy.py`` compares the total with measured RSS.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from .gguf import GGUFInfo

MiB = 1024 * 1024
# Python + llama_cpp + numpy resident before any model bytes (measured: 48 MiB on CPython 3.11).
RUNTIME_OVERHEAD = 48 * MiB
# faster-whisper/CTranslate2 runtime beyond the weights (measured on tiny.en int8).
WHISPER_OVERHEAD = 160 * MiB
# llama.cpp's tokenizer tables on the heap, per vocabulary entry (Gemma 3's 262k-token vocabulary: ~50 MiB).
VOCAB_BYTES_PER_TOKEN = 200
# Under this share of available memory a model "fits"; up to all of it is "tight".
FIT_SHARE = 0.8

Verdict = Literal["fits", "tight", "won't fit"]


@dataclass
class Estimate:
    weights: int
    kv_cache: int
    compute: int
    overhead: int
    context: int

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.compute + self.overhead

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "total": self.total}


def _shape(info: GGUFInfo | Mapping[str, Any]) -> Mapping[str, Any]:
    """Header fields the estimate needs, from a parsed header or the summary the store caches."""
    return info.summary() if isinstance(info, GGUFInfo) else info


def kv_cache_bytes(info: GGUFInfo | Mapping[str, Any], n_ctx: int, bytes_per_elem: int = 2) -> int:
    s = _shape(info)
    layers = int(s["layers"])
    per_token_layer = int(s["kv_heads"]) * (int(s["key_length"]) + int(s["value_length"])) * bytes_per_elem
    # Sliding-window layers (Gemma 3) get a full-size cache too: llama-cpp-python asks for swa_full.
    return per_token_layer * layers * n_ctx


def reserved_compute_bytes(info: GGUFInfo | Mapping[str, Any], n_ubatch: int) -> int:
    """What llama.cpp reserves for its compute graph: a full batch of logits dominates (memory is reused)."""
    s = _shape(info)
    return n_ubatch * (int(s["vocab_size"]) + 8 * max(int(s["embedding_length"]), 1)) * 4


def resident_compute_bytes(info: GGUFInfo | Mapping[str, Any], n_ctx: int, n_ubatch: int) -> int:
    """The part of the compute buffer that becomes resident in a chat: attention scores for a batch against
    the whole context, plus activations. Only the last token's logits are computed, so most of a large
    vocabulary's logit buffer is never touched."""
    s = _shape(info)
    active = n_ubatch * (n_ctx * int(s["heads"]) + 32 * int(s["embedding_length"])) * 4
    return min(active, reserved_compute_bytes(info, n_ubatch))


def estimate_llm(info: GGUFInfo | Mapping[str, Any], n_ctx: int, n_batch: int = 512) -> Estimate:
    s = _shape(info)
    n_ctx = max(1, n_ctx)
    n_ubatch = min(n_batch, n_ctx)
    return Estimate(
        weights=int(s.get("data_size") or s["file_size"]),
        kv_cache=kv_cache_bytes(info, n_ctx),
        compute=resident_compute_bytes(info, n_ctx, n_ubatch),
        overhead=RUNTIME_OVERHEAD + VOCAB_BYTES_PER_TOKEN * int(s["vocab_size"]),
        context=n_ctx,
    )


def estimate_whisper(model_bytes: int) -> Estimate:
    return Estimate(weights=model_bytes, kv_cache=0, compute=0, overhead=WHISPER_OVERHEAD, context=0)


def estimate_from_size(size: int, kind: str) -> Estimate:
    """Before a pull we only know the catalog size: weights ≈ file size, KV unknown (assume 10 %)."""
    if kind == "whisper":
        return estimate_whisper(size)
    return Estimate(weights=size, kv_cache=size // 10, compute=64 * MiB, overhead=RUNTIME_OVERHEAD, context=0)


def available_bytes() -> int:
    import psutil

    return int(psutil.virtual_memory().available)


def verdict(total: int, available: int | None = None) -> Verdict:
    free = available_bytes() if available is None else available
    if total <= free * FIT_SHARE:
        return "fits"
    if total <= free:
        return "tight"
    return "won't fit"
