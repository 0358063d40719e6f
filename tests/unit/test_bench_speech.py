"""The speech benchmark's arithmetic and its clip plan: bootstrap intervals, per-condition WER, text
normalisation for other languages, noise mixing at a given SNR, --quick's subsample."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.bench import clips
from assistant.bench.speech import bootstrap, summarize


def test_bootstrap_brackets_the_ratio_and_is_seeded() -> None:
    errors = [0, 1, 3, 0, 2, 5, 0, 1, 0, 4]
    words = [9, 10, 12, 8, 11, 10, 9, 12, 10, 11]
    ratio = sum(errors) / sum(words)
    lo, hi = bootstrap(errors, words)
    assert lo < ratio < hi and (lo, hi) == bootstrap(errors, words)
    assert bootstrap(errors, words, seed=1) != (lo, hi)
    assert bootstrap([2, 2, 2], [10, 10, 10]) == pytest.approx((0.2, 0.2))  # no spread, no width
    assert bootstrap([], []) == (0.0, 0.0)
    # four times the clips at the same rate: a narrower interval
    lo4, hi4 = bootstrap(errors * 4, words * 4)
    assert hi4 - lo4 < hi - lo


def test_summarize_splits_by_condition_and_language() -> None:
    per_clip = [
        {"language": "en", "condition": "clean", "errors": 0, "words": 10},
        {"language": "en", "condition": "5db", "errors": 5, "words": 10},
        {"language": "de", "condition": "clean", "errors": 1, "words": 8},
        {"language": "de", "condition": "5db", "errors": 4, "words": 8},
    ]
    row = summarize(per_clip)
    assert row["wer"] == 0.25 and row["wer_scope"] == "en"  # English only: every model runs it
    assert row["wer_lo"] <= row["wer"] <= row["wer_hi"]
    assert list(row["wer_by_condition"]) == ["clean", "5db"]
    assert row["wer_by_condition"]["5db"] == {**row["wer_by_condition"]["5db"], "wer": 0.5, "clips": 2}
    assert row["wer_by_language"]["de"]["wer"] == round(5 / 16, 5)
    assert row["languages"] == ["en", "de"]


def test_normalize_keeps_letters_of_other_languages() -> None:
    assert clips.normalize("Der Zug fährt später ab.", "de") == "der zug fährt später ab"
    assert clips.normalize("Peux-tu éteindre la lumière?", "fr") == "peux tu éteindre la lumière"
    assert clips.normalize("Voulez-vous un verre d\u2019eau?", "fr") == "voulez vous un verre d'eau"
    assert clips.normalize("¿Me puedes traer?", "es") == "me puedes traer"
    assert clips.normalize("At 3 o'clock.", "en") == "at three o'clock"


def test_mix_reaches_the_snr() -> None:
    rng = np.random.default_rng(0)
    signal = (0.3 * np.sin(np.arange(16000) / 5)).astype(np.float32)
    noise = rng.standard_normal(60000).astype(np.float32) * 0.1
    for snr in clips.SNRS:
        mixed = clips.mix(signal, noise, snr, seed="x")
        residual = mixed.astype(np.float64) - signal
        got = 10 * np.log10(np.mean(signal.astype(np.float64) ** 2) / np.mean(residual**2))
        assert got == pytest.approx(snr, abs=0.1)
    assert np.array_equal(clips.mix(signal, noise, 10, "a"), clips.mix(signal, noise, 10, "a"))
    assert not np.array_equal(clips.mix(signal, noise, 10, "a"), clips.mix(signal, noise, 10, "b"))


def test_the_plan_and_the_quick_subsample() -> None:
    plan = clips.plan()
    assert len(plan) >= 60 and len({c.file for c in plan}) == len(plan)
    assert {c.condition for c in plan} == set(clips.CONDITIONS) and {c.language for c in plan} == {
        "en",
        "de",
        "fr",
        "es",
    }
    assert len({c.voice for c in plan if c.language == "en"}) >= 4 and len({c.speed for c in plan}) >= 4
    quick = clips.select(plan, quick=True)
    assert 0 < len(quick) < len(plan) / 4
    for cond in clips.CONDITIONS:  # every condition and language keeps clips
        assert {c.language for c in quick if c.condition == cond} == {"en", "de", "fr", "es"}
    assert {c.language for c in clips.select(plan, quick=False, languages={"en"})} == {"en"}


def test_a_new_clip_set_removes_the_ones_made_for_another_plan() -> None:
    """Sets are keyed by the clip plan and espeak-ng's version; one made for another is never read again."""
    stale = clips.set_dir() / "0123456789abcdef"
    stale.mkdir(parents=True)
    (stale / "clip.wav").write_bytes(b"old")
    other = clips.set_dir() / "notes"  # not a set: left alone
    other.mkdir()
    folder = clips.ensure([])
    assert folder.is_dir() and folder.parent == clips.set_dir()
    assert not stale.exists() and other.is_dir()
