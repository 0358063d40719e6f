"""The child side of a language-model benchmark: measure one variant (``llm.run`` starts this in a process
of its own, through ``worker.run("bench.llm", spec)``, so its peak RSS is its own).

What it measures, and how, is described in ``llm.py``; this module only does it:

* ``_speed``: llama-bench's pp512 / tg128 and a TTFT, each repetition kept so the parent can give intervals;
* ``quality_against``: per-token KL divergence, negative log-likelihoods and top-1 agreement against the reference
  over the evaluation text, summarised by ``stats.token_stats``;
* ``_tasks``: every evaluation item scored (log-likelihood of each choice, or a greedy reply matched
  against the answer), one 0/1 per item so the parent can pair it with the reference's.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import gguf, paths
from ..errors import AssistantError
from ..llama import log_to
from ..prompt import shared_prefix
from . import spec as bench_spec
from . import stats
from . import tasks as bench_tasks
from .llama_model import LlamaModel
from .llm import EVAL_BATCH, PP_TOKENS, ROW_SLICE, SEED, TG_TOKENS, TTFT_PROMPT, Options, eval_tokens_window
from .worker import peak_rss_mb

if TYPE_CHECKING:
    import numpy as np

# A generated answer is short (a number, a word, a name): more tokens than this is a wrong answer anyway.
GEN_TOKENS = 24
_SENTENCE_DONE = re.compile(r"[.;!?]\s")
# The reference's log-probabilities at every scored position are written once per run, by the reference's
# own row, and read by every candidate of its family (as llama-perplexity --kl-divergence saves its base
# logits), so a candidate's quality pass decodes the candidate alone. Past this size (Gemma's 262k-token
# vocabulary over the full text: ~12 GiB) each candidate loads the reference next to itself instead.
REF_ROWS_MAX = 4 * 1024**3
_REF_ROWS, _REF_META = "ref_rows.npy", "ref_rows.json"


def _log_softmax(x: np.ndarray) -> np.ndarray:
    import numpy as np

    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _timings(values: list[float], digits: int) -> tuple[float, float, float, float]:
    mean, sd, lo, hi = stats.mean_interval(values)
    return round(mean, digits), round(sd, digits), round(lo, digits), round(hi, digits)


def _speed(m: LlamaModel, opts: Options, step: Callable[[str], None]) -> dict[str, Any]:
    rng = random.Random(SEED)

    def rand_tokens(n: int) -> list[int]:
        return [rng.randrange(m.n_vocab) for _ in range(n)]

    def prompt(n: int) -> None:
        done = 0
        while done < n:
            k = min(opts.batch, n - done)
            tokens = rand_tokens(k)
            if done == 0 and m.add_bos:
                tokens[0] = m.bos
            m.decode_one(tokens)
            done += k
        m.sync()

    def generate(n: int) -> None:
        token = [m.bos if m.add_bos else rng.randrange(m.n_vocab)]
        for _ in range(n):
            m.decode_one(token)
            m.sync()
            token = [rng.randrange(m.n_vocab)]

    # warm-up, as llama-bench: one prompt pass and one generated token
    m.clear()
    prompt(PP_TOKENS)
    m.clear()
    generate(1)
    pp, tg = [], []
    for _ in range(opts.reps):
        m.clear()
        t0 = time.perf_counter()
        prompt(PP_TOKENS)
        pp.append(PP_TOKENS / (time.perf_counter() - t0))
        m.clear()
        t0 = time.perf_counter()
        generate(TG_TOKENS)
        tg.append(TG_TOKENS / (time.perf_counter() - t0))
        step("speed")
    ttft_tokens = m.tokenize(TTFT_PROMPT, m.add_bos)
    ttft = []
    for _ in range(opts.reps):
        m.clear()
        t0 = time.perf_counter()
        m.decode_one(ttft_tokens)
        m.sync()
        first = m.logits(1)  # with batch_get_one only the last position has logits
        int(first[0].argmax())
        ttft.append((time.perf_counter() - t0) * 1000)
    step("ttft")
    out: dict[str, Any] = {"ttft_prompt_tokens": len(ttft_tokens)}
    for key, values in (("pp_tps", pp), ("tg_tps", tg), ("ttft_ms", ttft)):
        out[key], out[f"{key}_sd"], out[f"{key}_lo"], out[f"{key}_hi"] = _timings(values, 2)
    return out


def _windows(m: LlamaModel, text: str, opts: Options) -> tuple[list[list[int]], str]:
    """The evaluation windows of ``text`` in ``m``'s tokens, and a digest of them and of the vocabulary size
    (a cached reference matches a candidate only when both are equal)."""
    chunks = eval_tokens_window(m.tokenize(text, False), opts)
    digest = hashlib.sha256(f"{m.n_vocab}:{int(m.add_bos)}:{m.bos}".encode())
    for chunk in chunks:
        digest.update(",".join(map(str, chunk)).encode() + b"|")
    return chunks, digest.hexdigest()


def _scored_rows(chunks: list[list[int]], add_bos: bool) -> int:
    """How many positions ``quality_against`` scores: the second half of each window."""
    total = 0
    for chunk in chunks:
        n = len(chunk) + int(add_bos) - 1  # positions with a next token
        total += n - n // 2
    return total


def read_ref_rows(folder: Path, digest: str) -> np.ndarray | None:
    """The reference's cached log-probabilities (rows x vocabulary, memory-mapped) when ``folder`` holds them
    for the same windows (``digest``), else None (the candidate then loads the reference)."""
    import numpy as np

    try:
        meta = json.loads((folder / _REF_META).read_text(encoding="utf-8"))
        if meta.get("digest") != digest:
            return None
        rows = np.load(folder / _REF_ROWS, mmap_mode="r")
    except (OSError, ValueError):
        return None
    return rows if rows.shape == (meta.get("rows"), meta.get("vocab")) else None


class _RefWriter:
    """The reference row's log-probabilities, written as ``quality_against`` computes them; visible to readers
    only once complete (the data is renamed into place, then its description written)."""

    def __init__(self, folder: Path, digest: str, rows: int, vocab: int) -> None:
        import numpy as np

        self.folder, self.digest, self.shape = folder, digest, (rows, vocab)
        self.part = paths.private_file(folder / f"{_REF_ROWS}.part")
        self.array = np.lib.format.open_memmap(self.part, mode="w+", dtype=np.float32, shape=self.shape)

    @classmethod
    def open(cls, folder: Path, digest: str, rows: int, vocab: int) -> _RefWriter | None:
        size = rows * vocab * 4
        try:
            if size > REF_ROWS_MAX or shutil.disk_usage(folder).free < size + 1024**3:
                return None
            return cls(folder, digest, rows, vocab)
        except OSError:
            return None  # no room, a read-only folder: the candidates load the reference as before

    def finish(self) -> None:
        self.array.flush()
        del self.array
        os.replace(self.part, self.folder / _REF_ROWS)
        meta = {"digest": self.digest, "rows": self.shape[0], "vocab": self.shape[1]}
        paths.write_text_atomic(self.folder / _REF_META, json.dumps(meta))


def quality_against(
    cand: LlamaModel,
    ref: LlamaModel | None,
    text: str,
    opts: Options,
    step: Callable[[str], None],
    *,
    ref_rows: np.ndarray | None = None,
    save_rows: Path | None = None,
) -> dict[str, Any]:
    """Perplexity of ``cand`` over the evaluation text and, against a reference, KL divergence and top-1
    agreement, position by position (one value per scored token, summarised by ``stats``). The reference
    is ``ref`` decoded alongside, or ``ref_rows`` (``read_ref_rows``: its log-probabilities, computed once
    per run); ``save_rows`` (a folder) keeps ``cand``'s own for the others when ``cand`` is the reference."""
    import numpy as np

    chunks, digest = _windows(cand, text, opts)
    if ref is not None and _windows(ref, text, opts)[1] != digest:
        raise AssistantError("the reference tokenizes the evaluation text differently", "compare variants of one model")
    writer = None
    if save_rows is not None and ref is None and ref_rows is None:
        writer = _RefWriter.open(save_rows, digest, _scored_rows(chunks, cand.add_bos), cand.n_vocab)
    scores = _Scores()
    done = 0  # scored positions so far (the row of ``ref_rows`` / the writer the next one goes to)
    for chunk in chunks:
        seq = ([cand.bos] if cand.add_bos else []) + chunk
        # As llama-perplexity scores a window: only its second half, so every scored token has at least half
        # a window of context (the first tokens of a window, predicted from almost nothing, would weigh the
        # mean with how a model guesses without context rather than with what quantization did to it).
        first = (len(seq) - 1) // 2
        cand.clear()
        if ref is not None:
            ref.clear()
        for start in range(0, len(seq) - 1, EVAL_BATCH):
            part = seq[start : start + EVAL_BATCH]
            lo = max(first - start, 0)  # the part's first scored row
            hi = min(len(part), len(seq) - 1 - start)  # its rows that have a next token to predict
            if lo >= hi:  # context only: no logits needed
                cand.decode(part, start, all_logits=False)
                if ref is not None:
                    ref.decode(part, start, all_logits=False)
                continue
            targets = np.asarray(seq[start + lo + 1 : start + hi + 1], dtype=np.int64)
            cand.decode(part, start, all_logits=True, logits_from=lo)
            if ref is not None:
                ref.decode(part, start, all_logits=True, logits_from=lo)
            lc_all = cand.logits(len(part) - lo)
            lr_all = ref.logits(len(part) - lo) if ref is not None else None
            for s in range(0, len(targets), ROW_SLICE):
                idx = np.arange(s, min(s + ROW_SLICE, len(targets)))
                at = slice(done + s, done + s + len(idx))
                lc = _log_softmax(lc_all[idx].astype(np.float32))
                if writer is not None:
                    writer.array[at] = lc
                lr = None
                if lr_all is not None:
                    lr = _log_softmax(lr_all[idx].astype(np.float32))
                elif ref_rows is not None:
                    lr = np.asarray(ref_rows[at], dtype=np.float32)
                scores.add(lc, lr, targets[idx])
            done += len(targets)
        step("quality")
    if writer is not None:
        writer.finish()
    return scores.result()


class _Scores:
    """Per-position figures of the quality pass, gathered slice by slice."""

    def __init__(self) -> None:
        self.nll_c: list[np.ndarray] = []
        self.nll_r: list[np.ndarray] = []
        self.kld: list[np.ndarray] = []
        self.same: list[np.ndarray] = []

    def add(self, lc: np.ndarray, lr: np.ndarray | None, targets: np.ndarray) -> None:
        """``lc`` / ``lr``: the candidate's / reference's log-probabilities (rows x vocabulary)."""
        import numpy as np

        rows = np.arange(len(targets))
        self.nll_c.append(-lc[rows, targets].astype(np.float64))
        if lr is not None:
            self.nll_r.append(-lr[rows, targets].astype(np.float64))
            kl_rows = (np.exp(lr) * (lr - lc)).sum(axis=-1, dtype=np.float64)
            self.kld.append(np.maximum(kl_rows, 0.0))
            self.same.append((lr.argmax(axis=-1) == lc.argmax(axis=-1)).astype(np.float64))

    def result(self) -> dict[str, Any]:
        import numpy as np

        if not self.nll_c:
            raise AssistantError("the evaluation text is too short for this tokenizer", "give a longer --text file")
        cand_nll = np.concatenate(self.nll_c)
        out: dict[str, Any] = {"eval_tokens": int(cand_nll.size), "ppl": round(math.exp(float(cand_nll.mean())), 4)}
        if self.nll_r:
            ref_nll = np.concatenate(self.nll_r)
            out["ref_ppl"] = round(math.exp(float(ref_nll.mean())), 4)
            out |= stats.token_stats(np.concatenate(self.kld), cand_nll, ref_nll, np.concatenate(self.same))
        return out


class _Generator:
    """Greedy replies for generated-answer items: the model's chat template when it has one (an instruct
    model is measured on its actual replies), the bare prompt otherwise (a base model completes it)."""

    def __init__(self, m: LlamaModel) -> None:
        from .. import template

        self.m = m
        self.cached: list[int] = []  # the tokens in m's cache when this generator last used it
        info = gguf.read(Path(m.path))
        name = Path(m.path).name
        self.model_id = name
        self.compiled = None
        if info.chat_template:
            self.compiled, _why = template.compile_chat_template(info.chat_template, name)

    def prompt(self, item: bench_tasks.Task) -> list[int]:
        from .. import template
        from ..chat import Message

        m = self.m
        if self.compiled is None:
            text = f"{item.system}\n\n{item.prompt}" if item.system else item.prompt
            return m.tokenize(text, m.add_bos)
        messages = ([Message("system", item.system)] if item.system else []) + [Message("user", item.prompt)]
        text = template.chat_prompt(
            self.compiled, messages, m.token_text(m.bos), m.token_text(m.eos), model_id=self.model_id
        )
        return m.tokenize(text, False, special=True)

    def reply(self, item: bench_tasks.Task) -> str:
        """Greedy decoding up to ``GEN_TOKENS`` tokens, an end-of-generation token, the first line break
        after some text or the end of the first sentence (``tasks.matches`` reads no further)."""
        m = self.m
        tokens = self.prompt(item)
        if len(tokens) + GEN_TOKENS > m.n_ctx:
            raise AssistantError(f"task {item.id}: its prompt ({len(tokens)} tokens) does not fit the context")
        # The chat template's opening (its system prompt) is the same for every item: what the cache still
        # holds of the previous item's prompt is kept, as the chat engine keeps a conversation's prefix.
        pos = min(shared_prefix(self.cached, tokens), len(tokens) - 1)
        m.trim(pos)
        for start in range(pos, len(tokens), m.n_batch):
            part = tokens[start : start + m.n_batch]
            m.decode(part, start, all_logits=False)
        pos = len(tokens)
        self.cached = list(tokens)
        pieces: list[str] = []
        for _ in range(GEN_TOKENS):
            token = int(m.logits(1)[0].argmax())
            if m.is_eog(token):
                break
            pieces.append(m.piece(token))
            text = "".join(pieces).lstrip()
            if "\n" in text or _SENTENCE_DONE.search(text):  # matching reads the first sentence only
                break
            m.decode([token], pos, all_logits=False)
            self.cached.append(token)
            pos += 1
        return "".join(pieces).strip()


def _choice_correct(m: LlamaModel, item: bench_tasks.Task) -> bool:
    """Multiple choice by log-likelihood: score = log P(choice tokens | prompt), highest wins."""
    import numpy as np

    assert item.choices is not None
    prompt = item.prompt
    prefix = m.tokenize(prompt, m.add_bos)
    m.clear()
    m.decode(prefix, 0, all_logits=False)
    first = _log_softmax(m.logits(1)[0].astype(np.float32))
    scores = []
    for choice in item.choices:
        full = m.tokenize(f"{prompt} {choice}", m.add_bos)
        cont = full[len(prefix) :] if full[: len(prefix)] == prefix else m.tokenize(f" {choice}", False)
        if not cont:
            raise AssistantError(f"{Path(m.path).name}: its vocabulary made 0 tokens of the answer {choice!r}")
        score = float(first[cont[0]])
        if len(cont) > 1:
            m.trim(len(prefix))
            m.decode(cont[:-1], len(prefix), all_logits=True)
            rows = _log_softmax(m.logits(len(cont) - 1).astype(np.float32))
            score += float(rows[np.arange(len(cont) - 1), cont[1:]].sum())
        scores.append(score)
    return int(np.argmax(scores)) == int(item.answer)


def _tasks(m: LlamaModel, items: list[bench_tasks.Task], step: Callable[[str], None]) -> dict[str, Any]:
    """Every item scored: ``task_results`` holds one 0/1 per item, in ``items`` order (the parent pairs it
    with the reference's, item by item), ``task_replies`` the generated replies that missed (to see why)."""
    generator: _Generator | None = None
    results: list[int] = []
    replies: dict[str, str] = {}
    for n, item in enumerate(items, 1):
        if item.kind == "choice":
            ok = _choice_correct(m, item)
            if generator is not None:
                generator.cached = []  # the cache now holds this item's tokens
        else:
            generator = generator or _Generator(m)
            reply = generator.reply(item)
            ok = bench_tasks.matches(reply, str(item.answer))
            if not ok:
                replies[item.id] = reply[:80]
        results.append(int(ok))
        if n % 10 == 0 or n == len(items):
            step("tasks")
    return {"task_results": results, "task_replies": replies}


def _spec_options(spec: dict[str, Any]) -> Options:
    return Options(
        reps=int(spec["reps"]),
        quick=bool(spec["quick"]),
        threads=int(spec["threads"]),
        ctx=int(spec["ctx"]),
        batch=int(spec.get("batch", 512)),
        kv_type=str(spec.get("kv_type", "f16")),
        flash_attn=str(spec.get("flash_attn", "auto")),
        tasks_file=spec.get("tasks_file"),
        text_file=spec.get("text_file"),
    )


def work(spec: dict[str, Any], emit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Child process: measure one variant (``spec`` from ``llm.run``)."""
    import llama_cpp

    errors: list[str] = []

    def on_log(level: int, text: str) -> None:
        if level == 3 and text:  # GGML_LOG_LEVEL_ERROR: kept for the error message
            errors.append(text.strip())

    log_to(on_log)
    llama_cpp.llama_backend_init()
    opts = _spec_options(spec)
    if spec.get("speculative_only"):  # the speculative column's pass (``spec.py``), after the speed rounds
        emit({"event": "plan", "units": len(bench_spec.prompts(opts.quick))})
        return bench_spec.measure(
            spec["path"], ctx=opts.ctx, threads=opts.threads, batch=opts.batch, quick=opts.quick,
            step=lambda stage: emit({"event": "advance", "stage": stage}),
        )  # fmt: skip
    # speed_only: just load / pp / tg / TTFT / RSS (one round of ``llm.run``'s interleaved speed rounds, and
    # benchmarks/llama_bench_compare.py); quality_only: just KLD / PPL / top-1 and the tasks.
    speed_only, quality_only = bool(spec.get("speed_only")), bool(spec.get("quality_only"))
    items = [] if speed_only else opts.task_items()
    text = "" if speed_only else bench_tasks.eval_text(opts.text_file)
    units = opts.speed_units * (not quality_only) + (0 if speed_only else opts.quality_units(text, len(items)))
    emit({"event": "plan", "units": units})

    def step(stage: str) -> None:
        emit({"event": "advance", "stage": stage})

    settings = {"kv_type": opts.kv_type, "flash_attn": opts.flash_attn}
    try:
        if quality_only:
            cand = LlamaModel(spec["path"], n_ctx=opts.chunk + 8, n_batch=EVAL_BATCH, threads=opts.threads, **settings)
            load: dict[str, Any] = {}
            speed: dict[str, Any] = {}
        else:
            loads = []
            for rep in range(opts.reps):
                t0 = time.perf_counter()
                cand = LlamaModel(spec["path"], n_ctx=opts.ctx, n_batch=opts.batch, threads=opts.threads, **settings)
                loads.append(time.perf_counter() - t0)
                if rep < opts.reps - 1:
                    cand.close()
            step("load")
            load = {}
            load["load_s"], load["load_s_sd"], load["load_s_lo"], load["load_s_hi"] = _timings(loads, 4)
            speed = _speed(cand, opts, step)
            # Peak memory of this variant alone: recorded before the evaluation contexts and the reference exist.
            speed["peak_rss_mb"] = round(peak_rss_mb(), 1)
        if speed_only:
            cand.close()
            return {**load, **speed}
        n_eval_ctx = max(opts.chunk + 8, max((len(cand.tokenize(i.prompt, True)) for i in items), default=0) + 160)
        cand.new_context(n_ctx=n_eval_ctx, n_batch=EVAL_BATCH, threads=opts.threads)
        # The reference's rows cached by its own row of this run (``llm.run``), or the reference loaded here.
        shared = Path(spec["ref_cache"]) if spec.get("ref_cache") else None
        ref, ref_rows = None, None
        if spec.get("ref_path"):
            ref_rows = read_ref_rows(shared, _windows(cand, text, opts)[1]) if shared else None
        if spec.get("ref_path") and ref_rows is None:
            ref = LlamaModel(spec["ref_path"], n_ctx=opts.chunk + 8, n_batch=EVAL_BATCH, threads=opts.threads)
            if ref.n_vocab != cand.n_vocab:
                raise AssistantError("the reference has a different vocabulary", "compare variants of one model")
        save = shared if shared is not None and not spec.get("ref_path") else None
        quality = quality_against(cand, ref, text, opts, step, ref_rows=ref_rows, save_rows=save)
        del ref_rows
        if ref is not None:
            ref.close()
        scored = _tasks(cand, items, step)
        cand.close()
    except AssistantError as exc:
        if errors and "llama" in exc.message:
            exc.message += f": {errors[-1]}"
        raise
    return {**load, **speed, **quality, **scored}
