"""The verdict: the best PER within the budget, each rejection named, the Pareto front, speech rows too."""

from __future__ import annotations

import json
from typing import Any

from assistant.bench import verdict as v
from assistant.bench.verdict import Budget


def _ref(**extra: Any) -> dict[str, Any]:
    row = {"id": "f:q8_0", "reference": "f:q8_0", "is_reference": True, "accuracy": 0.8, "tg_tps": 50.0,
           "peak_rss_mb": 400.0, "kld": 0.0, "per": 1.0, "accuracy_diff": None}  # fmt: skip
    return {**row, **extra}


def _cand(model_id: str, **extra: Any) -> dict[str, Any]:
    row = {"id": model_id, "reference": "f:q8_0", "is_reference": False, "accuracy": 0.79, "tg_tps": 65.0,
           "peak_rss_mb": 300.0, "kld": 0.06, "kld_lo": 0.05, "kld_hi": 0.07, "per": 1.2, "accuracy_diff": -0.008,
           "accuracy_diff_lo": -0.029, "accuracy_diff_hi": 0.013, "accuracy_diff_p": 0.6,
           "accuracy_diff_significant": False}  # fmt: skip
    return {**row, **extra}


SIGNIFICANT_LOSS = {"accuracy_diff": -0.05, "accuracy_diff_lo": -0.08, "accuracy_diff_hi": -0.02,
                    "accuracy_diff_p": 0.01, "accuracy_diff_significant": True}  # fmt: skip


def test_best_per_within_budget_and_its_reason() -> None:
    rows = [_ref(), _cand("f:q4_k_m"), _cand("f:q2_k", per=1.1)]
    out = v.verdict(rows, Budget())
    assert out["id"] == "f:q4_k_m"
    assert out["reason"] == (
        "f:q4_k_m: KLD 0.060 ± 0.010, accuracy −0.8 ± 2.1 pts (not significant), 1.3× faster, −25 % memory"
    )
    assert out["eligible"] == ["f:q8_0", "f:q4_k_m", "f:q2_k"] and out["rejected"] == {}
    json.dumps(out)  # JSON-ready


def test_significant_loss_rejects_unless_within_the_accuracy_budget() -> None:
    rows = [_ref(), _cand("f:q2_k", **SIGNIFICANT_LOSS)]
    out = v.verdict(rows, Budget())
    assert out["id"] == "f:q8_0" and "accuracy significantly worse: −5.0 pts" in out["rejected"]["f:q2_k"]
    assert out["reason"] == "f:q8_0 (the reference): nothing else keeps its quality within the budget"
    assert v.verdict(rows, Budget(max_accuracy_drop=6))["id"] == "f:q2_k"
    assert "budget 4" in v.verdict(rows, Budget(max_accuracy_drop=4))["rejected"]["f:q2_k"]
    # a larger point drop that is not significant does not reject
    noisy = _cand("f:q3_k", accuracy_diff=-0.06, accuracy_diff_significant=False)
    assert v.verdict([_ref(), noisy])["id"] == "f:q3_k"
    # a significant *gain* never rejects
    gain = _cand("f:q5_k", accuracy_diff=0.05, accuracy_diff_significant=True)
    assert v.verdict([_ref(), gain])["id"] == "f:q5_k"


def test_each_budget_flag_rejects() -> None:
    rows = [_ref(), _cand("f:q4_0")]
    cases = {
        "KLD 0.06 above 0.05": Budget(max_kld=0.05),
        "peak RSS 300 MiB above 250 MiB": Budget(max_memory=250),
        "65.0 tok/s below 70": Budget(min_tps=70),
    }
    for reason, budget in cases.items():
        out = v.verdict(rows, budget)
        assert out["rejected"] == {"f:q4_0": reason} and out["id"] == "f:q8_0"
        assert out["eligible"] == ["f:q8_0"]  # the reference is always eligible, even over the memory budget
    assert v.verdict(rows, Budget(max_kld=0.1, max_memory=350, min_tps=60))["id"] == "f:q4_0"
    assert v.verdict(rows, Budget(max_kld=None))["id"] == "f:q4_0"  # without --max-kld, KLD rejects nothing


def test_ties_go_to_the_smaller_memory() -> None:
    rows = [_ref(), _cand("f:big", peak_rss_mb=350.0), _cand("f:small", peak_rss_mb=280.0)]
    assert v.verdict(rows)["id"] == "f:small"


def test_reference_only_and_no_rows() -> None:
    out = v.verdict([_ref()])
    assert out["id"] == "f:q8_0" and out["eligible"] == ["f:q8_0"] and out["pareto"] == ["f:q8_0"]
    assert "the reference" in out["reason"]
    slower = _cand("f:slow", per=0.8)
    assert v.verdict([_ref(), slower])["reason"] == (
        "f:q8_0 (the reference): no variant within the budget scores a higher PER"
    )
    empty = v.verdict([])
    assert empty["id"] is None and empty["eligible"] == [] and empty["pareto"] == []


def test_a_variant_against_itself_is_not_significant() -> None:
    same = _cand("f:copy", accuracy=0.8, tg_tps=50.0, peak_rss_mb=400.0, kld=0.0, kld_lo=0.0, kld_hi=0.0,
                 accuracy_diff=0.0, accuracy_diff_lo=0.0, accuracy_diff_hi=0.0, accuracy_diff_p=1.0,
                 accuracy_diff_significant=False, per=1.0)  # fmt: skip
    out = v.verdict([_ref(), same], Budget(max_kld=0.0, max_accuracy_drop=0.0))
    assert out["rejected"] == {} and out["id"] == "f:q8_0"  # equal PER and memory: the run's order decides


def test_old_rows_without_the_new_keys() -> None:
    old = [
        {"id": "f:q8_0", "reference": "f:q8_0", "accuracy": 0.8, "tg_tps": 50.0, "peak_rss_mb": 400.0, "per": 1.0},
        {"id": "f:q4_0", "reference": "f:q8_0", "accuracy": 0.7, "tg_tps": 70.0, "peak_rss_mb": 300.0, "per": 1.1},
    ]
    out = v.verdict(old)
    assert out["id"] == "f:q4_0" and out["reason"] == "f:q4_0: 1.4× faster, −25 % memory"


def test_pareto_front() -> None:
    rows = [
        {"id": "a", "accuracy": 0.8, "tg_tps": 50.0, "peak_rss_mb": 400.0},
        {"id": "b", "accuracy": 0.7, "tg_tps": 70.0, "peak_rss_mb": 300.0},
        {"id": "c", "accuracy": 0.7, "tg_tps": 60.0, "peak_rss_mb": 350.0},  # b beats it on everything
        {"id": "d", "accuracy": 0.7, "tg_tps": 70.0, "peak_rss_mb": 300.0},  # equal to b: neither dominates
        {"id": "e", "accuracy": 0.9},  # unmeasured speed and memory count as the worst, accuracy still best
    ]
    assert v.pareto(rows) == ["a", "b", "d", "e"]


def test_speech_rows_use_their_own_axes() -> None:
    ref = {"id": "w:float32", "reference": "w:float32", "wer": 0.10, "wer_lo": 0.08, "wer_hi": 0.12,
           "x_realtime": 5.0, "peak_rss_mb": 500.0, "per": 1.0}  # fmt: skip
    int8 = {"id": "w:int8", "reference": "w:float32", "wer": 0.11, "wer_lo": 0.09, "wer_hi": 0.13,
            "x_realtime": 9.0, "peak_rss_mb": 300.0, "per": 1.3}  # fmt: skip
    worse = {**int8, "id": "w:bad", "wer": 0.30, "wer_lo": 0.25, "wer_hi": 0.35, "per": 1.5}
    assert v.axes_for([ref, int8]) is v.SPEECH
    out = v.verdict([ref, int8, worse])
    assert out["id"] == "w:int8" and "w:bad" in out["rejected"]
    assert out["reason"] == "w:int8: WER +1.0 pts, 1.8× faster, −40 % memory"
    assert "× real time below 10" in v.verdict([ref, int8], Budget(min_tps=10))["rejected"]["w:int8"]
    assert v.verdict([ref, worse], Budget(max_accuracy_drop=25))["id"] == "w:bad"


def _timed(model_id: str, tg: float, ttft: float, half: float, kld: float, **extra: Any) -> dict[str, Any]:
    """A row with speeds measured over repetitions: ``half`` = half the 95 % interval, as a share."""
    row = {"id": model_id, "reference": "f:q4_1", "is_reference": model_id == "f:q4_1", "accuracy": 0.62,
           "task_results": "1" * 62 + "0" * 38, "peak_rss_mb": 230.0, "kld": kld,
           "tg_tps": tg, "tg_tps_lo": tg * (1 - half), "tg_tps_hi": tg * (1 + half),
           "ttft_ms": ttft, "ttft_ms_lo": ttft * (1 - half), "ttft_ms_hi": ttft * (1 + half)}  # fmt: skip
    return {**row, **extra}


def _scored(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from assistant.bench import per

    per.score_rows(rows)
    return rows


def test_a_per_within_the_noise_of_the_best_goes_to_the_more_faithful() -> None:
    """Two runs on a busy machine reorder q2_k and q3_k_m's speeds within their noise: the verdict is the
    lower KLD of the two either time, and says why."""
    for q2_tg, q3_tg in ((110.0, 100.0), (100.0, 110.0)):
        rows = _scored([_timed("f:q4_1", 100.0, 200.0, 0.08, 0.0), _timed("f:q2_k", q2_tg, 140.0, 0.08, 0.43),
                        _timed("f:q3_k_m", q3_tg, 140.0, 0.08, 0.13)])  # fmt: skip
        out = v.verdict(rows)
        assert out["id"] == "f:q3_k_m", (q2_tg, out)
        if q2_tg > q3_tg:
            assert out["tied"] == ["f:q2_k"]
            assert out["reason"].endswith("; PER 1.09, not significantly below f:q2_k's 1.12")
    # measured tightly, the same gap is significant: the best PER wins
    rows = _scored([_timed("f:q4_1", 100.0, 200.0, 0.005, 0.0), _timed("f:q2_k", 110.0, 140.0, 0.005, 0.43),
                    _timed("f:q3_k_m", 100.0, 140.0, 0.005, 0.13)])  # fmt: skip
    assert v.verdict(rows)["id"] == "f:q2_k" and v.verdict(rows)["tied"] == []


def test_a_tie_with_the_reference_keeps_the_reference() -> None:
    rows = _scored([_timed("f:q4_1", 100.0, 200.0, 0.1, 0.0), _timed("f:q8_0", 103.0, 198.0, 0.1, 0.005)])
    out = v.verdict(rows)
    assert out["id"] == "f:q4_1" and out["tied"] == ["f:q8_0"]
    assert out["reason"] == (
        "f:q4_1 (the reference): no variant within the budget scores a PER significantly higher"
        " (the best, f:q8_0's 1.01)"
    )


def test_speeds_timed_once_tie_with_nothing() -> None:
    """--quick: no spread was measured, so nothing is "within the noise"; the best PER is the verdict."""
    rows = _scored([_timed("f:q4_1", 100.0, 200.0, 0.0, 0.0), _timed("f:q2_k", 110.0, 140.0, 0.0, 0.43),
                    _timed("f:q3_k_m", 100.0, 140.0, 0.0, 0.13)])  # fmt: skip
    assert v.verdict(rows)["id"] == "f:q2_k" and v.verdict(rows)["tied"] == []
