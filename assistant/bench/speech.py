"""Benchmark Whisper (CTranslate2) variants: real-time factor, word error rate, latency, peak memory, PER.

Each variant runs in its own child process (peak RSS is its own) through the app's ``speech.Transcriber``
over the clip set of ``bench/clips.py`` (espeak-ng voices and speeds, clean and at 20 / 10 / 5 dB SNR, in
English and, for multilingual models, German, French and Spanish transcribed with their language set), so
the benchmark measures exactly what dictation and ``assistant transcribe --language`` run:

* **load_s**: load the model (mean ± sd over the repetitions);
* **rtf**: seconds of compute per second of audio, file to text (decode, VAD, model), mean ± sd over the
  repetitions (``rtf_sd``), and ``rtf_lo``/``rtf_hi``, a 95 % bootstrap interval over the clips; lower is
  faster;
* **wer**: corpus word error rate of the English clips (every model runs those, so rows compare), with
  ``wer_lo``/``wer_hi``, a 95 % bootstrap interval over clips (seeded, 2000 resamples); ``wer_by_condition``
  and ``wer_by_language`` the same per noise level and per language. Greedy decoding: the same text on
  every repetition. An English-only model runs the English clips only (``languages: ["en"]``);
* **latency_ms**: time to transcribe the ~5 s dictation clip, what a user waits for after speaking;
* **peak_rss_mb**: peak RSS (VmHWM) of the child, next to ``fit.estimate_whisper``.

``--quick`` keeps one text in six, in one voice (all its conditions): 24 clips, wider intervals. PER uses
``per.SPEECH_AXES`` (word accuracy, × real time, memory, latency) against the reference: the most precise
compute type present (float32 > float16 > int8_float32 > int8), then the largest model.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import fit
from ..errors import AssistantError
from . import clips as clips_mod
from . import per as per_mod
from .worker import MiB, mean_sd, peak_rss_mb

if TYPE_CHECKING:
    from ..store import Installed, Store
    from .results import Run

# More bits first: "highest precision present" for picking the reference.
PRECISION = ("float32", "bfloat16", "float16", "int8_float32", "int8_bfloat16", "int8_float16", "int8")
BOOTSTRAP_RESAMPLES = 2000


@dataclass
class Options:
    reps: int = 3
    quick: bool = False
    threads: int = 1

    def to_json(self) -> dict[str, Any]:
        return {"reps": self.reps, "quick": self.quick, "threads": self.threads}


Progress = Callable[[str, dict[str, Any]], None]


def compute_type(item: Installed) -> str:
    """The variant's compute type: cached in the store, else the catalog's, else int8."""
    from .. import catalog

    value = item.info.get("compute_type")
    if not value:
        variant = catalog.default().find(item.id)
        value = variant.entry.compute_type if variant else None
    return str(value or "int8")


def _rank(item: Installed) -> tuple[int, int]:
    ct = compute_type(item)
    precision = len(PRECISION) - PRECISION.index(ct) if ct in PRECISION else 0
    return precision, item.size_bytes


def run(
    ids: Sequence[str],
    *,
    options: Options,
    reference: str | None = None,
    store: Store | None = None,
    progress: Progress | None = None,
    cancel: Any = None,
) -> Run:
    from ..store import Store as _Store
    from ..store import dir_size
    from . import fingerprint, worker
    from .results import Run

    store = store or _Store()
    items: list[Installed] = []
    for model_id in [*([reference] if reference else []), *ids]:
        item = store.require(model_id)
        if item.kind != "whisper":
            raise AssistantError(f"{item.id} is a {item.kind} model", "benchmark speech and language models separately")
        if all(i.id != item.id for i in items):
            items.append(item)
    ref = store.require(reference) if reference else max(items, key=_rank)

    started = time.perf_counter()
    # built here, before any child starts: a missing espeak-ng is one line, and every variant reads one set
    clip_dir = clips_mod.ensure(clips_mod.select(clips_mod.plan(), quick=options.quick))
    rows: list[dict[str, Any]] = []
    for item in items:
        spec = {
            **options.to_json(),
            "path": str(item.path),
            "compute_type": compute_type(item),
            "clip_dir": str(clip_dir),
        }

        def on_event(event: dict[str, Any], model_id: str = item.id) -> None:
            if progress is not None:
                progress(model_id, event)

        on_event({"event": "start"})
        m = worker.run("bench.speech", spec, on_event, cancel)
        size = dir_size(item.path)
        estimate = fit.estimate_whisper(size).total / MiB
        rss = m["peak_rss_mb"]
        rows.append(
            {
                "id": item.id,
                "reference": ref.id,
                "is_reference": item.id == ref.id,
                "compute_type": spec["compute_type"],
                "size_bytes": size,
                **m,
                "word_accuracy": round(1 - m["wer"], 5),
                "x_realtime": round(1 / m["rtf"], 3) if m["rtf"] else None,
                "fit_estimate_mb": round(estimate, 1),
                "fit_error_pct": round((estimate - rss) / rss * 100, 1) if rss else None,
                "reps": options.reps,
            }
        )
        on_event({"event": "done"})
    ref_row = next(r for r in rows if r["id"] == ref.id)
    for row in rows:
        axes = per_mod.ratios(row, ref_row, per_mod.SPEECH_AXES)
        row["per_axes"] = {k: round(v, 4) for k, v in axes.items()}
        row["per"] = round(per_mod.geometric_mean(list(axes.values())), 4)
    return Run(
        kind="whisper",
        rows=rows,
        fingerprint=fingerprint.collect(options.threads, None),
        quick=options.quick,
        threads=options.threads,
        context=None,
        options=options.to_json(),
        wall_s=round(time.perf_counter() - started, 2),
    )


def bootstrap(
    num: Sequence[float], den: Sequence[float], *, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0
) -> tuple[float, float]:
    """95 % percentile interval of sum(num) / sum(den) over clips drawn with replacement (seeded).

    Corpus WER is errors over reference words and RTF is seconds of compute over seconds of audio: both
    ratios of sums, so a clip is resampled whole (its errors with its words, its compute with its audio).
    """
    n = len(num)
    if n == 0:
        return 0.0, 0.0
    a, b = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    idx = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    ratios = a[idx].sum(axis=1) / np.maximum(b[idx].sum(axis=1), 1e-12)
    lo, hi = np.percentile(ratios, [2.5, 97.5])
    return float(lo), float(hi)


def _wer_summary(errors: list[int], words: list[int]) -> dict[str, Any]:
    lo, hi = bootstrap(errors, words)
    wer = sum(errors) / max(1, sum(words))
    return {"wer": round(wer, 5), "wer_lo": round(lo, 5), "wer_hi": round(hi, 5), "clips": len(errors)}


def _errors(reference: str, hypothesis: str, language: str) -> tuple[int, int]:
    """(word errors, reference words) of one clip: its share of the corpus WER."""
    import jiwer

    ref = clips_mod.normalize(reference, language)
    hyp = clips_mod.normalize(hypothesis, language)
    if not ref:
        return len(hyp.split()), 0
    out = jiwer.process_words(ref, hyp or "")
    return out.substitutions + out.deletions + out.insertions, len(ref.split())


def summarize(per_clip: list[dict[str, Any]]) -> dict[str, Any]:
    """The row's WER figures from each clip's errors: English overall (every model runs it, so ``wer`` and
    PER compare like with like), then by condition (all languages the model ran) and by language."""

    def pick(rows: list[dict[str, Any]]) -> dict[str, Any]:
        return _wer_summary([r["errors"] for r in rows], [r["words"] for r in rows])

    english = [r for r in per_clip if r["language"] == "en"]
    overall = pick(english)
    conditions = [c for c in clips_mod.CONDITIONS if any(r["condition"] == c for r in per_clip)]
    languages = list(dict.fromkeys(r["language"] for r in per_clip))
    return {
        "wer": overall["wer"],
        "wer_lo": overall["wer_lo"],
        "wer_hi": overall["wer_hi"],
        "wer_scope": "en",
        "wer_by_condition": {c: pick([r for r in per_clip if r["condition"] == c]) for c in conditions},
        "wer_by_language": {lang: pick([r for r in per_clip if r["language"] == lang]) for lang in languages},
        "languages": languages,
    }


def _clip_set(spec: dict[str, Any], multilingual: bool) -> list[tuple[clips_mod.BenchClip, Path]]:
    folder = Path(spec["clip_dir"])
    chosen = clips_mod.select(
        clips_mod.plan(), quick=bool(spec.get("quick")), languages=None if multilingual else {"en"}
    )
    return [(c, folder / c.file) for c in chosen]


def work(spec: dict[str, Any], emit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Child process: measure one Whisper variant."""
    from .. import speech

    reps = int(spec["reps"])
    dictation = speech.dictation_clip()
    emit({"event": "plan", "units": 1 + 1 + reps + 1})

    def step(stage: str) -> None:
        emit({"event": "advance", "stage": stage})

    loads = []
    transcriber = None
    for rep in range(reps):
        t0 = time.perf_counter()
        transcriber = speech.Transcriber(
            Path(spec["path"]), compute_type=spec["compute_type"], threads=int(spec["threads"])
        )
        loads.append(time.perf_counter() - t0)
        if rep < reps - 1:
            transcriber.close()
    assert transcriber is not None
    step("load")
    transcriber.transcribe(dictation.path).text()  # warm-up: first-call allocations, VAD model load
    step("warm-up")
    clip_set = _clip_set(spec, transcriber.multilingual)
    elapsed = np.zeros(len(clip_set))  # compute seconds per clip, summed over the repetitions
    audio = np.zeros(len(clip_set))
    hypotheses: list[str] = []
    rtfs = []
    for rep in range(reps):
        rep_elapsed = 0.0
        for i, (clip, path) in enumerate(clip_set):
            t0 = time.perf_counter()
            transcript = transcriber.transcribe(path, language=clip.language)
            text = transcript.text()  # segments are lazy: decoding happens here, inside the clock
            took = time.perf_counter() - t0
            elapsed[i] += took
            rep_elapsed += took
            audio[i] = transcript.info.duration
            if rep == 0:
                hypotheses.append(text)  # greedy decoding: the same text on every repetition
        rtfs.append(rep_elapsed / float(audio.sum() or 1.0))
        step("transcribe")
    per_clip = []
    for (clip, _), text in zip(clip_set, hypotheses, strict=True):
        errors, words = _errors(clip.text, text, clip.language)
        per_clip.append({"language": clip.language, "condition": clip.condition, "errors": errors, "words": words})
    latencies = []
    for _ in range(reps):
        t0 = time.perf_counter()
        transcriber.transcribe(dictation.path).text()
        latencies.append((time.perf_counter() - t0) * 1000)
    step("latency")
    peak = round(peak_rss_mb(), 1)
    transcriber.close()
    load_mean, load_sd = mean_sd(loads, 4)
    lat_mean, lat_sd = mean_sd(latencies, 1)
    rtf_mean, rtf_sd = mean_sd(rtfs, 4)
    rtf_lo, rtf_hi = bootstrap(list(elapsed / reps), list(audio))  # over clips: how much the set itself sways it
    return {
        "load_s": load_mean,
        "load_s_sd": load_sd,
        "rtf": rtf_mean,
        "rtf_sd": rtf_sd,
        "rtf_lo": round(rtf_lo, 4),
        "rtf_hi": round(rtf_hi, 4),
        **summarize(per_clip),
        "latency_ms": lat_mean,
        "latency_ms_sd": lat_sd,
        "peak_rss_mb": peak,
        "clips": len(clip_set),
        "audio_seconds": round(float(audio.sum()), 2),
    }
