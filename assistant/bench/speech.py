"""Benchmark Whisper (CTranslate2) variants: real-time factor, word error rate, latency, peak memory, PER.

Each variant runs in its own child process (peak RSS is its own) through the app's ``speech.Transcriber``
and ``speech.evaluate`` over the clips shipped in ``assistant/data/speech`` (espeak-ng voices with their
reference texts), so the benchmark measures exactly what dictation and ``assistant transcribe`` run:

* **load_s**: load the model (mean ± sd over the repetitions);
* **rtf**: seconds of compute per second of audio, file to text (decode, VAD, model); lower is faster;
* **wer**: corpus word error rate after normalisation (greedy decoding: the same on every repetition);
* **latency_ms**: time to transcribe the ~5 s dictation clip, what a user waits for after speaking;
* **peak_rss_mb**: peak RSS (VmHWM) of the child, next to ``fit.estimate_whisper``.

PER uses ``per.SPEECH_AXES`` (word accuracy, × real time, memory, latency) against the reference: the most
precise compute type present (float32 > float16 > int8_float32 > int8), then the largest model.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import fit
from ..errors import AssistantError
from . import per as per_mod
from .worker import MiB, mean_sd, peak_rss_mb

if TYPE_CHECKING:
    from ..store import Installed, Store
    from .results import Run

# More bits first: "highest precision present" for picking the reference.
PRECISION = ("float32", "bfloat16", "float16", "int8_float32", "int8_bfloat16", "int8_float16", "int8")
QUICK_CLIPS = 6


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
    rows: list[dict[str, Any]] = []
    for item in items:
        spec = {**options.to_json(), "path": str(item.path), "compute_type": compute_type(item)}

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


def work(spec: dict[str, Any], emit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Child process: measure one Whisper variant."""
    from .. import speech

    reps = int(spec["reps"])
    clips = speech.reference_clips()
    if spec.get("quick"):
        clips = clips[:QUICK_CLIPS]
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
    rtfs, wers, audio_s = [], [], 0.0
    for _ in range(reps):
        result = speech.evaluate(transcriber, clips)
        rtfs.append(result.rtf)
        wers.append(result.wer)
        audio_s = result.audio_seconds
        step("transcribe")
    latencies = []
    for _ in range(reps):
        t0 = time.perf_counter()
        transcriber.transcribe(dictation.path).text()
        latencies.append((time.perf_counter() - t0) * 1000)
    step("latency")
    peak = round(peak_rss_mb(), 1)
    transcriber.close()
    load_mean, load_sd = mean_sd(loads, 4)
    rtf_mean, rtf_sd = mean_sd(rtfs, 4)
    lat_mean, lat_sd = mean_sd(latencies, 1)
    return {
        "load_s": load_mean,
        "load_s_sd": load_sd,
        "rtf": rtf_mean,
        "rtf_sd": rtf_sd,
        "wer": round(wers[0], 5),
        "latency_ms": lat_mean,
        "latency_ms_sd": lat_sd,
        "peak_rss_mb": peak,
        "clips": len(clips),
        "audio_seconds": round(audio_s, 2),
    }
