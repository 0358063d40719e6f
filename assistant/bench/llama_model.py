"""One model and one context over llama.cpp's C API, for the benchmark's child process (``llm.work``).

No ``llama_cpp.Llama`` object: the benchmark needs control of batches, of which outputs are requested and of
the KV cache, and no per-context logits copy. Every decode is checked first against what would make
llama.cpp abort the process in a ``GGML_ASSERT`` (no message, rc 134) instead of returning an error: an
empty batch, a token outside the vocabulary, positions past the context.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import AssistantError

if TYPE_CHECKING:
    import numpy as np


# Runtime settings a run can sweep (``assistant bench --kv-type f16,q8_0 --flash-attn off,on``).
KV_TYPES = {"f16": 1, "q8_0": 8, "q4_0": 2, "f32": 0}  # ggml_type values: GGML_TYPE_F16, _Q8_0, _Q4_0, _F32
FLASH_ATTN = {"auto": -1, "off": 0, "on": 1}  # llama_flash_attn_type: AUTO, DISABLED, ENABLED


class LlamaModel:
    """One model and one context (see the module docstring)."""

    def __init__(
        self, path: str, *, n_ctx: int, n_batch: int, threads: int, kv_type: str = "f16", flash_attn: str = "auto"
    ) -> None:
        import llama_cpp

        self.L = llama_cpp
        self.path = path
        self.model = llama_cpp.llama_model_load_from_file(path.encode(), llama_cpp.llama_model_default_params())
        if not self.model:
            raise AssistantError(f"llama.cpp could not load {path}", "check it with 'assistant models verify'")
        self.vocab = llama_cpp.llama_model_get_vocab(self.model)
        self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(self.vocab))
        self.add_bos = bool(llama_cpp.llama_vocab_get_add_bos(self.vocab))
        self.bos = int(llama_cpp.llama_vocab_bos(self.vocab))
        self.eos = int(llama_cpp.llama_vocab_eos(self.vocab))
        self.kv_type = kv_type
        self.flash_attn = flash_attn
        self.ctx: Any = None
        self.batch: Any = None
        self.n_batch = n_batch
        self.new_context(n_ctx=n_ctx, n_batch=n_batch, threads=threads)

    def new_context(self, *, n_ctx: int, n_batch: int, threads: int) -> None:
        """A fresh context; the KV cache type and flash attention are the model's (set when loaded)."""
        L = self.L
        self.free_context()
        params = L.llama_context_default_params()
        params.n_ctx = n_ctx
        params.n_batch = n_batch
        params.n_ubatch = n_batch
        params.n_threads = threads
        params.n_threads_batch = threads
        params.type_k = params.type_v = KV_TYPES[self.kv_type]
        params.flash_attn_type = FLASH_ATTN[self.flash_attn]
        self.ctx = L.llama_init_from_model(self.model, params)
        if not self.ctx:
            raise AssistantError(f"llama.cpp could not create a {n_ctx}-token context for {self.path}")
        self.memory = L.llama_get_memory(self.ctx)
        self.n_ctx = int(L.llama_n_ctx(self.ctx))
        self.n_batch = n_batch
        self.batch = L.llama_batch_init(n_batch, 0, 1)

    def free_context(self) -> None:
        if self.batch is not None:
            self.L.llama_batch_free(self.batch)
            self.batch = None
        if self.ctx:
            self.L.llama_free(self.ctx)
            self.ctx = None

    def close(self) -> None:
        self.free_context()
        if self.model:
            self.L.llama_model_free(self.model)
            self.model = None

    def tokenize(self, text: str, add_bos: bool, special: bool = False) -> list[int]:
        """``special``: control tokens written in ``text`` (a chat template's) become those tokens."""
        L = self.L
        data = text.encode("utf-8")
        size = len(data) + 8
        buf = (L.llama_token * size)()
        n = L.llama_tokenize(self.vocab, data, len(data), buf, size, add_bos, special)
        if n < 0:
            size = -n
            buf = (L.llama_token * size)()
            n = L.llama_tokenize(self.vocab, data, len(data), buf, size, add_bos, special)
        return list(buf[:n])

    def token_text(self, token: int) -> str:
        """A token's text as the vocabulary spells it (a chat template's ``bos_token``); "" for none."""
        if token < 0:
            return ""
        raw = self.L.llama_vocab_get_text(self.vocab, token)
        return raw.decode("utf-8", errors="replace") if raw else ""

    def piece(self, token: int) -> str:
        """The text a generated token adds (control tokens add nothing)."""
        import ctypes

        buf = ctypes.create_string_buffer(64)
        n = self.L.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, False)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = self.L.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, False)
        return buf.raw[:n].decode("utf-8", errors="replace")

    def is_eog(self, token: int) -> bool:
        return bool(self.L.llama_vocab_is_eog(self.vocab, token))

    def clear(self) -> None:
        self.L.llama_memory_clear(self.memory, False)

    def trim(self, keep: int) -> None:
        """Drop cached positions from ``keep`` on (sequence 0)."""
        self.L.llama_memory_seq_rm(self.memory, 0, keep, -1)

    def decode_one(self, tokens: Sequence[int]) -> None:
        """llama-bench style: ``llama_batch_get_one`` (positions follow the cache, only the last logits)."""
        self.check(tokens, int(self.L.llama_memory_seq_pos_max(self.memory, 0)) + 1)
        arr = (self.L.llama_token * len(tokens))(*tokens)
        rc = self.L.llama_decode(self.ctx, self.L.llama_batch_get_one(arr, len(tokens)))
        if rc != 0:
            raise AssistantError(f"llama_decode failed ({rc})")

    def decode(self, tokens: Sequence[int], start: int, all_logits: bool, logits_from: int = 0) -> None:
        """Decode ``tokens`` at positions ``start...``; logits for every position from the ``logits_from``-th
        of ``tokens`` on, or only the last."""
        n = len(tokens)
        self.check(tokens, start)
        b = self.batch
        b.n_tokens = n
        for i, tok in enumerate(tokens):
            b.token[i] = tok
            b.pos[i] = start + i
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = 0
            b.logits[i] = all_logits and i >= logits_from
        b.logits[n - 1] = True
        rc = self.L.llama_decode(self.ctx, b)
        if rc != 0:
            raise AssistantError(f"llama_decode failed ({rc})")

    def check(self, tokens: Sequence[int], start: int) -> None:
        """Refuse a decode that llama.cpp would abort the process on (see the module docstring)."""
        name = Path(self.path).name
        if not tokens:
            raise AssistantError(f"{name}: nothing to evaluate (its vocabulary made 0 tokens of the text)")
        if min(tokens) < 0 or max(tokens) >= self.n_vocab:
            raise AssistantError(f"{name}: a token outside its vocabulary of {self.n_vocab} reached the benchmark")
        if len(tokens) > self.n_batch or start < 0 or start + len(tokens) > self.n_ctx:
            raise AssistantError(
                f"{name}: a batch of {len(tokens)} tokens at position {start} does not fit"
                f" (batch {self.n_batch}, context {self.n_ctx})"
            )

    def logits(self, rows: int) -> np.ndarray:
        """A view of the last decode's output logits (``rows`` x vocabulary), valid until the next decode."""
        import numpy as np

        ptr = self.L.llama_get_logits(self.ctx)
        return np.ctypeslib.as_array(ptr, shape=(rows, self.n_vocab))

    def sync(self) -> None:
        self.L.llama_synchronize(self.ctx)
