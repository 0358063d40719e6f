"""The bench's answer: which variant to use, and why, given what the user can give up.

The rule (issue #13): the best PER among the variants whose quality is not significantly worse than their
reference by the budget. A variant is rejected when

* its task accuracy is significantly worse than its reference's (the paired McNemar test, ``stats``) and,
  when a ``max_accuracy_drop`` is given, the drop exceeds it: a budget of 2 points accepts a significant
  1-point loss, no budget accepts no significant loss at all;
* its KLD exceeds ``max_kld`` (only when given: KLD has no natural threshold, so alone it rejects nothing);
* its peak RSS exceeds ``max_memory``, or its generation speed is below ``min_tps``.

A reference is always eligible (it is what the others are measured against). Equal PER goes to the smaller
peak memory. A PER that is not significantly below the best one (``per.compare``: the ratio of the two PERs,
whose interval the shared reference's noise does not widen, reaches 1) ties with it, and of the tied
variants the most faithful is chosen (the lowest KLD, or without one the highest accuracy): speeds that
differ within their measured noise do not decide the verdict. A language run times its speeds in
interleaved rounds, every variant once per round and each next to a timing of its reference, and the speed
ratios are paired with those neighbours round by round (``per.paired_logs``), so load that drifts over the
run moves a candidate and its reference alike and cancels.
Speech rows use their own axes (``SPEECH``): word accuracy, × real time, peak memory; as they
carry no paired per-item results, "significantly worse" there means the WER intervals do not overlap.

Every line built here is plain text holding model ids (untrusted): render it through ``untrusted.plain``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .per import paired_logs
from .stats import half_width, number

Row = Mapping[str, Any]


@dataclass
class Budget:
    """What the user accepts to lose; None = no limit on that axis."""

    max_kld: float | None = None  # mean KLD against the reference, nats
    max_accuracy_drop: float | None = None  # percentage points of task accuracy
    max_memory: float | None = None  # peak RSS, MiB
    min_tps: float | None = None  # generation tokens per second (speech: multiples of real time)


@dataclass(frozen=True)
class Axes:
    accuracy: str
    speed: str
    memory: str
    speed_word: str  # how the speed budget reads in a rejection line


LLM = Axes("accuracy", "tg_tps", "peak_rss_mb", "tok/s")
SPEECH = Axes("word_accuracy", "x_realtime", "peak_rss_mb", "× real time")


def axes_for(rows: Sequence[Row]) -> Axes:
    """Speech rows carry a WER and no generation speed."""
    return SPEECH if rows and all("wer" in r and "tg_tps" not in r for r in rows) else LLM


def _value(row: Row, key: str) -> float | None:
    if key == "word_accuracy" and row.get(key) is None:
        wer = number(row.get("wer"))
        return None if wer is None else 1 - wer
    return number(row.get(key))


def _accuracy_drop(row: Row, ref: Row, ax: Axes) -> tuple[float | None, bool]:
    """(drop in points, significantly worse) of ``row`` against ``ref``; (None, False) when unknown."""
    if ax is SPEECH:
        wer, ref_wer = number(row.get("wer")), number(ref.get("wer"))
        if wer is None or ref_wer is None:
            return None, False
        lo, ref_hi = number(row.get("wer_lo")), number(ref.get("wer_hi"))
        return (wer - ref_wer) * 100, lo is not None and ref_hi is not None and lo > ref_hi
    diff = number(row.get("accuracy_diff"))
    if diff is None:
        acc, ref_acc = number(row.get("accuracy")), number(ref.get("accuracy"))
        return (None if acc is None or ref_acc is None else (ref_acc - acc) * 100), False
    return -diff * 100, bool(row.get("accuracy_diff_significant")) and diff < 0


def rejection(row: Row, ref: Row, budget: Budget, ax: Axes = LLM) -> str | None:
    """Why ``row`` is out of the budget (one line), or None when it is eligible."""
    if row is ref or row.get("id") == ref.get("id"):
        return None
    drop, worse = _accuracy_drop(row, ref, ax)
    if worse and drop is not None and (budget.max_accuracy_drop is None or drop > budget.max_accuracy_drop):
        limit = "" if budget.max_accuracy_drop is None else f" (budget {budget.max_accuracy_drop:g})"
        return f"accuracy significantly worse: −{drop:.1f} pts{limit}"
    kld = number(row.get("kld"))
    if budget.max_kld is not None and kld is not None and kld > budget.max_kld:
        return f"KLD {kld:.3g} above {budget.max_kld:g}"
    rss = number(row.get(ax.memory))
    if budget.max_memory is not None and rss is not None and rss > budget.max_memory:
        return f"peak RSS {rss:.0f} MiB above {budget.max_memory:g} MiB"
    speed = _value(row, ax.speed)
    if budget.min_tps is not None and speed is not None and speed < budget.min_tps:
        return f"{speed:.1f} {ax.speed_word} below {budget.min_tps:g}"
    return None


def _dominates(a: tuple[float, float, float], b: tuple[float, float, float]) -> bool:
    return a[0] >= b[0] and a[1] >= b[1] and a[2] <= b[2] and a != b


def pareto(rows: Sequence[Row], ax: Axes | None = None) -> list[str]:
    """Ids of the rows no other row beats on accuracy (up), speed (up) and peak memory (down) at once. A
    missing value counts as the worst, so an unmeasured axis never puts a row on the front by itself."""
    ax = ax or axes_for(rows)
    inf = float("inf")

    def key(r: Row) -> tuple[float, float, float]:
        acc, speed, mem = _value(r, ax.accuracy), _value(r, ax.speed), _value(r, ax.memory)
        return (-inf if acc is None else acc, -inf if speed is None else speed, inf if mem is None else mem)

    points = [(str(r["id"]), key(r)) for r in rows]
    return [i for i, p in points if not any(_dominates(q, p) for _, q in points)]


def _pm(value: float, half: float | None, digits: int) -> str:
    text = f"{value:.{digits}f}".replace("-", "−")
    return text if not half else f"{text} ± {half:.{digits}f}"


def _accuracy_part(row: Row, ref: Row, ax: Axes) -> str | None:
    if ax is SPEECH:
        drop, worse = _accuracy_drop(row, ref, ax)
        if drop is None:
            return None
        return f"WER {drop:+.1f} pts".replace("-", "−") + (" (significant)" if worse else "")
    diff = number(row.get("accuracy_diff"))
    if diff is None:
        return None
    half = half_width(row, "accuracy_diff")
    sig = "significant" if row.get("accuracy_diff_significant") else "not significant"
    return f"accuracy {_pm(diff * 100, None if half is None else half * 100, 1)} pts ({sig})"


def describe(row: Row, ref: Row, ax: Axes = LLM) -> str:
    """One line: quality, accuracy change, speed and memory of ``row`` against ``ref``."""
    parts = []
    kld = number(row.get("kld"))
    if kld is not None and ax is LLM:
        parts.append(f"KLD {_pm(kld, half_width(row, 'kld'), 3)}")
    accuracy = _accuracy_part(row, ref, ax)
    if accuracy:
        parts.append(accuracy)
    speed, ref_speed = _value(row, ax.speed), _value(ref, ax.speed)
    if speed is not None and ref_speed:
        logs = paired_logs(row, ref, ax.speed)
        ratio = math.exp(sum(logs) / len(logs)) if logs else speed / ref_speed
        parts.append(f"{ratio:.2g}× faster" if ratio >= 1 else f"{ratio:.2g}× the speed")
    rss, ref_rss = _value(row, ax.memory), _value(ref, ax.memory)
    if rss is not None and ref_rss:
        parts.append(f"{(rss / ref_rss - 1) * 100:+.0f} % memory".replace("-", "−"))
    return f"{row['id']}: " + ", ".join(parts) if parts else str(row["id"])


def verdict(rows: Sequence[Row], budget: Budget | None = None, ax: Axes | None = None) -> dict[str, Any]:
    """The chosen variant of a run and why, JSON-ready: ``id`` (None without rows), ``reason`` (one line),
    ``eligible`` and ``pareto`` (ids), ``rejected`` ({id: one-line reason})."""
    budget = budget or Budget()
    ax = ax or axes_for(rows)
    by_id = {str(r["id"]): r for r in rows}
    rejected: dict[str, str] = {}
    eligible: list[Row] = []
    for row in rows:
        ref = by_id.get(str(row.get("reference")), row)
        why = rejection(row, ref, budget, ax)
        if why is None:
            eligible.append(row)
        else:
            rejected[str(row["id"])] = why
    result: dict[str, Any] = {
        "id": None,
        "reason": "no results",
        "eligible": [str(r["id"]) for r in eligible],
        "rejected": rejected,
        "pareto": pareto(rows, ax),
    }
    if not eligible:
        return result

    def rank(r: Row) -> tuple[float, float]:
        score, mem = number(r.get("per")), _value(r, ax.memory)
        return (-(score if score is not None else 0.0), mem if mem is not None else float("inf"))

    top = min(eligible, key=rank)  # min is stable: on a full tie the earlier row (the run's order) wins
    tied = _tied(top, eligible, by_id) if ax is LLM else [top]
    best = min(tied, key=_faithful(tied))
    ref = by_id.get(str(best.get("reference")), best)
    result["id"] = str(best["id"])
    result["tied"] = [str(r["id"]) for r in tied if r is not best]
    if best is ref or best.get("id") == ref.get("id"):
        others = [r for r in eligible if str(r.get("reference")) == result["id"] and r is not best]
        why = "nothing else keeps its quality within the budget"
        if others:
            why = "no variant within the budget scores a higher PER"
        if best is not top:
            why = f"no variant within the budget scores a PER significantly higher (the best, {_per_of(top)})"
        result["reason"] = f"{best['id']} (the reference): {why}"
    else:
        result["reason"] = describe(best, ref, ax)
        if best is not top:
            result["reason"] += f"; PER {number(best.get('per')):.2f}, not significantly below {_per_of(top)}"
    return result


def _per_of(row: Row) -> str:
    return f"{row['id']}'s {number(row.get('per')):.2f}"


def _tied(top: Row, eligible: list[Row], by_id: Mapping[str, Row]) -> list[Row]:
    """``top`` and the eligible rows whose PER is not significantly below its PER (same reference only)."""
    from .per import compare

    ref = by_id.get(str(top.get("reference")))
    if ref is None:
        return [top]
    tied = []
    for row in eligible:
        if row is top:
            tied.append(row)
            continue
        if str(row.get("reference")) != str(top.get("reference")):
            continue
        interval = compare(top, row, ref)
        if interval is not None and interval[1] <= 1.0:
            tied.append(row)
    return tied


def _faithful(rows: list[Row]) -> Any:
    """Sort key: the lowest KLD when every row has one (the reference's is 0), else the highest accuracy;
    then the higher PER."""
    by_kld = all(number(r.get("kld")) is not None for r in rows)

    def key(r: Row) -> tuple[float, float]:
        per = number(r.get("per")) or 0.0
        if by_kld:
            return (number(r.get("kld")) or 0.0, -per)
        return (-(number(r.get("accuracy")) or 0.0), -per)

    return key
