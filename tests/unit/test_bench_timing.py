"""How a language bench times its speeds: rounds in which every candidate sits next to a timing of its
reference (``llm._time_speeds``), and ``per`` pairing each candidate with those neighbours."""

from __future__ import annotations

import math
from typing import Any

import pytest

from assistant.bench import llm, per


def test_a_round_times_the_reference_after_every_second_candidate() -> None:
    ref_of = {0: 0, 1: 0, 2: 0, 3: 0, 4: 0}
    order = [0, 1, 2, 3, 4]
    assert llm._round_schedule(order, ref_of, reverse=False) == [[0, 1, 2, 0, 3, 4, 0]]
    assert llm._round_schedule(order, ref_of, reverse=True) == [[0, 4, 3, 0, 2, 1, 0]]
    assert llm._speed_passes(order, ref_of) == {0: 3, 1: 1, 2: 1, 3: 1, 4: 1}


def test_two_families_and_a_lone_reference() -> None:
    """Each reference brackets its own candidates; a reference measured alone is timed once a round."""
    order = [0, 5, 7, 1, 2, 6]
    ref_of = {0: 0, 1: 0, 2: 0, 5: 5, 6: 5, 7: 7}
    assert llm._round_schedule(order, ref_of, reverse=False) == [[0, 1, 2, 0], [5, 6, 5], [7]]
    assert llm._round_schedule(order, ref_of, reverse=True) == [[7], [5, 6, 5], [0, 2, 1, 0]]
    assert llm._speed_passes(order, ref_of) == {0: 2, 1: 1, 2: 1, 5: 2, 6: 1, 7: 1}


def _timing(speed: float) -> dict[str, Any]:
    return {
        "load_s": 0.5 / speed, "pp_tps": 1000 * speed, "tg_tps": 100 * speed, "ttft_ms": 100 / speed,
        "ttft_prompt_tokens": 52, "peak_rss_mb": 300.0,
    }  # fmt: skip


def _drifting_run(reps: int, drift: float) -> tuple[list[dict[str, Any]], list[tuple[int, bool]]]:
    """Five rows (0 the reference) of true relative speeds ``true``, timed on a machine that loses ``drift``
    of its speed with every pass; the rows as ``llm.run`` builds them, and every (row, last) call made."""
    true = {0: 1.0, 1: 1.3, 2: 0.9, 3: 1.6, 4: 1.1}
    order = list(true)
    ref_of = dict.fromkeys(order, 0)
    calls: list[tuple[int, bool]] = []

    def time_one(n: int, last: bool) -> dict[str, Any]:
        calls.append((n, last))
        return _timing(true[n] * (1 - drift) ** len(calls))

    timed = llm._time_speeds(order, ref_of, time_one, reps)
    rows = [{"id": str(n), "reference": "0", "accuracy": 0.8, **llm._speed_rounds(timed[n])} for n in order]
    return rows, calls


def test_each_row_is_told_its_last_pass_once() -> None:
    _rows, calls = _drifting_run(reps=3, drift=0.0)
    assert len(calls) == 3 * 7
    for n in range(5):
        mine = [last for m, last in calls if m == n]
        assert mine[-1] and not any(mine[:-1])


def test_drift_cancels_against_the_neighbouring_reference() -> None:
    """A machine that slows 2 % a pass, over the default three rounds: the neighbour-paired ratio stays within
    0.4 % of the truth; paired with the reference's mean over the round (the earlier scheme) it is off by up
    to 1.4 % (an even number of reversed rounds cancels a steady drift for both)."""
    rows, _calls = _drifting_run(reps=3, drift=0.02)
    true = {1: 1.3, 2: 0.9, 3: 1.6, 4: 1.1}
    ref = rows[0]
    assert ref["ref_rounds"] is None and len(ref["rounds"]["tg_tps"]) == 3
    neighbour, round_mean = [], []
    for n, expected in true.items():
        row = rows[n]
        neighbour.append(abs(per.ratios(row, ref)["throughput"] / expected - 1))
        without = {k: v for k, v in row.items() if k != "ref_rounds"}
        round_mean.append(abs(per.ratios(without, ref)["throughput"] / expected - 1))
        assert per.ratios(row, ref)["latency"] == pytest.approx(per.ratios(row, ref)["throughput"])
    assert max(neighbour) < 0.004
    assert max(round_mean) > 0.012


def test_ref_rounds_pair_only_with_their_own_reference() -> None:
    rounds = {"tg_tps": [100.0, 110.0]}
    a = {"id": "a", "reference": "r", "rounds": {"tg_tps": [120.0, 121.0]}, "ref_rounds": {"tg_tps": [100.0, 110.0]}}
    b = {"id": "b", "reference": "r", "rounds": {"tg_tps": [90.0, 99.0]}, "ref_rounds": {"tg_tps": [90.0, 90.0]}}
    r = {"id": "r", "reference": "r", "rounds": {"tg_tps": [80.0, 80.0]}, "ref_rounds": None}
    other = {"id": "x", "reference": "x", "rounds": rounds}
    assert per.paired_logs(a, r, "tg_tps") == pytest.approx([math.log(1.2), math.log(1.1)])
    assert per.paired_logs(r, a, "tg_tps") == pytest.approx([-math.log(1.2), -math.log(1.1)])
    # two candidates of one reference: the difference of their ratios to it, each against its own neighbours
    assert per.paired_logs(a, b, "tg_tps") == pytest.approx([math.log(1.2), math.log(1.1) - math.log(1.1)])
    # a row of another reference: round by round, the reference's neighbours play no part
    assert per.paired_logs(a, other, "tg_tps") == pytest.approx([math.log(1.2), math.log(1.1)])
    assert per.paired_logs(a, {**other, "rounds": {"tg_tps": [100.0]}}, "tg_tps") is None
