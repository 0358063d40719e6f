"""The bench's statistics: intervals contain their point, shrink with more data, and a variant against itself
is never "significant"; exact values checked by hand (McNemar), against published tables (Wilson, t)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from assistant.bench import per, stats


@pytest.mark.parametrize(
    ("b", "c", "p"),
    [(0, 6, 0.03125), (6, 0, 0.03125), (1, 1, 1.0), (0, 0, 1.0), (0, 5, 0.0625), (2, 8, 0.109375), (1, 9, 0.021484375)],
)
def test_mcnemar_exact_p_by_hand(b: int, c: int, p: float) -> None:
    # (2, 8): 2 * (1 + 10 + 45) / 1024 = 0.109375; (1, 9): 2 * (1 + 10) / 1024
    assert stats.mcnemar_p(b, c) == pytest.approx(p, abs=1e-12)


def test_wilson_against_known_values() -> None:
    # Wilson (1927) / Newcombe (1998) table: 81 of 263 -> 0.2553 .. 0.3662; 15 of 148 -> 0.0624 .. 0.1605
    assert stats.wilson(81, 263) == pytest.approx((0.2553, 0.3662), abs=1e-4)
    assert stats.wilson(15, 148) == pytest.approx((0.0624, 0.1605), abs=1e-4)
    lo, hi = stats.wilson(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = stats.wilson(10, 10)
    assert hi == 1.0 and lo == pytest.approx(0.7225, abs=1e-4)
    assert stats.wilson(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        stats.wilson(3, 2)


def test_wilson_contains_the_point_and_shrinks_with_more_items() -> None:
    widths = []
    for n in (10, 100, 1000):
        lo, hi = stats.wilson(int(0.7 * n), n)
        assert lo <= 0.7 <= hi
        widths.append(hi - lo)
    assert widths[0] > widths[1] > widths[2]


def test_t_quantiles() -> None:
    assert stats.t975(1) == pytest.approx(12.706, abs=1e-3)
    assert stats.t975(30) == pytest.approx(2.0423, abs=1e-4)
    assert stats.t975(40) == pytest.approx(2.0211, abs=1e-4)  # Cornish-Fisher from here on
    assert stats.t975(120) == pytest.approx(1.9799, abs=1e-4)
    assert stats.t975(10**6) == pytest.approx(stats.Z95, abs=1e-5)
    with pytest.raises(ValueError):
        stats.t975(0)


def test_paired_accuracy_of_a_variant_against_itself() -> None:
    answers = [True, False, True, True, False] * 10
    d = stats.paired_accuracy(answers, answers)
    assert (d.diff, d.lo, d.hi, d.p, d.significant) == (0.0, 0.0, 0.0, 1.0, False)
    assert (d.b, d.c, d.n) == (0, 0, 50)


def test_paired_accuracy_counts_discordant_items_and_is_deterministic() -> None:
    ref = [True] * 40 + [False] * 20
    cand = [False] * 6 + [True] * 34 + [False] * 20  # six items lost, none gained
    d = stats.paired_accuracy(cand, ref)
    assert (d.b, d.c) == (6, 0) and d.p == pytest.approx(0.03125) and d.significant
    assert d.diff == pytest.approx(-0.1) and d.lo <= d.diff <= d.hi and d.hi <= 0
    assert stats.paired_accuracy(cand, ref) == d  # seeded
    with pytest.raises(ValueError):
        stats.paired_accuracy([True], [True, False])


def test_paired_interval_contains_the_point_and_shrinks_with_more_items() -> None:
    rng = np.random.default_rng(7)
    widths = []
    for n in (50, 500, 5000):
        ref = rng.random(n) < 0.8
        cand = np.where(rng.random(n) < 0.1, ~ref, ref)
        d = stats.paired_accuracy(list(cand), list(ref))
        assert d.lo <= d.diff <= d.hi
        widths.append(d.hi - d.lo)
    assert widths[0] > widths[1] > widths[2]


def test_mean_interval() -> None:
    mean, sd, lo, hi = stats.mean_interval([1.0, 2.0, 3.0])
    assert (mean, sd) == (2.0, 1.0)
    assert (lo, hi) == pytest.approx((2 - 4.3027 / math.sqrt(3), 2 + 4.3027 / math.sqrt(3)))
    assert stats.mean_interval([5.0]) == (5.0, 0.0, 5.0, 5.0)  # measured once: no spread to show
    assert stats.mean_interval([4.0, 4.0])[2:] == (4.0, 4.0)
    with pytest.raises(ValueError):
        stats.mean_interval([])


def _tokens(n: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    nll_ref = rng.exponential(2.5, n)
    nll_cand = nll_ref + rng.normal(0.02, 0.1, n)
    return rng.exponential(0.05, n), nll_cand, nll_ref, rng.random(n) < 0.9


def test_token_stats_of_a_candidate_equal_to_its_reference() -> None:
    _, nll, _, _ = _tokens(1000)
    s = stats.token_stats(np.zeros(1000), nll, nll, np.ones(1000, dtype=bool))
    assert (s["kld"], s["kld_lo"], s["kld_hi"], s["kld_se"], s["kld_max"]) == (0.0, 0.0, 0.0, 0.0, 0.0)
    assert (s["ppl_ratio"], s["ppl_ratio_lo"], s["ppl_ratio_hi"], s["ppl_ratio_se"]) == (1.0, 1.0, 1.0, 0.0)
    assert (s["top1_agreement"], s["top1_agreement_lo"], s["top1_agreement_hi"]) == (1.0, 1.0, 1.0)
    assert s["ppl"] == pytest.approx(math.exp(nll.mean())) and s["eval_tokens"] == 1000


def test_token_stats_match_llama_perplexity_estimators() -> None:
    kld, nll_c, nll_r, top = _tokens(4000)
    s = stats.token_stats(kld, nll_c, nll_r, top)
    n = len(kld)
    # llama-perplexity: "Mean KLD: x ± sqrt((<k^2> - <k>^2) / (n - 1))", the same for ln(PPL ratio) and top-1
    assert s["kld"] == pytest.approx(kld.mean())
    assert s["kld_se"] == pytest.approx(math.sqrt(((kld**2).mean() - kld.mean() ** 2) / (n - 1)))
    p = top.mean()
    assert s["top1_agreement_se"] == pytest.approx(math.sqrt(p * (1 - p) / (n - 1)))
    assert s["ppl_ratio"] == pytest.approx(math.exp((nll_c - nll_r).mean()))
    assert s["ppl_ratio_se"] == pytest.approx((nll_c - nll_r).std(ddof=1) / math.sqrt(n))
    assert s["kld_p99"] == pytest.approx(np.percentile(kld, 99)) and s["kld_max"] == kld.max()


def test_token_intervals_contain_the_point_and_shrink_with_more_tokens() -> None:
    widths: dict[str, list[float]] = {"kld": [], "ppl_ratio": [], "top1_agreement": []}
    for n in (1024, 8192, 65536):
        s = stats.token_stats(*_tokens(n))
        for key, found in widths.items():
            assert s[f"{key}_lo"] <= s[key] <= s[f"{key}_hi"]
            found.append(s[f"{key}_hi"] - s[f"{key}_lo"])
    for found in widths.values():
        assert found[0] > found[1] > found[2]


def test_block_interval_widens_for_correlated_tokens() -> None:
    """Batch means see the correlation a per-token se ignores: a slowly drifting series gets a wider interval."""
    rng = np.random.default_rng(1)
    iid = rng.normal(0, 1, 8192)
    drifting = np.repeat(rng.normal(0, 1, 8192 // 32), 32)  # runs of 32 equal values: same variance, correlated
    width = lambda x: np.subtract(*stats.block_interval(x)[::-1])  # noqa: E731
    assert width(drifting) > 3 * width(iid)
    short = stats.block_interval(np.array([1.0, 2.0, 3.0]))  # too short for blocks: single tokens
    assert short == pytest.approx((2 - 4.3027 / math.sqrt(3), 2 + 4.3027 / math.sqrt(3)))


def test_token_stats_reject_mismatched_arrays() -> None:
    with pytest.raises(ValueError):
        stats.token_stats(np.zeros(3), np.zeros(2), np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError):
        stats.token_stats(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0))


REF: dict[str, Any] = {"id": "f:q8_0", "accuracy": 0.8, "tg_tps": 50.0, "peak_rss_mb": 300.0, "ttft_ms": 100.0}


def _with_intervals(row: dict[str, Any], rel: float) -> dict[str, Any]:
    out = dict(row)
    for key in ("accuracy", "tg_tps", "ttft_ms"):
        value = float(row[key])
        out[f"{key}_lo"], out[f"{key}_hi"] = value * (1 - rel), value * (1 + rel)
    return out


def test_per_interval_of_the_reference_is_one() -> None:
    ref = _with_intervals(REF, 0.1)
    assert per.per_interval(ref, ref, per.AXES) == (1.0, 1.0)
    assert per.per_interval(dict(ref), ref, per.AXES) == (1.0, 1.0)  # same id, another dict


def test_per_interval_contains_the_point_and_shrinks_with_narrower_axes() -> None:
    cand: dict[str, Any] = {"id": "f:q4_0", "accuracy": 0.75, "tg_tps": 80.0, "peak_rss_mb": 200.0, "ttft_ms": 70.0}
    point = per.per(cand, REF)
    widths = []
    for rel in (0.2, 0.05, 0.01):
        interval = per.per_interval(_with_intervals(cand, rel), _with_intervals(REF, rel), per.AXES)
        assert interval is not None
        lo, hi = interval
        assert lo < point < hi
        widths.append(hi - lo)
    assert widths[0] > widths[1] > widths[2]
    # no interval on any axis: no width
    assert per.per_interval(cand, REF, per.AXES) == pytest.approx((point, point))


def test_a_speed_timed_once_leaves_per_without_an_interval() -> None:
    """One repetition (--quick) gives tg a zero-width "interval"; PER must not inherit a false precision."""
    once = {"id": "f:q4_0", "accuracy": 0.75, "tg_tps": 80.0, "tg_tps_lo": 80.0, "tg_tps_hi": 80.0, "ttft_ms": 70.0}
    assert per.per_interval(once, _with_intervals(REF, 0.05), per.AXES) is None
    ref_once = {**_with_intervals(REF, 0.05), "ttft_ms_lo": 100.0, "ttft_ms_hi": 100.0}
    assert per.per_interval(_with_intervals(once, 0.05), ref_once, per.AXES) is None
    rows: list[dict[str, Any]] = [{**REF, "reference": "f:q8_0"}, {**once, "reference": "f:q8_0"}]
    per.score_rows(rows)
    assert rows[1]["per"] is not None and rows[1]["per_lo"] is None and rows[1]["per_hi"] is None
    assert (rows[0]["per_lo"], rows[0]["per_hi"]) == (1.0, 1.0)


def test_score_rows_sets_the_per_interval() -> None:
    rows: list[dict[str, Any]] = [
        {**_with_intervals(REF, 0.05), "reference": "f:q8_0"},
        {**_with_intervals({**REF, "id": "f:q4_0", "tg_tps": 90.0}, 0.05), "reference": "f:q8_0"},
        {"id": "f:old", "reference": "f:q8_0", "accuracy": 0.7, "tg_tps": 60.0},  # stored before intervals
    ]
    per.score_rows(rows)
    assert (rows[0]["per"], rows[0]["per_lo"], rows[0]["per_hi"]) == (1.0, 1.0, 1.0)
    assert rows[1]["per_lo"] < rows[1]["per"] < rows[1]["per_hi"]
    assert rows[2]["per_lo"] <= rows[2]["per"] <= rows[2]["per_hi"]


def test_number_and_half_width_tolerate_stored_junk() -> None:
    assert stats.number("3") is None and stats.number(True) is None and stats.number(float("nan")) is None
    assert stats.number(2) == 2.0
    assert stats.half_width({"x_lo": 1.0, "x_hi": 3.0}, "x") == 1.0
    assert stats.half_width({"x_lo": "a", "x_hi": 3.0}, "x") is None
    assert stats.half_width({}, "x") is None


def test_per_interval_uses_the_paired_accuracy_difference_when_there_is_one() -> None:
    """The paired interval of the difference is narrower than two separate Wilson intervals (the items are the
    same), and the PER interval follows it."""
    ref = {**REF, "accuracy_lo": 0.7, "accuracy_hi": 0.9}
    cand = {"id": "f:q4_0", "accuracy": 0.75, "accuracy_lo": 0.65, "accuracy_hi": 0.85, "tg_tps": 80.0}
    unpaired = per.per_interval(cand, ref, per.AXES)
    paired = per.per_interval({**cand, "accuracy_diff_lo": -0.08, "accuracy_diff_hi": -0.02}, ref, per.AXES)
    assert unpaired is not None and paired is not None
    assert unpaired[0] < paired[0] < per.per(cand, ref) < paired[1] < unpaired[1]


def test_one_timing_has_no_spread_rather_than_a_spread_of_zero() -> None:
    from assistant.bench.worker import mean_sd

    assert mean_sd([0.25]) == (0.25, None)  # the speech bench run with --reps 1: its sd was stored as 0.0
    assert mean_sd([1.0, 3.0], 2) == (2.0, 1.41)


@pytest.mark.parametrize(("n", "k"), [(5, 1), (8, 1), (9, 2), (12, 3), (15, 4), (20, 6)])
def test_median_interval_takes_the_order_statistics_of_published_tables(n: int, k: int) -> None:
    # the 95 % distribution-free interval of a median: [x_(k), x_(n+1-k)], the k of the usual tables, worked
    # by hand for n = 9: k = 2 covers 1 - 2 * (1 + 9) / 512 = 0.961, k = 3 only 1 - 2 * 46 / 512 = 0.820
    values = [float(v) for v in range(n, 0, -1)]  # the order of the values must not matter
    assert stats.median_interval(values) == (k, n + 1 - k)


def test_median_interval_contains_the_median_and_ignores_one_wild_round() -> None:
    ratios = [0.98, 1.01, 0.97, 1.02, 0.99, 1.00, 0.96, 1.03, 0.99, 1.01, 0.40]  # one round on a stalled machine
    lo, hi = stats.median_interval(ratios)
    assert lo <= float(np.median(ratios)) <= hi
    assert (lo, hi) == (0.96, 1.02)  # n = 11: the 2nd and 10th of the sorted ratios
    assert stats.median_interval([1.5]) == (1.5, 1.5)
    with pytest.raises(ValueError):
        stats.median_interval([])
