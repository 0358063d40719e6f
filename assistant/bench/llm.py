"""Benchmark GGUF variants side by side: speed, memory, quality against a reference, task accuracy, PER.

Each variant is measured in its own child process (``worker.py``), so its peak RSS is its own:

* **load_s**: map the weights and create the context (file already in the page cache after the first run).
* **pp_tps / tg_tps**: llama-bench's pp512 and tg128, done the way llama-bench does them (random tokens;
  prompt in ``llama_decode`` batches of 512 with only the last logits requested; generation one token per
  decode with a synchronize after each; one warm-up of each; the KV cache cleared before every
  repetition), so the figures can be checked against ``llama-bench`` (``benchmarks/llama_bench_compare.py``).
  Mean ± sample standard deviation over the repetitions.
* **ttft_ms**: a fixed ~50-token prompt (52 for SmolLM2) evaluated from an empty cache, up to the first token
  picked.
* **peak_rss_mb**: peak RSS (VmHWM, MiB) after the speed tests, before anything else is loaded, shown next to
  the ``fit.estimate_llm`` estimate for the same context.
* **quality** (vs the reference, loaded next to the candidate in the same child once RSS is recorded):
  full next-token distributions over ``data/eval_text.txt`` (chunks of 512 tokens, 3 chunks; ``--quick``:
  one chunk of 128), giving the perplexity ratio, the mean KL divergence KL(reference || variant) and the
  top-1 agreement (same most-likely next token).
* **accuracy**: ``data/tasks.json``, multiple choice scored by the log-likelihood of each choice.
* **per**: see ``per.py``.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import fit, gguf
from ..errors import AssistantError
from ..llama import log_to
from . import per as per_mod
from .llama_model import LlamaModel
from .worker import mean_sd, peak_rss_mb

if TYPE_CHECKING:
    import numpy as np

    from ..store import Installed, Store
    from .results import Run

DATA_DIR = Path(__file__).resolve().parent / "data"
PP_TOKENS = 512
TG_TOKENS = 128
PP_BATCH = 512  # llama-bench's default n_ubatch (its n_batch is 2048, which changes nothing for 512 tokens)
QUALITY_CHUNK = 512
QUALITY_CHUNKS = 3
QUICK_CHUNK = 128
QUICK_CHUNKS = 1
# Logits for every position cost batch x vocabulary floats (Gemma's 262k vocabulary: 128 MiB at 128 rows),
# so the evaluation pass decodes in batches this size; rows are compared in slices of ROW_SLICE.
EVAL_BATCH = 128
ROW_SLICE = 32
SEED = 1234
# The TTFT prompt: one ordinary request, identical across variants (same family = same tokenizer).
TTFT_PROMPT = (
    "I am planning a small vegetable garden behind my house. The soil is a bit sandy and the spot gets sun "
    "in the morning but shade after three o'clock. Which vegetables would grow well there, and how often "
    "should I water them during a dry summer?"
)
MiB = 1024 * 1024


@dataclass
class Options:
    reps: int = 3
    quick: bool = False
    threads: int = 1
    ctx: int = 4096

    @property
    def chunk(self) -> int:
        return QUICK_CHUNK if self.quick else QUALITY_CHUNK

    @property
    def chunks(self) -> int:
        return QUICK_CHUNKS if self.quick else QUALITY_CHUNKS

    def to_json(self) -> dict[str, Any]:
        return {
            "reps": self.reps,
            "quick": self.quick,
            "threads": self.threads,
            "ctx": self.ctx,
            "pp_tokens": PP_TOKENS,
            "tg_tokens": TG_TOKENS,
            "quality_chunk": self.chunk,
            "quality_chunks": self.chunks,
            "tasks": len(load_tasks()),
        }


@cache
def eval_text() -> str:
    return (DATA_DIR / "eval_text.txt").read_text(encoding="utf-8")


@cache
def load_tasks() -> list[dict[str, Any]]:
    data = json.loads((DATA_DIR / "tasks.json").read_text(encoding="utf-8"))
    return list(data["items"])


# -- parent side -------------------------------------------------------------------------------------------

Progress = Callable[[str, dict[str, Any]], None]


@dataclass
class Target:
    item: Installed
    info: gguf.GGUFInfo

    @property
    def id(self) -> str:
        return self.item.id

    @property
    def family(self) -> str:
        return self.item.id.split(":", 1)[0]

    @property
    def bpw(self) -> float:
        """Bits per weight: what "highest precision" means when picking a family's source variant."""
        return self.info.data_size * 8 / max(self.info.parameter_count, 1)


def resolve_targets(ids: Sequence[str], store: Store) -> list[Target]:
    targets: list[Target] = []
    for model_id in ids:
        item = store.require(model_id)
        if item.kind != "llm":
            raise AssistantError(f"{item.id} is a {item.kind} model", "benchmark speech and language models separately")
        if any(t.id == item.id for t in targets):
            continue
        targets.append(Target(item, gguf.read(item.path)))
    return targets


def source_variant(family: str, store: Store) -> Target | None:
    """The family's source variant: of its installed variants that were downloaded or imported (not made
    here by ``models quantize``), the one with the most bits per weight; failing that, of all its installed
    variants. It depends on what is installed, never on which variants a run names."""
    members = [item for item in store.list("llm") if item.id.split(":", 1)[0] == family and item.present]
    originals = [item for item in members if item.source != "quantize"] or members
    if not originals:
        return None
    candidates = resolve_targets([item.id for item in originals], store)
    return max(candidates, key=lambda t: (t.bpw, t.id))


def choose_references(targets: list[Target], store: Store, reference: Target | None = None) -> dict[str, Target]:
    """One reference per family: ``reference`` for its own family, else the family's ``source_variant``
    (quality and PER only make sense between variants sharing a tokenizer). Pinned to what is installed,
    so adding a variant to a run never changes the others' reference, nor their scores."""
    refs: dict[str, Target] = {reference.family: reference} if reference is not None else {}
    for t in targets:
        if t.family not in refs:
            refs[t.family] = source_variant(t.family, store) or t
    return refs


def run(
    ids: Sequence[str],
    *,
    options: Options,
    reference: str | None = None,
    store: Store | None = None,
    progress: Progress | None = None,
    cancel: Any = None,
) -> Run:
    """Benchmark every id plus each family's reference (``reference``, else the family's source variant)
    if not among them; return the run, not yet saved."""
    from ..store import Store as _Store
    from . import fingerprint, worker
    from .results import Run

    store = store or _Store()
    targets = resolve_targets(ids, store)
    ref_target = resolve_targets([reference], store)[0] if reference else None
    if not targets and ref_target is None:
        raise AssistantError("nothing to benchmark", "give one or more installed model ids")
    refs = choose_references([*targets, *([ref_target] if ref_target else [])], store, ref_target)
    for ref in reversed(list(refs.values())):  # each reference is measured, first, even when not named
        if all(t.id != ref.id for t in targets):
            targets.insert(0, ref)
    for t in targets:
        ref = refs[t.family]
        if t.id != ref.id and t.info.vocab_size != ref.info.vocab_size:
            raise AssistantError(
                f"{t.id} and its reference {ref.id} have different vocabularies",
                "compare variants of the same model, or pass --reference",
            )

    for t in targets:
        estimate = fit.estimate_llm(t.info, n_ctx=_context(t, options), n_batch=PP_BATCH)
        if fit.verdict(estimate.total) == "won't fit":
            raise AssistantError(
                f"{t.id} won't fit in memory with a {_context(t, options)}-token context"
                f" (needs about {estimate.total / MiB:.0f} MiB)",
                "close other programs or pass a smaller --ctx",
            )

    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for target in targets:
        ref = refs[target.family]
        spec = {
            **options.to_json(),
            "path": str(target.item.path),
            "ref_path": None if ref.id == target.id else str(ref.item.path),
            "ctx": _context(target, options),
        }

        def on_event(event: dict[str, Any], model_id: str = target.id) -> None:
            if progress is not None:
                progress(model_id, event)

        if progress is not None:
            progress(target.id, {"event": "start"})
        measured = worker.run("bench.llm", spec, on_event, cancel)
        rows.append(_row(target, ref, measured, options))
        if progress is not None:
            progress(target.id, {"event": "done"})

    per_mod.score_rows(rows)
    return Run(
        kind="llm",
        rows=rows,
        fingerprint=fingerprint.collect(options.threads, options.ctx),
        quick=options.quick,
        threads=options.threads,
        context=options.ctx,
        options=options.to_json(),
        wall_s=round(time.perf_counter() - started, 2),
    )


def _context(target: Target, options: Options) -> int:
    """The run's context size, capped at the model's training context (as the chat engine does)."""
    trained = target.info.context_length
    return min(options.ctx, trained) if trained else options.ctx


def _row(target: Target, ref: Target, m: dict[str, Any], options: Options) -> dict[str, Any]:
    n_ctx = _context(target, options)
    estimate = fit.estimate_llm(target.info, n_ctx=n_ctx, n_batch=PP_BATCH).total / MiB
    rss = m["peak_rss_mb"]
    is_ref = target.id == ref.id
    row: dict[str, Any] = {
        "id": target.id,
        "reference": ref.id,
        "is_reference": is_ref,
        "quant": target.info.quant,
        "size_bytes": target.item.path.stat().st_size,
        "bpw": round(target.bpw, 3),
        "parameters": target.info.parameter_count,
        **{k: m[k] for k in ("load_s", "load_s_sd", "pp_tps", "pp_tps_sd", "tg_tps", "tg_tps_sd")},
        **{k: m[k] for k in ("ttft_ms", "ttft_ms_sd", "ttft_prompt_tokens", "peak_rss_mb")},
        "fit_estimate_mb": round(estimate, 1),
        "fit_error_pct": round((estimate - rss) / rss * 100, 1) if rss else None,
        "ppl": m["ppl"],
        # The reference's own ratios are 1 / 0 / 1 by definition, not by measurement noise.
        "ppl_ratio": 1.0 if is_ref else m["ppl_ratio"],
        "kld": 0.0 if is_ref else m["kld"],
        "top1_agreement": 1.0 if is_ref else m["top1_agreement"],
        "eval_tokens": m["eval_tokens"],
        "accuracy": m["accuracy"],
        "tasks_correct": m["tasks_correct"],
        "tasks_total": m["tasks_total"],
        "accuracy_by_category": m["accuracy_by_category"],
        "reps": options.reps,
        "ctx": n_ctx,
    }
    return row


# -- child side --------------------------------------------------------------------------------------------


def _log_softmax(x: np.ndarray) -> np.ndarray:
    import numpy as np

    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _speed(m: LlamaModel, opts: Options, step: Callable[[str], None]) -> dict[str, Any]:
    rng = random.Random(SEED)

    def rand_tokens(n: int) -> list[int]:
        return [rng.randrange(m.n_vocab) for _ in range(n)]

    def prompt(n: int) -> None:
        done = 0
        while done < n:
            k = min(PP_BATCH, n - done)
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
    pp_mean, pp_sd = mean_sd(pp, 2)
    tg_mean, tg_sd = mean_sd(tg, 2)
    ttft_mean, ttft_sd = mean_sd(ttft, 2)
    return {
        "pp_tps": pp_mean,
        "pp_tps_sd": pp_sd,
        "tg_tps": tg_mean,
        "tg_tps_sd": tg_sd,
        "ttft_ms": ttft_mean,
        "ttft_ms_sd": ttft_sd,
        "ttft_prompt_tokens": len(ttft_tokens),
    }


def _quality(cand: LlamaModel, ref: LlamaModel | None, opts: Options, step: Callable[[str], None]) -> dict[str, Any]:
    """Perplexity of ``cand`` over the evaluation text and, with a reference, KL divergence and top-1
    agreement against it, position by position."""
    import numpy as np

    tokens = cand.tokenize(eval_text(), False)
    if ref is not None and ref.tokenize(eval_text(), False) != tokens:
        raise AssistantError("the reference tokenizes the evaluation text differently", "compare variants of one model")
    chunks = [tokens[i : i + opts.chunk] for i in range(0, len(tokens), opts.chunk)][: opts.chunks]
    chunks = [c for c in chunks if len(c) > 1]
    nll_c = nll_r = kld = 0.0
    agree = scored = 0
    for chunk in chunks:
        seq = ([cand.bos] if cand.add_bos else []) + chunk
        cand.clear()
        if ref is not None:
            ref.clear()
        for start in range(0, len(seq) - 1, EVAL_BATCH):
            part = seq[start : start + EVAL_BATCH]
            targets = np.asarray(seq[start + 1 : start + 1 + len(part)], dtype=np.int64)
            rows = len(targets)  # the chunk's last token has nothing to predict
            cand.decode(part, start, all_logits=True)
            if ref is not None:
                ref.decode(part, start, all_logits=True)
            lc_all = cand.logits(len(part))
            lr_all = ref.logits(len(part)) if ref is not None else None
            for s in range(0, rows, ROW_SLICE):
                idx = np.arange(s, min(s + ROW_SLICE, rows))
                tgt = targets[idx]
                lc = _log_softmax(lc_all[idx].astype(np.float32))
                nll_c -= float(lc[np.arange(len(idx)), tgt].sum(dtype=np.float64))
                if lr_all is not None:
                    lr = _log_softmax(lr_all[idx].astype(np.float32))
                    nll_r -= float(lr[np.arange(len(idx)), tgt].sum(dtype=np.float64))
                    kl_rows = (np.exp(lr) * (lr - lc)).sum(axis=-1, dtype=np.float64)
                    kld += float(np.maximum(kl_rows, 0.0).sum())
                    agree += int((lr.argmax(axis=-1) == lc.argmax(axis=-1)).sum())
                scored += len(idx)
        step("quality")
    if not scored:
        raise AssistantError("the evaluation text is too short for this tokenizer")
    out: dict[str, Any] = {"eval_tokens": scored, "ppl": round(math.exp(nll_c / scored), 4)}
    if ref is not None:
        out["ref_ppl"] = round(math.exp(nll_r / scored), 4)
        out["ppl_ratio"] = round(math.exp((nll_c - nll_r) / scored), 5)
        out["kld"] = round(kld / scored, 6)
        out["top1_agreement"] = round(agree / scored, 5)
    return out


def _tasks(m: LlamaModel, step: Callable[[str], None]) -> dict[str, Any]:
    """Multiple choice by log-likelihood: score = log P(choice tokens | prompt), highest wins."""
    import numpy as np

    items = load_tasks()
    correct = 0
    by_cat: dict[str, list[int]] = {}
    for n, item in enumerate(items, 1):
        prompt = item["prompt"]
        prefix = m.tokenize(prompt, m.add_bos)
        m.clear()
        m.decode(prefix, 0, all_logits=False)
        first = _log_softmax(m.logits(1)[0].astype(np.float32))
        scores = []
        for choice in item["choices"]:
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
        ok = int(int(np.argmax(scores)) == int(item["answer"]))
        correct += ok
        by_cat.setdefault(item["category"], []).append(ok)
        if n % 10 == 0 or n == len(items):
            step("tasks")
    return {
        "accuracy": round(correct / len(items), 4),
        "tasks_correct": correct,
        "tasks_total": len(items),
        "accuracy_by_category": {k: round(sum(v) / len(v), 3) for k, v in sorted(by_cat.items())},
    }


def work(spec: dict[str, Any], emit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Child process: measure one variant (``spec`` from ``run``)."""
    import llama_cpp

    errors: list[str] = []

    def on_log(level: int, text: str) -> None:
        if level == 3 and text:  # GGML_LOG_LEVEL_ERROR: kept for the error message
            errors.append(text.strip())

    log_to(on_log)
    llama_cpp.llama_backend_init()
    opts = Options(
        reps=int(spec["reps"]), quick=bool(spec["quick"]), threads=int(spec["threads"]), ctx=int(spec["ctx"])
    )
    # speed_only: just load / pp / tg / TTFT / RSS (benchmarks/llama_bench_compare.py)
    speed_only = bool(spec.get("speed_only"))
    n_task_steps = math.ceil(len(load_tasks()) / 10)
    units = 1 + opts.reps + 1 + (0 if speed_only else opts.chunks + n_task_steps)
    emit({"event": "plan", "units": units})

    def step(stage: str) -> None:
        emit({"event": "advance", "stage": stage})

    try:
        loads = []
        for rep in range(opts.reps):
            t0 = time.perf_counter()
            cand = LlamaModel(spec["path"], n_ctx=opts.ctx, n_batch=PP_BATCH, threads=opts.threads)
            loads.append(time.perf_counter() - t0)
            if rep < opts.reps - 1:
                cand.close()
        step("load")
        load_mean, load_sd = mean_sd(loads, 4)
        speed = _speed(cand, opts, step)
        # Peak memory of this variant alone: recorded before the evaluation contexts and the reference exist.
        peak = round(peak_rss_mb(), 1)
        if speed_only:
            cand.close()
            return {"load_s": load_mean, "load_s_sd": load_sd, **speed, "peak_rss_mb": peak}
        n_eval_ctx = opts.chunk + 8
        cand.new_context(n_ctx=n_eval_ctx, n_batch=EVAL_BATCH, threads=opts.threads)
        ref = None
        if spec.get("ref_path"):
            ref = LlamaModel(spec["ref_path"], n_ctx=n_eval_ctx, n_batch=EVAL_BATCH, threads=opts.threads)
            if ref.n_vocab != cand.n_vocab:
                raise AssistantError("the reference has a different vocabulary", "compare variants of one model")
        quality = _quality(cand, ref, opts, step)
        if ref is not None:
            ref.close()
        tasks = _tasks(cand, step)
        cand.close()
    except AssistantError as exc:
        if errors and "llama" in exc.message:
            exc.message += f": {errors[-1]}"
        raise
    return {
        "load_s": load_mean,
        "load_s_sd": load_sd,
        **speed,
        "peak_rss_mb": peak,
        **quality,
        **tasks,
    }
