"""Benchmark GGUF variants side by side: speed, memory, quality against a reference, task accuracy, PER,
every figure with its 95 % interval, and a verdict.

Each variant is measured in child processes of its own (``measure.py``), so its peak RSS is its own: one
for its quality and tasks, then one per speed repetition. The speed repetitions run in rounds, every
variant once per round, and the reference again after every second candidate (R A B R C D R, then
R D C R B A R, ...: ``_time_speeds``), so each candidate is timed next to a timing of its reference and a
load on the machine that changes over minutes falls on both alike. Each row keeps its per-round values
(``rounds``) and a candidate the geometric mean of the two reference timings around it (``ref_rounds``);
``per`` pairs its speed ratios with those, round by round:

* **load_s**: map the weights and create the context (file already in the page cache after the first run).
* **pp_tps / tg_tps**: llama-bench's pp512 and tg128, done the way llama-bench does them (random tokens;
  prompt in ``llama_decode`` batches of ``--batch`` (512, llama-bench's n_ubatch) with only the last logits
  requested; generation one token per decode with a synchronize after each; one warm-up of each; the KV
  cache cleared before every repetition), so the figures can be checked against ``llama-bench``
  (``benchmarks/llama_bench_compare.py``). Mean ± sample standard deviation over the rounds, and a
  t interval (``stats.mean_interval``).
* **ttft_ms**: a fixed ~50-token prompt (52 for SmolLM2) evaluated from an empty cache, up to the first token
  picked.
* **peak_rss_mb**: peak RSS (VmHWM, MiB) of a speed round's process (the median over rounds), shown next
  to the ``fit.estimate_llm`` estimate for the same context.
* **quality** (vs the reference; the reference's row is measured first and leaves
  its log-probabilities in the run's scratch folder for the others, as ``llama-perplexity --kl-divergence``
  keeps its base logits, or, past ``measure.REF_ROWS_MAX``, each candidate loads the reference next to it):
  full next-token distributions over the evaluation text (``tasks.eval_text``: five genres, over 20,000
  tokens, or ``--text``), in windows of 512 tokens (``--quick``: a few windows spread over the text),
  giving the perplexity ratio, the mean KL divergence KL(reference || variant), its 99th percentile and
  maximum, and the top-1 agreement, each with its uncertainty (``stats.token_stats``). Only between
  variants that share a vocabulary: across families these are None, with ``quality_note`` saying why.
* **accuracy**: the task families of ``data/tasks/`` (or ``--tasks``): multiple choice scored by the
  log-likelihood of each choice, generated answers by a greedy reply matched against the answer. Wilson
  interval, per family too, and the difference against the reference *on the same items* (paired
  bootstrap interval, exact McNemar test: ``stats.paired_accuracy``).
* **per**: see ``per.py``; **verdict**: see ``verdict.py``.

Runtime settings are variants too: ``threads``, ``kv_type``, ``flash_attn`` and ``batch`` given as lists
(``--threads 1,2``) measure every combination of them for every model, one row each.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import fit, gguf
from ..errors import AssistantError
from . import per as per_mod
from . import spec as bench_spec
from . import stats
from . import tasks as bench_tasks

if TYPE_CHECKING:
    from ..store import Installed, Store
    from .results import Run
    from .verdict import Budget

PP_TOKENS = 512
TG_TOKENS = 128
PP_BATCH = 512  # llama-bench's default n_ubatch (its n_batch is 2048, which changes nothing for 512 tokens)
QUALITY_CHUNK = 512
QUICK_CHUNKS = 2  # --quick: this many 512-token windows, spread evenly over the text
QUICK_PER_FAMILY = 10  # --quick: items per task family (the intervals shown widen accordingly)
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
SCRATCH_PREFIX = "bench-run-"
SWEPT = ("threads", "kv_type", "flash_attn", "batch")  # the runtime settings a run can sweep


@dataclass
class Options:
    reps: int = 3
    quick: bool = False
    threads: int = 1
    ctx: int = 4096
    batch: int = PP_BATCH
    kv_type: str = "f16"
    flash_attn: str = "auto"
    tasks_file: str | None = None
    text_file: str | None = None
    # Lists of values to sweep ({"threads": [1, 2]}): every combination is measured, one row each.
    sweep: dict[str, list[Any]] = field(default_factory=dict)
    speculative: bool = False  # the speculative column: prompt lookup on grounded prompts (``spec.py``)

    @property
    def chunk(self) -> int:
        return QUALITY_CHUNK

    def task_items(self) -> list[bench_tasks.Task]:
        """The items scored: ``--tasks`` or the built-in families; ``--quick`` takes a stratified sample."""
        items = bench_tasks.load_file(self.tasks_file) if self.tasks_file else bench_tasks.builtin()
        return bench_tasks.subsample(items, QUICK_PER_FAMILY, SEED) if self.quick else list(items)

    def quality_steps(self, text: str) -> int:
        """Progress units of the quality pass: its windows (estimated from the text's length)."""
        windows = max(1, math.ceil(len(text) / (self.chunk * 3.5)))
        return min(windows, QUICK_CHUNKS) if self.quick else windows

    def quality_units(self, text: str, items: int) -> int:
        """Progress units of a quality pass: its windows, then one per ten task items."""
        return self.quality_steps(text) + math.ceil(items / 10)

    @property
    def speed_units(self) -> int:
        """Progress units of a speed pass: the loads, each repetition's pp + tg, the TTFT."""
        return 1 + self.reps + 1

    def combinations(self) -> list[Options]:
        """One Options per combination of the swept settings (just this one when nothing is swept)."""
        keys = self.swept()
        values = [self.sweep[k] for k in keys]
        return [replace(self, sweep={}, **dict(zip(keys, combo, strict=True))) for combo in itertools.product(*values)]

    def swept(self) -> list[str]:
        """The settings given more than one value (a single value sets the setting: no sweep)."""
        return [k for k in SWEPT if len(self.sweep.get(k) or ()) > 1]

    def settings(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in SWEPT}

    def to_json(self) -> dict[str, Any]:
        return {
            "reps": self.reps,
            "quick": self.quick,
            "threads": self.threads,
            "ctx": self.ctx,
            "batch": self.batch,
            "kv_type": self.kv_type,
            "flash_attn": self.flash_attn,
            "pp_tokens": PP_TOKENS,
            "tg_tokens": TG_TOKENS,
            "quality_chunk": self.chunk,
            "tasks": len(self.task_items()),
            "tasks_file": self.tasks_file,
            "text_file": self.text_file,
            "sweep": self.sweep,
            "speculative": self.speculative,
        }


def eval_tokens_window(tokens: list[int], opts: Options) -> list[list[int]]:
    """The evaluation windows: every ``chunk``-token window of the text, or with ``quick`` a few spread evenly
    over it (the genres follow one another, so the first few alone would all be narrative)."""
    chunks = [c for c in (tokens[i : i + opts.chunk] for i in range(0, len(tokens), opts.chunk)) if len(c) > 1]
    if opts.quick and len(chunks) > QUICK_CHUNKS:
        step = len(chunks) / QUICK_CHUNKS
        chunks = [chunks[int(i * step)] for i in range(QUICK_CHUNKS)]
    return chunks


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
    """One reference per family: ``reference`` for every family when given (accuracy, speed, memory and PER
    compare across families; quality only within the reference's vocabulary), else each family's
    ``source_variant``. Pinned to what is installed, so adding a variant to a run never changes the
    others' reference, nor their scores."""
    refs: dict[str, Target] = {}
    for t in targets:
        if t.family not in refs:
            refs[t.family] = reference or source_variant(t.family, store) or t
    return refs


@dataclass
class _Job:
    """One row to measure: a model at one combination of the runtime settings."""

    target: Target
    options: Options
    label: str  # the row's id: the model id, plus the settings when the run sweeps any

    @property
    def key(self) -> tuple[str, str]:
        return self.target.id, self.label


def _jobs(targets: list[Target], options: Options) -> list[_Job]:
    combos = options.combinations()
    swept = options.swept()
    jobs = []
    for target in targets:
        for combo in combos:
            suffix = " ".join(f"{k}={getattr(combo, k)}" for k in swept)
            jobs.append(_Job(target, combo, f"{target.id} {suffix}" if suffix else target.id))
    return jobs


def shares_vocabulary(a: Target, b: Target) -> str | None:
    """None when ``a``'s next-token distributions can be compared with ``b``'s; else why not."""
    if a.family != b.family:
        return f"another family than the reference {b.id}: quality is compared within a family"
    if a.info.vocab_size != b.info.vocab_size:
        return f"a different vocabulary than the reference {b.id}"
    return None


def run(
    ids: Sequence[str],
    *,
    options: Options,
    reference: str | None = None,
    store: Store | None = None,
    progress: Progress | None = None,
    cancel: Any = None,
    budget: Budget | None = None,
) -> Run:
    """Benchmark every id plus each family's reference (``reference``, else the family's source variant)
    if not among them, at every combination of the swept settings; return the run with its verdict, not
    yet saved. The task and text files are read (and refused, naming the line) before anything runs."""
    from ..store import Store as _Store
    from . import fingerprint
    from . import verdict as verdict_mod
    from .results import Run

    store = store or _Store()
    targets = resolve_targets(ids, store)
    ref_target = resolve_targets([reference], store)[0] if reference else None
    if not targets and ref_target is None:
        raise AssistantError("nothing to benchmark", "give one or more installed model ids")
    refs = choose_references([*targets, *([ref_target] if ref_target else [])], store, ref_target)
    for ref in reversed(list({r.id: r for r in refs.values()}.values())):  # references first, even unnamed
        if all(t.id != ref.id for t in targets):
            targets.insert(0, ref)
    items = options.task_items()  # a bad --tasks file stops here, before any model loads
    bench_tasks.eval_text(options.text_file)
    _check_fit(targets, options)

    started = time.perf_counter()
    jobs = _jobs(targets, options)
    ref_jobs = {ref.id: next(j for j in jobs if j.target.id == ref.id) for ref in refs.values()}
    measured_rows: dict[int, dict[str, Any]] = {}
    ref_keys = {j.key for j in ref_jobs.values()}
    # References are measured first (their rows are cached for the others), the rows kept in the run's order.
    order = sorted(range(len(jobs)), key=lambda n: jobs[n].key not in ref_keys)
    with _scratch() as scratch:
        caches = {j.key: _ref_cache(scratch, j, n) for n, j in enumerate(ref_jobs.values())}
        specs, notes = {}, {}
        for n in order:
            job = jobs[n]
            ref = refs[job.target.family]
            ref_job = ref_jobs[ref.id]
            notes[n] = note = None if job.target.id == ref.id else shares_vocabulary(job.target, ref)
            specs[n] = {
                **job.options.to_json(),
                "path": str(job.target.item.path),
                "ref_path": None if job.key == ref_job.key or note else str(ref.item.path),
                "ref_cache": None if note else caches[ref_job.key],
                "ctx": _context(job.target, job.options),
            }
        # Quality and tasks first, a variant at a time; then the speed in rounds, each candidate timed next
        # to its reference (``_time_speeds``), so the ratios against it (``per``) are paired by neighbour.
        index = {job.key: n for n, job in enumerate(jobs)}
        ref_of = {n: index[ref_jobs[refs[jobs[n].target.family].id].key] for n in order}
        passes = _speed_passes(order, ref_of)
        quality = {
            n: _measure(jobs[n], {**specs[n], "quality_only": True}, options, progress, cancel, passes=passes[n])
            for n in order
        }

        def time_one(n: int, last: bool) -> dict[str, Any]:
            spec = {**specs[n], "speed_only": True, "reps": 1}
            return _measure(jobs[n], spec, options, progress, cancel, last=last and not options.speculative)

        rounds = _time_speeds(order, ref_of, time_one, options.reps)
        lookup: dict[int, dict[str, Any]] = {}
        if options.speculative:  # its own pass: it loads the chat engine, which the speed rounds must not see
            for n in order:
                spec = {**specs[n], "speculative_only": True}
                lookup[n] = _measure(jobs[n], spec, options, progress, cancel, last=True)
        for n in order:
            ref_job = ref_jobs[refs[jobs[n].target.family].id]
            measured = {**quality[n], **_speed_rounds(rounds[n]), **lookup.get(n, {})}
            measured_rows[n] = _row(jobs[n], ref_job, measured, notes[n])
    rows = [measured_rows[n] for n in range(len(jobs))]

    _pair_accuracy(rows, items)
    per_mod.score_rows(rows)
    options_json = options.to_json()
    options_json["verdict"] = verdict_mod.verdict(rows, budget or verdict_mod.Budget())
    if budget is not None:
        options_json["budget"] = dataclasses.asdict(budget)
    return Run(
        kind="llm",
        rows=rows,
        fingerprint=fingerprint.collect(options.threads, options.ctx),
        quick=options.quick,
        threads=options.threads,
        context=options.ctx,
        options=options_json,
        wall_s=round(time.perf_counter() - started, 2),
    )


def _measure(
    job: _Job,
    spec: dict[str, Any],
    options: Options,
    progress: Progress | None,
    cancel: Any,
    *,
    last: bool = False,
    passes: int = 1,
) -> dict[str, Any]:
    """One child process's pass over ``job`` (``measure.work``). The front sees one progress bar per row:
    "start" and a "plan" counting every pass before the quality pass (``passes`` speed passes a round), the
    steps of each, "done" after the last speed pass."""
    from . import worker

    quality = bool(spec.get("quality_only"))

    def on_event(event: dict[str, Any]) -> None:
        if progress is None or (event.get("event") == "plan" and not quality):
            return
        if event.get("event") == "plan":
            speed = options.reps * passes * replace(options, reps=1).speed_units
            lookup = len(bench_spec.prompts(options.quick)) if options.speculative else 0
            event = {**event, "units": event["units"] + speed + lookup}
        progress(job.label, event)

    if progress is not None and quality:
        progress(job.label, {"event": "start"})
    measured = worker.run("bench.llm", spec, on_event, cancel)
    if progress is not None and last:
        progress(job.label, {"event": "done"})
    return measured


ROUND_KEYS = ("load_s", "pp_tps", "tg_tps", "ttft_ms")  # the figures a speed pass times
PAIR = 2  # candidates timed between two timings of their reference


def _round_schedule(order: Sequence[int], ref_of: dict[int, int], reverse: bool) -> list[list[int]]:
    """One round's passes, a group per reference: R A B R C D R (its candidates ``PAIR`` at a time between
    timings of it; a reference with no candidate just R), everything reversed when ``reverse``, so over two
    rounds every candidate sits once early and once late."""
    groups = []
    for ref in dict.fromkeys(ref_of[n] for n in order):
        candidates = [n for n in order if ref_of[n] == ref and n != ref]
        if reverse:
            candidates.reverse()
        group = [ref]
        for i in range(0, len(candidates), PAIR):
            group += [*candidates[i : i + PAIR], ref]
        groups.append(group)
    return groups[::-1] if reverse else groups


def _speed_passes(order: Sequence[int], ref_of: dict[int, int]) -> dict[int, int]:
    """How many speed passes each row gets a round (a reference one more than its candidate pairs)."""
    counts = dict.fromkeys(order, 0)
    for group in _round_schedule(order, ref_of, reverse=False):
        for n in group:
            counts[n] += 1
    return counts


def _time_speeds(
    order: Sequence[int], ref_of: dict[int, int], time_one: Callable[[int, bool], dict[str, Any]], reps: int
) -> dict[int, list[dict[str, Any]]]:
    """``reps`` rounds of speed passes (``_round_schedule``; ``time_one(n, last)`` times row ``n`` once,
    ``last`` on its final pass). Per row, a dict per round: a candidate's own pass plus under ``ref`` the
    geometric mean of the two reference timings around it (drift over the minutes between them is near
    linear, so it cancels); a reference's passes of the round combined (geometric mean, median memory)."""
    left = {n: reps * k for n, k in _speed_passes(order, ref_of).items()}
    out: dict[int, list[dict[str, Any]]] = {n: [] for n in order}
    for r in range(reps):
        for group in _round_schedule(order, ref_of, reverse=r % 2 == 1):
            timed = []
            for n in group:
                left[n] -= 1
                timed.append(time_one(n, left[n] == 0))
            ref = group[0]
            at = [i for i, n in enumerate(group) if n == ref]
            out[ref].append(_combined([timed[i] for i in at]))
            for i, n in enumerate(group):
                if n != ref:
                    around = [timed[max(j for j in at if j < i)], timed[min(j for j in at if j > i)]]
                    out[n].append({**timed[i], "ref": {k: _geomean([t[k] for t in around]) for k in ROUND_KEYS}})
    return out


def _geomean(values: list[float]) -> float:
    """``per.geometric_mean``, or the plain mean where a timing came back 0 (a pass that failed to time)."""
    return per_mod.geometric_mean(values) if all(v > 0 for v in values) else statistics.fmean(values)


def _combined(passes: list[dict[str, Any]]) -> dict[str, Any]:
    """A reference's passes of one round as one: the geometric mean of each timing, the median memory."""
    out = {**passes[0], **{k: _geomean([p[k] for p in passes]) for k in ROUND_KEYS}}
    out["peak_rss_mb"] = statistics.median(p["peak_rss_mb"] for p in passes)
    return out


def _speed_rounds(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """A row's speed figures from its rounds: mean, sd and 95 % interval over them, the values of each round
    under ``rounds`` and, for a candidate, its reference's beside it under ``ref_rounds`` (``per`` pairs the
    two round by round), the median peak memory."""
    out: dict[str, Any] = {"ttft_prompt_tokens": rounds[0]["ttft_prompt_tokens"]}
    out["rounds"] = {k: [r[k] for r in rounds] for k in ROUND_KEYS}
    out["ref_rounds"] = {k: [r["ref"][k] for r in rounds] for k in ROUND_KEYS} if "ref" in rounds[0] else None
    for key, values in out["rounds"].items():
        digits = 4 if key == "load_s" else 2
        mean, sd, lo, hi = stats.mean_interval(values)
        out[key], out[f"{key}_sd"], out[f"{key}_lo"], out[f"{key}_hi"] = (round(v, digits) for v in (mean, sd, lo, hi))
    out["peak_rss_mb"] = float(statistics.median(r["peak_rss_mb"] for r in rounds))
    return out


def _scratch() -> tempfile.TemporaryDirectory[str]:
    """A private folder for the run's cached reference rows (``measure.read_ref_rows``), removed with the
    run; one a killed run left behind is removed by the next run after a day."""
    from .. import paths

    cache = paths.ensure(paths.cache_dir())
    for stale in cache.glob(f"{SCRATCH_PREFIX}*"):
        try:
            if time.time() - stale.stat().st_mtime > 86400:
                shutil.rmtree(stale, ignore_errors=True)
        except OSError:
            continue
    return tempfile.TemporaryDirectory(prefix=SCRATCH_PREFIX, dir=cache)  # mkdtemp: 0700


def _ref_cache(scratch: str, ref_job: _Job, n: int) -> str | None:
    """Where the ``n``-th reference's rows are kept: only for a reference measured with the settings a
    candidate loads it with (the default KV cache type and attention), so cached and loaded agree."""
    if ref_job.options.kv_type != "f16" or ref_job.options.flash_attn != "auto":
        return None
    folder = Path(scratch) / f"ref{n}"
    folder.mkdir(mode=0o700, exist_ok=True)
    return str(folder)


def _check_fit(targets: list[Target], options: Options) -> None:
    for t in targets:
        estimate = fit.estimate_llm(t.info, n_ctx=_context(t, options), n_batch=options.batch)
        if fit.verdict(estimate.total) == "won't fit":
            raise AssistantError(
                f"{t.id} won't fit in memory with a {_context(t, options)}-token context"
                f" (needs about {estimate.total / MiB:.0f} MiB)",
                "close other programs or pass a smaller --ctx",
            )


def _pair_accuracy(rows: list[dict[str, Any]], items: list[bench_tasks.Task]) -> None:
    """Accuracy with its interval, per family too, and each row's difference from its reference's on the
    same items (``stats.paired_accuracy``): the comparison that can tell two variants apart."""
    by_id = {row["id"]: row for row in rows}
    for row in rows:
        results = [c == "1" for c in row["task_results"]]
        row["accuracy_lo"], row["accuracy_hi"] = _rounded(stats.wilson(sum(results), len(results)))
        families: dict[str, list[bool]] = {}
        for item, ok in zip(items, results, strict=True):
            families.setdefault(item.category, []).append(ok)
        row["accuracy_by_category"] = {k: round(sum(v) / len(v), 4) for k, v in sorted(families.items())}
        row["accuracy_by_family"] = {
            k: dict(zip(("accuracy_lo", "accuracy_hi"), _rounded(stats.wilson(sum(v), len(v))), strict=True))
            | {"accuracy": round(sum(v) / len(v), 4), "n": len(v)}
            for k, v in sorted(families.items())
        }
    for row in rows:
        if row["is_reference"]:
            row |= dict.fromkeys(DIFF_KEYS)
            continue
        ref = [c == "1" for c in by_id[row["reference"]]["task_results"]]
        diff = stats.paired_accuracy([c == "1" for c in row["task_results"]], ref)
        row["accuracy_diff"], row["accuracy_diff_lo"], row["accuracy_diff_hi"] = _rounded((diff.diff, diff.lo, diff.hi))
        row["accuracy_diff_p"] = round(diff.p, 5)
        row["accuracy_diff_significant"] = diff.significant


DIFF_KEYS = ("accuracy_diff", "accuracy_diff_lo", "accuracy_diff_hi", "accuracy_diff_p", "accuracy_diff_significant")


def _rounded(values: Sequence[float], digits: int = 4) -> tuple[float, ...]:
    return tuple(round(float(v), digits) for v in values)


def _context(target: Target, options: Options) -> int:
    """The run's context size, capped at the model's training context (as the chat engine does)."""
    trained = target.info.context_length
    return min(options.ctx, trained) if trained else options.ctx


# Quality keys the child returns (stats.token_stats), and what they are for the reference itself: its own
# ratios are 1 / 0 / 1 by definition, not by measurement noise.
QUALITY_KEYS = {
    "ppl_ratio": 1.0, "ppl_ratio_lo": 1.0, "ppl_ratio_hi": 1.0, "ppl_ratio_se": 0.0,
    "kld": 0.0, "kld_lo": 0.0, "kld_hi": 0.0, "kld_se": 0.0, "kld_p99": 0.0, "kld_max": 0.0,
    "top1_agreement": 1.0, "top1_agreement_lo": 1.0, "top1_agreement_hi": 1.0, "top1_agreement_se": 0.0,
}  # fmt: skip
SPEED_KEYS = tuple(f"{k}{s}" for k in ("load_s", "pp_tps", "tg_tps", "ttft_ms") for s in ("", "_sd", "_lo", "_hi"))


def _row(job: _Job, ref_job: _Job, m: dict[str, Any], quality_note: str | None) -> dict[str, Any]:
    target, options = job.target, job.options
    n_ctx = _context(target, options)
    estimate = fit.estimate_llm(target.info, n_ctx=n_ctx, n_batch=options.batch).total / MiB
    rss = m["peak_rss_mb"]
    is_ref = job.key == ref_job.key
    results = m["task_results"]
    row: dict[str, Any] = {
        "id": job.label,
        "model": target.id,
        "family": target.family,
        "settings": options.settings(),
        "reference": ref_job.label,
        "is_reference": is_ref,
        "quant": target.info.quant,
        "size_bytes": target.item.path.stat().st_size,
        "bpw": round(target.bpw, 3),
        "parameters": target.info.parameter_count,
        **{k: m[k] for k in SPEED_KEYS},
        "rounds": m["rounds"],
        "ref_rounds": m["ref_rounds"],
        "ttft_prompt_tokens": m["ttft_prompt_tokens"],
        "peak_rss_mb": rss,
        "fit_estimate_mb": round(estimate, 1),
        "fit_error_pct": round((estimate - rss) / rss * 100, 1) if rss else None,
        "ppl": m["ppl"],
        **{k: (v if is_ref else None if quality_note else m.get(k)) for k, v in QUALITY_KEYS.items()},
        "quality_note": quality_note,
        "eval_tokens": m["eval_tokens"],
        "accuracy": round(sum(results) / len(results), 4) if results else None,
        "tasks_correct": sum(results),
        "tasks_total": len(results),
        "task_results": "".join(str(int(r)) for r in results),
        "task_replies": m.get("task_replies", {}),
        "reps": options.reps,
        "ctx": n_ctx,
        **{k: m[k] for k in bench_spec.KEYS if k in m},
    }
    return row
