"""The PER score: ratios against the reference, fixed floors, geometric mean."""

from __future__ import annotations

import math
from typing import Any

import pytest

from assistant.bench import per

REF = {"accuracy": 0.8358, "tg_tps": 76.27, "peak_rss_mb": 268.1, "ttft_ms": 215.41}


@pytest.mark.parametrize(
    "ref",
    [REF, {"accuracy": 0.3, "tg_tps": 1.7, "peak_rss_mb": 4096.5, "ttft_ms": 0.9}, {"accuracy": 1.0, "tg_tps": 3e3,
     "peak_rss_mb": 77.7, "ttft_ms": 12345.6}],
)  # fmt: skip
def test_reference_scores_exactly_one(ref: dict[str, float]) -> None:
    assert per.per(ref, ref) == 1.0
    assert set(per.ratios(ref, ref).values()) == {1.0}


def test_worked_example_from_the_docstring() -> None:
    q2 = {"accuracy": 0.8060, "tg_tps": 113.43, "peak_rss_mb": 257.1, "ttft_ms": 107.79}
    ratios = per.ratios(q2, REF)
    assert ratios["accuracy"] == pytest.approx(0.9643, abs=5e-5)
    assert ratios["throughput"] == pytest.approx(1.4872, abs=5e-5)
    assert ratios["memory"] == pytest.approx(1.0428, abs=5e-5)
    assert ratios["latency"] == pytest.approx(1.9984, abs=5e-5)
    assert per.per(q2, REF) == pytest.approx(1.3148, abs=5e-5)
    assert "PER(q2_k)  = (0.9643 * 1.4872 * 1.0428 * 1.9984) ** 0.25 = 1.3148" in (per.__doc__ or "")


def test_floor_keeps_a_collapsed_axis_from_zeroing_the_score() -> None:
    broken = {**REF, "accuracy": 0.0}
    assert per.ratios(broken, REF)["accuracy"] == per.FLOOR
    assert per.per(broken, REF) == pytest.approx(per.FLOOR**0.25)
    assert per.per(broken, REF) > 0


def test_ceiling_keeps_one_axis_from_dominating() -> None:
    fast = {**REF, "tg_tps": REF["tg_tps"] * 1000}
    assert per.ratios(fast, REF)["throughput"] == per.CEILING
    assert per.per(fast, REF) == pytest.approx(per.CEILING**0.25)


def test_geometric_mean_trades_axes_fairly() -> None:
    # twice as fast with twice the memory is even with the reference
    traded = {**REF, "tg_tps": REF["tg_tps"] * 2, "peak_rss_mb": REF["peak_rss_mb"] * 2}
    assert per.per(traded, REF) == pytest.approx(1.0)
    # lower-is-better axes invert: half the latency is a ratio of 2
    assert per.ratios({**REF, "ttft_ms": REF["ttft_ms"] / 2}, REF)["latency"] == pytest.approx(2.0)


def test_missing_or_zero_reference_values_count_as_no_information() -> None:
    assert per.ratio(None, 1.0, True) == 1.0
    assert per.ratio(1.0, None, True) == 1.0
    assert per.ratio(0.5, 0.0, True) == 1.0  # reference accuracy 0: no scale to compare against
    assert per.ratio(float("nan"), 1.0, True) == 1.0
    assert per.ratio(0.0, 10.0, False) == per.CEILING  # zero memory / latency: best possible
    row = {"accuracy": 0.5, "tg_tps": 10.0}
    assert per.ratios(row, REF)["memory"] == 1.0


def _run_rows(*rows: dict[str, float]) -> list[dict[str, Any]]:
    """Rows of one run (fresh copies), each scored against the first: as ``bench`` stores them."""
    return [{**row, "id": f"v{i}", "reference": "v0"} for i, row in enumerate(rows)]


def test_scores_do_not_depend_on_the_other_variants() -> None:
    """Unlike min-max normalisation, adding a terrible or an excellent variant to a run changes nobody
    else's score."""
    a = {"accuracy": 0.8, "tg_tps": 60.0, "peak_rss_mb": 200.0, "ttft_ms": 50.0}
    terrible = {"accuracy": 0.0, "tg_tps": 0.1, "peak_rss_mb": 9e9, "ttft_ms": 9e9}
    excellent = {"accuracy": 1.0, "tg_tps": 900.0, "peak_rss_mb": 50.0, "ttft_ms": 1.0}
    alone = _run_rows(REF, a)
    per.score_rows(alone)
    assert alone[1]["per"] == round(per.per(a, REF), 4) != 1.0
    for others in ([terrible], [excellent], [terrible, excellent]):
        crowded = _run_rows(REF, a, *others)
        per.score_rows(crowded)
        assert [(r["per"], r["per_axes"]) for r in crowded[:2]] == [(r["per"], r["per_axes"]) for r in alone]
    scored = _run_rows(REF, a, terrible)
    per.score_rows(scored)
    assert scored[2]["per"] == pytest.approx(per.FLOOR, abs=1e-4)
    assert scored[0]["per"] == 1.0


def test_geometric_mean_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        per.geometric_mean([])
    with pytest.raises(ValueError):
        per.geometric_mean([1.0, 0.0])
    assert per.geometric_mean([2.0, 8.0]) == pytest.approx(4.0)
    assert math.isclose(per.geometric_mean([1.0] * 4), 1.0)


def test_speech_axes() -> None:
    ref = {"word_accuracy": 0.9, "x_realtime": 10.0, "peak_rss_mb": 300.0, "latency_ms": 500.0}
    assert per.per(ref, ref, per.SPEECH_AXES) == 1.0
    slower = {**ref, "x_realtime": 5.0}
    assert per.ratios(slower, ref, per.SPEECH_AXES)["throughput"] == pytest.approx(0.5)


def test_compare_cancels_the_shared_reference() -> None:
    """Two candidates' PER ratio: the reference's spread, in both PER intervals, does not hide their gap."""
    from assistant.bench import per

    def row(tg: float, half: float) -> dict[str, float]:
        return {"accuracy": 0.8, "peak_rss_mb": 300.0, "ttft_ms": 100.0, "tg_tps": tg,
                "tg_tps_lo": tg * (1 - half), "tg_tps_hi": tg * (1 + half)}  # fmt: skip

    ref, fast, slow = row(100.0, 0.3), row(130.0, 0.02), row(100.0, 0.02)
    rows: list[dict[str, Any]] = [{"id": "r", "reference": "r", **ref}, {"id": "a", "reference": "r", **fast},
                                  {"id": "b", "reference": "r", **slow}]  # fmt: skip
    per.score_rows(rows)
    assert rows[1]["per_lo"] < rows[2]["per_hi"]  # their own intervals overlap (the reference's noise)
    point, lo, hi = per.compare(fast, slow, ref) or (0, 0, 0)
    assert lo > 1.0 and lo < point < hi and abs(point - 1.3**0.25) < 1e-9
    same = per.compare(slow, slow, ref)
    assert same is not None and same[0] == 1.0 and same[1] < 1.0 < same[2]
    once = {**fast, "tg_tps_lo": 130.0, "tg_tps_hi": 130.0}
    assert per.compare(once, slow, ref) is None  # timed once: no spread, no comparison


def _timed(rounds_tg: list[float], rounds_ttft: list[float]) -> dict[str, Any]:
    """A row whose speeds were timed in rounds, with the mean and t interval ``llm._speed_rounds`` gives."""
    from assistant.bench import stats

    row: dict[str, Any] = {
        "accuracy": 0.8,
        "peak_rss_mb": 300.0,
        "rounds": {"tg_tps": rounds_tg, "ttft_ms": rounds_ttft},
    }
    for key, values in row["rounds"].items():
        row[key], _sd, row[f"{key}_lo"], row[f"{key}_hi"] = stats.mean_interval(values)
    return row


def test_speeds_timed_in_the_same_rounds_are_paired() -> None:
    """Load that drifts between rounds moves every variant of a round alike: the paired ratio sees through it,
    where the ratio of two means with their own spreads cannot tell the variants apart."""
    drift = [1.0, 0.55, 0.8, 0.4]  # the machine's speed, round by round
    ref = _timed([70 * d for d in drift], [200 / d for d in drift])
    fast = _timed([84 * d for d in drift], [150 / d for d in drift])  # 1.2x the throughput, 4/3 the latency
    rows: list[dict[str, Any]] = [{"id": "r", "reference": "r", **ref}, {"id": "f", "reference": "r", **fast}]
    per.score_rows(rows)
    assert rows[1]["per_axes"]["throughput"] == pytest.approx(1.2, abs=1e-4)
    assert rows[1]["per_axes"]["latency"] == pytest.approx(4 / 3, abs=1e-4)
    assert rows[1]["per_lo"] == pytest.approx(rows[1]["per_hi"]) == pytest.approx((1.2 * 4 / 3) ** 0.25, abs=1e-4)
    paired = per.compare(fast, ref, ref)
    assert paired is not None and paired[1] > 1.0  # significantly better
    fast_means, ref_means = ({k: v for k, v in r.items() if k != "rounds"} for r in (fast, ref))
    unpaired = per.compare(fast_means, ref_means, ref_means)
    assert unpaired is not None and unpaired[1] < 1.0 < unpaired[2]  # the same means, unpaired: a tie

    noisy = _timed([84 * d * (1.1 if i % 2 else 0.9) for i, d in enumerate(drift)], fast["rounds"]["ttft_ms"])
    rows.append({"id": "n", "reference": "r", **noisy})
    per.score_rows(rows)
    assert rows[2]["per_lo"] < rows[2]["per"] < rows[2]["per_hi"]  # noise of its own still widens it


def test_one_round_has_no_spread() -> None:
    ref, cand = _timed([70.0], [200.0]), _timed([84.0], [150.0])
    assert per.per_interval(cand, ref, per.AXES) is None
    assert per.compare(cand, ref, ref) is None
    assert per.ratios(cand, ref)["throughput"] == pytest.approx(1.2)
    assert per.paired_logs(cand, {**ref, "rounds": {"tg_tps": [70.0, 71.0]}}, "tg_tps") is None  # not the same rounds
