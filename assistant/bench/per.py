"""PER: one efficiency score per variant, relative to a reference variant measured in the same run.

Four ratios, each oriented so that higher is better and the reference scores exactly 1::

    accuracy   = acc / ref_acc             (task accuracy kept)
    throughput = tg_tps / ref_tg_tps       (generation speed gained)
    memory     = ref_rss / rss             (peak memory saved)
    latency    = ref_ttft / ttft           (time to first token saved)

The speeds of a language-model run are timed in interleaved rounds (``llm.run``: one repetition of every
variant per round, each candidate next to a timing of its reference), and each row keeps them under
``rounds``, a candidate its reference's timings around it under ``ref_rounds``. Then the throughput and
latency ratios are *paired*: the geometric mean over rounds of ``x_round / ref_x_round`` (the reference
beside it), and their spread is that of those per-round ratios, so load that drifts over minutes cancels
instead of widening, or worse shifting, a ratio of two means taken minutes apart. Rows without rounds
(speech, saved runs from before) use the ratio of the means.

Each ratio is clamped to ``[FLOOR, CEILING]`` = ``[0.05, 20]``, then::

    PER = (accuracy * throughput * memory * latency) ** (1/4)

Why a geometric mean of ratios rather than min-max normalisation: min-max maps the worst variant of the
run to 0 on every axis, so one bad axis zeroes a score and adding or removing a variant changes everybody
else's. Ratios against a fixed reference do neither, and the geometric mean makes the axes trade fairly:
halving memory compensates exactly for halving speed. The floor keeps a variant that collapses on one axis
(accuracy 0 on a hard task set) comparable instead of 0; the ceiling keeps a near-zero reference value
(e.g. a reference that itself scores 1 item) from making one axis dominate. If a reference value is 0 or
missing, that axis counts as 1 (no information), and so does a missing candidate value.

The reference of a language-model run is the family's source variant (``llm.source_variant``: the
downloaded or imported variant the others were quantized from), whichever variants the run names, so adding
a variant to a run changes no other variant's score; ``--reference`` picks another.

Worked example: a real run (``assistant bench smollm2-135m-instruct:q8_0 smollm2-135m-instruct:q2_k
--reference smollm2-135m-instruct:q8_0 --threads 1 --ctx 2048`` on a 2-core AMD EPYC VM; both variants
requantized from the Q4_1 starter)::

    variant  accuracy  tg128 tok/s  peak RSS   TTFT       PPL ratio  KLD    top-1
    q8_0     0.8358    76.27        268.1 MiB  215.41 ms  1.000      0.000  100 %   (reference)
    q2_k     0.8060    113.43       257.1 MiB  107.79 ms  1.336      0.424  61.1 %

    accuracy   = 0.8060 / 0.8358 = 0.9643
    throughput = 113.43 / 76.27  = 1.4872
    memory     = 268.1 / 257.1   = 1.0428
    latency    = 215.41 / 107.79 = 1.9984
    PER(q2_k)  = (0.9643 * 1.4872 * 1.0428 * 1.9984) ** 0.25 = 1.3148
    PER(q8_0)  = 1.0 exactly

q2_k keeps 96 % of the task accuracy while generating 49 % faster and answering twice as fast, so it
scores above the reference. (On SmolLM2 most "Q2_K" tensors fall back to Q4_0, whose kernels are quick; its
memory barely drops because llama.cpp repacks Q4_0 weights into a second, CPU-friendly copy.) PER says
nothing about *how much* quality loss is acceptable: read it next to the perplexity ratio, the KL divergence
and the top-1 agreement, and next to the accuracy difference and its interval (``stats.paired_accuracy``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from .stats import Z95, half_width, number, t975

FLOOR = 0.05
# The ceiling mirrors the floor (1 / 0.05): no single axis can contribute more than 20x either way.
CEILING = 1 / FLOOR

Axis = tuple[str, str, bool]  # (axis name, metric key, True when a higher metric is better)
AXES: tuple[Axis, ...] = (
    ("accuracy", "accuracy", True),
    ("throughput", "tg_tps", True),
    ("memory", "peak_rss_mb", False),
    ("latency", "ttft_ms", False),
)
# Speech variants: word accuracy (1 - WER), speed in multiples of real time (1 / RTF), peak memory, and the
# time to transcribe one ~5 s dictation (what a user waits for after speaking).
SPEECH_AXES: tuple[Axis, ...] = (
    ("accuracy", "word_accuracy", True),
    ("throughput", "x_realtime", True),
    ("memory", "peak_rss_mb", False),
    ("latency", "latency_ms", False),
)


def clamp(ratio: float) -> float:
    return min(max(ratio, FLOOR), CEILING)


def ratio(value: float | None, reference: float | None, higher_is_better: bool) -> float:
    """The clamped ratio for one axis; 1.0 when either side is missing or the reference is 0."""
    if value is None or reference is None or not math.isfinite(value) or not math.isfinite(reference):
        return 1.0
    if higher_is_better:
        if reference <= 0:
            return 1.0
        return clamp(value / reference)
    if value <= 0:
        return CEILING if reference > 0 else 1.0
    return clamp(reference / value)


def ratios(row: Mapping[str, Any], reference: Mapping[str, Any], axes: tuple[Axis, ...] = AXES) -> dict[str, float]:
    """Each axis's clamped ratio for ``row`` against ``reference`` (metric dicts, as in the --json rows):
    paired by round where both rows timed the metric in the same rounds."""
    out = {}
    for name, key, better in axes:
        logs = paired_logs(row, reference, key)
        if logs is None:
            out[name] = ratio(row.get(key), reference.get(key), better)
        else:
            mean = sum(logs) / len(logs)
            out[name] = clamp(math.exp(mean if better else -mean))
    return out


def paired_logs(a: Mapping[str, Any], b: Mapping[str, Any], key: str) -> list[float] | None:
    """log(a / b) of ``key`` in each round both rows were timed in, or None when they were not timed in the
    same rounds. Against its own reference a row pairs with the reference timings beside it (``ref_rounds``);
    two rows of the same reference compare their ratios to it, log(a / ref_a) - log(b / ref_b); other rows
    pair round by round (``rounds``)."""
    la, lb = _to_reference(a, key), _to_reference(b, key)
    if la is not None and b.get("id") is not None and a.get("reference") == b.get("id") != a.get("id"):
        return la
    if lb is not None and a.get("id") is not None and b.get("reference") == a.get("id") != b.get("id"):
        return [-v for v in lb]
    if la is not None and lb is not None and a.get("reference") == b.get("reference") and len(la) == len(lb):
        return [x - y for x, y in zip(la, lb, strict=True)]
    return _log_ratios((a.get("rounds") or {}).get(key), (b.get("rounds") or {}).get(key))


def _to_reference(row: Mapping[str, Any], key: str) -> list[float] | None:
    """log(row / its reference beside it) of ``key`` per round, when the row kept those (``ref_rounds``)."""
    return _log_ratios((row.get("rounds") or {}).get(key), (row.get("ref_rounds") or {}).get(key))


def _log_ratios(ra: Any, rb: Any) -> list[float] | None:
    if not isinstance(ra, list) or not isinstance(rb, list) or not ra or len(ra) != len(rb):
        return None
    if not all(isinstance(v, int | float) and math.isfinite(v) and v > 0 for v in (*ra, *rb)):
        return None
    return [math.log(x / y) for x, y in zip(ra, rb, strict=True)]


def _paired_var(logs: list[float]) -> float | None:
    """The variance, on the scale of the other axes (a 95 % half-width / Z95, squared), of the mean of
    per-round log ratios: a t-interval over the rounds, as the rows' own intervals; None for one round."""
    n = len(logs)
    if n < 2:
        return None
    mean = sum(logs) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in logs) / (n - 1))
    return (t975(n - 1) * sd / math.sqrt(n) / Z95) ** 2


def geometric_mean(values: list[float]) -> float:
    if not values:
        raise ValueError("geometric mean of nothing")
    if any(v <= 0 for v in values):
        raise ValueError("geometric mean needs positive values")
    return math.prod(values) ** (1 / len(values))


def per(row: Mapping[str, Any], reference: Mapping[str, Any], axes: tuple[Axis, ...] = AXES) -> float:
    """The PER score of ``row``. The reference scores exactly 1.0 (every ratio is x / x)."""
    return geometric_mean(list(ratios(row, reference, axes).values()))


def score_rows(rows: Sequence[dict[str, Any]], axes: tuple[Axis, ...] = AXES) -> None:
    """Add ``per_axes``, ``per`` and its 95 % interval ``per_lo``/``per_hi`` (``per_interval``: from
    each axis's own ``_lo``/``_hi``) to every row of a run, each against the row its ``reference`` names.

    A row's score reads its own row and its reference's, nothing else: adding or removing other rows (a
    terrible variant, a faster one) changes no score, as long as the reference stays the same."""
    by_id = {row["id"]: row for row in rows}
    for row in rows:
        reference = by_id[row["reference"]]
        axis_ratios = ratios(row, reference, axes)
        row["per_axes"] = {name: round(value, 4) for name, value in axis_ratios.items()}
        row["per"] = round(geometric_mean(list(axis_ratios.values())), 4)
        interval = per_interval(row, reference, axes)
        if interval is None:  # an axis measured once: its spread, and so PER's, is unknown
            row["per_lo"] = row["per_hi"] = None
        else:
            lo, hi = interval
            row["per_lo"], row["per_hi"] = round(min(lo, row["per"]), 4), round(max(hi, row["per"]), 4)


def _log_sd(row: Mapping[str, Any], key: str) -> float:
    """The sd of log(row[key]) from its 95 % interval by the delta method (sd(log x) ~ sd(x) / x), so an
    interval touching 0 (Wilson at 0 correct) still gives a finite value; 0 when there is no interval."""
    value, half = number(row.get(key)), half_width(row, key)
    if value is None or half is None or value <= 0:
        return 0.0
    return half / Z95 / value


def _axis_var(row: Mapping[str, Any], reference: Mapping[str, Any], key: str, ref_value: float) -> float:
    """var(log(row[key] / reference[key])). Accuracy measured on the same items has a paired interval
    (``accuracy_diff_lo``/``_hi``): log(a / r) ~ (a - r) / r, so its sd is sd(a - r) / r, which keeps the
    covariance the two separate intervals would ignore. Otherwise the two variances add."""
    if key == "accuracy":
        half = half_width(row, "accuracy_diff")
        if half is not None:
            return (half / Z95 / ref_value) ** 2
    return _log_sd(row, key) ** 2 + _log_sd(reference, key) ** 2


def _measured_once(row: Mapping[str, Any], key: str) -> bool:
    """A figure timed in a single repetition: its interval has no width because nothing measured a spread."""
    lo, hi, value = number(row.get(f"{key}_lo")), number(row.get(f"{key}_hi")), number(row.get(key))
    return value is not None and lo is not None and lo == hi == value and key != "accuracy"


def per_interval(
    row: Mapping[str, Any], reference: Mapping[str, Any], axes: Sequence[tuple[str, str, bool]]
) -> tuple[float, float] | None:
    """The 95 % interval of ``row``'s PER against ``reference`` (``axes`` as above).

    log PER is the mean of the axes' log ratios, so var(log PER) = sum(var(log ratio)) / k^2, where each
    log ratio's variance is the candidate's plus the reference's (measured apart), except for accuracy with a
    paired difference interval, which is used instead (``_axis_var``), and for a speed timed in the same
    rounds as the reference's, whose spread is that of the per-round ratios (``paired_logs``). An axis
    without an interval on a row contributes 0, and so does an axis whose ratio is clamped or uninformative
    (it cannot move). None when an informative axis was timed once (one repetition, as ``--quick``): a
    zero-width interval there would make PER look exact when its speed could move by a fifth on the next
    run. The reference itself is [1, 1]: its ratios are x / x, not measurements."""
    same = row is reference or (row.get("id") is not None and row.get("id") == reference.get("id"))
    if same or not axes:
        return 1.0, 1.0
    axis_ratios = ratios(row, reference, tuple(axes))
    var = 0.0
    for name, key, _better in axes:
        value, ref_value = number(row.get(key)), number(reference.get(key))
        if value and ref_value and value > 0 and ref_value > 0 and FLOOR < axis_ratios[name] < CEILING:
            logs = paired_logs(row, reference, key)
            paired = None if logs is None else _paired_var(logs)
            if (logs is not None and paired is None) or _measured_once(row, key) or _measured_once(reference, key):
                return None
            var += _axis_var(row, reference, key, ref_value) if paired is None else paired
    point = geometric_mean(list(axis_ratios.values()))
    spread = math.exp(Z95 * math.sqrt(var) / len(axes))
    return clamp(point / spread), clamp(point * spread)


def compare(
    a: Mapping[str, Any], b: Mapping[str, Any], reference: Mapping[str, Any], axes: tuple[Axis, ...] = AXES
) -> tuple[float, float, float] | None:
    """PER(a) / PER(b) of two rows scored against the same ``reference``, with its 95 % interval, or None
    when an informative axis of either was timed once (as ``per_interval``).

    log PER(a) - log PER(b) is the mean over the axes of log(a_k / b_k): the reference cancels, so its
    spread, which each row's own PER interval carries, does not hide a difference between the two. Each
    axis adds var(log a_k) + var(log b_k); accuracy measured on the same items (``task_results``) adds the
    variance of their paired difference instead (``stats.paired_accuracy``), as ``_axis_var`` does, and a
    speed timed in the same rounds the variance of log(a / b) over the rounds (``paired_logs``)."""
    from .stats import paired_accuracy

    ratios_a, ratios_b = ratios(a, reference, axes), ratios(b, reference, axes)
    var = 0.0
    for name, key, _better in axes:
        va, vb = number(a.get(key)), number(b.get(key))
        if not (va and vb and va > 0 and vb > 0):
            continue
        if not (FLOOR < ratios_a[name] < CEILING and FLOOR < ratios_b[name] < CEILING):
            continue  # a clamped axis cannot move
        logs = paired_logs(a, b, key)
        paired = None if logs is None else _paired_var(logs)
        if (logs is not None and paired is None) or _measured_once(a, key) or _measured_once(b, key):
            return None
        results_a, results_b = a.get("task_results"), b.get("task_results")
        if paired is not None:
            var += paired  # timed in the same rounds: the spread of log(a / b) round by round
        elif key == "accuracy" and isinstance(results_a, str) and isinstance(results_b, str) and results_a:
            diff = paired_accuracy([c == "1" for c in results_a], [c == "1" for c in results_b])
            var += ((diff.hi - diff.lo) / 2 / Z95 / vb) ** 2
        else:
            var += _log_sd(a, key) ** 2 + _log_sd(b, key) ** 2
    point = geometric_mean(list(ratios_a.values())) / geometric_mean(list(ratios_b.values()))
    spread = math.exp(Z95 * math.sqrt(var) / len(axes))
    return point, point / spread, point * spread
